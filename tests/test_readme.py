"""README.md, the front door: short, its links resolve, and its commands work as written.

The laptop block runs for real, line by line, as a user would type it in a fresh clone (the only
change: a free port instead of 8080, which another process may hold). The AWS block cannot run
here: each line goes through its script's own argument parser, placeholders filled in. The make
and docker lines are checked against what CI runs (make test; the Docker stage runs compose).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys

import pytest
from conftest import REPO
from serving import READY_MARK, free_port

from support.polling import poll_until

README = (REPO / "README.md").read_text()
BLOCKS = re.findall(r"```sh\n(.*?)```", README, re.S)
PLACEHOLDERS = {"TUNING_JOB": "dog-tune-251130-1200", "ROLE_ARN": "arn:aws:iam::123456789012:role/SageMakerRole",
                "TRAIN_IMAGE_URI": "123456789012.dkr.ecr.us-east-1.amazonaws.com/dog-classifier-train:latest",
                "SERVE_IMAGE_URI": "123456789012.dkr.ecr.us-east-1.amazonaws.com/dog-classifier-serve:latest",
                "BUCKET": "my-datasets"}


def commands(block: str) -> list[str]:
    return [line.split("  #")[0].strip() for line in block.splitlines() if line.strip()]


def block_with(prefix: str) -> list[str]:
    found = [commands(block) for block in BLOCKS if commands(block)[0].startswith(prefix)]
    assert len(found) == 1, f"README has {len(found)} blocks starting with {prefix!r}"
    return found[0]


def test_the_readme_is_short_and_every_link_resolves():
    assert len(README.splitlines()) <= 200
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", README)
    assert "LICENSE" in links and "docs/architecture.svg" in links
    for link in links:
        assert (REPO / link).exists(), link
    assert "seed" not in README.lower()  # the original Udacity project is named as such


def test_the_laptop_commands_work_as_written(tmp_path):
    (tmp_path / "scripts").symlink_to(REPO / "scripts")  # a clone's working directory: scripts/ beside runs/
    port = str(free_port())
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("SM_", "SAGEMAKER_"))},
           "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1", "PATH": f"{os.path.dirname(sys.executable)}:"
                                                                    f"{os.environ['PATH']}"}
    background, outputs = None, []
    try:
        for line in block_with("python -m train.sample_data"):
            line = line.replace("8080", port)
            if line == "kill %1":
                background.send_signal(signal.SIGTERM)  # what the shell's kill sends
                assert background.wait(timeout=60) == 0
                continue
            argv = shlex.split(line.removesuffix("&").strip())
            if line.endswith("&"):
                log = open(tmp_path / "serve.log", "w+")
                background = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT,
                                              start_new_session=True)
                poll_until(lambda: READY_MARK in (tmp_path / "serve.log").read_text(), timeout=180,
                           seen=(tmp_path / "serve.log").read_text,
                           alive=lambda process=background: process.poll() is None)
                continue
            result = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
            assert result.returncode == 0, (line, result.stdout[-3000:], result.stderr[-3000:])
            outputs.append(result.stdout)
    finally:
        if background is not None and background.poll() is None:
            os.killpg(background.pid, signal.SIGKILL)
            background.wait()
    opt_ml = tmp_path / "runs" / "mine" / "opt_ml"
    evaluation = json.loads((opt_ml / "output" / "data" / "evaluation.json").read_text())
    assert evaluation["accuracy"] >= 0.75, evaluation["accuracy"]  # 4 classes: chance is 0.25
    # The demo's run (same data, same flags: test_the_readme_trains_as_the_demo_does) is a healthy one. Its 76
    # steps are too few for Overfit, which judges validation passes from step 500 (the loss interval); it
    # judged epoch 4 before, and that verdict differed by CPU (quiet on an AMD EPYC, IssuesFound on an Intel
    # Xeon, where that epoch's validation loss on 40 images was 1.27 against 0.99).
    rules = {r["rule"]: r["status"] for r in json.loads((opt_ml / "output" / "data" / "rules.json").read_text())}
    assert "IssuesFound" not in rules.values() and rules["Overfit"] == "NotApplicable", rules
    skipped = json.loads((opt_ml / "output" / "data" / "skipped_files.json").read_text())["train"]
    assert sorted(s["path"].rsplit("/", 1)[-1] for s in skipped) == [
        "broken_empty.jpg", "broken_not_an_image.jpg", "broken_truncated.jpg"]
    from scripts.invoke import CONTENT_TYPES

    page = (opt_ml / "output" / "data" / "report.html").read_text()  # the job's story first, then rules, profile
    assert page.index("a local run") < page.index("<h2>Data") < page.index("<h2>Per-class accuracy") \
        < page.index("<h2>Confusion matrix") < page.index("<h2>Rules") < page.index("<h2>Profile")
    test_images = [p for p in (tmp_path / "runs" / "mine" / "data" / "test").rglob("*") if p.suffix in CONTENT_TYPES]
    classified = outputs[-1].splitlines()
    assert len(classified) == len(test_images) and all(": " in line for line in classified), outputs[-1]


def test_the_readme_trains_as_the_demo_does():
    readme = block_with("python -m train.sample_data")
    demo = (REPO / "demo.sh").read_text()
    assert readme[0] == "python -m train.sample_data runs/mine/data" and "python -m train.sample_data \"$DATA\"" in demo
    demo_flags = shlex.split(re.search(r"^python -m train \\\n((?:  .*\n)+)", demo, re.M)[1].replace("\\\n", " "))
    readme_flags = shlex.split(readme[1].removeprefix("python -m train "))
    assert readme_flags == [{"$DATA": "runs/mine/data", "$RUN/opt_ml": "runs/mine/opt_ml"}.get(flag, flag)
                            for flag in demo_flags]


@pytest.mark.parametrize("line", block_with("python scripts/iam_policies.py"))
def test_the_aws_commands_parse_with_their_scripts_own_flags(line, tmp_path, monkeypatch):
    for name, value in PLACEHOLDERS.items():
        line = line.replace(name, value)
    argv = shlex.split(line)
    if argv[0] == "bash":  # its own flags, then (after --) tune.py's
        ours, _, theirs = " ".join(argv[2:]).partition(" -- ")
        for script, flags in ((["bash", argv[1]], ours), ([sys.executable, "scripts/tune.py"], theirs)):
            usage = subprocess.run([*script, "--help"], cwd=REPO, capture_output=True, text=True).stdout
            for flag in [word for word in flags.split() if word.startswith("--")]:
                assert flag in usage, (flag, script)
        return
    (tmp_path / "dog.jpg").write_bytes(b"")  # the file a user would have; only its name is checked
    monkeypatch.chdir(tmp_path)
    module = __import__(f"scripts.{os.path.basename(argv[1]).removesuffix('.py')}", fromlist=["parse_args"])
    module.parse_args(argv[2:])  # argparse exits 2 on a flag or value the script does not take


def test_the_make_and_docker_lines_are_what_ci_runs():
    assert block_with("make demo") == ["make demo", "make test"]
    makefile = (REPO / "Makefile").read_text()
    assert re.search(r"^demo:", makefile, re.M) and re.search(r"^test:", makefile, re.M)
    assert "make test" in (REPO / ".ci" / "run").read_text()
    assert block_with("docker compose") == ["docker compose up"]
    assert '"up"' in (REPO / "tests" / "test_docker.py").read_text()  # the Docker stage's compose test
