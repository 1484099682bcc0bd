"""`python -m bench.gpu`, the GPU check: no GPU here, so its code runs in its CPU dry-run mode (gloo for NCCL,
the checks that need NVML or a GPU skipped), and the plain command must say "no GPU" and succeed."""

from __future__ import annotations

import subprocess
import sys

from conftest import REPO, train_env


def gpu_check(*args: str, tmp_path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bench.gpu", *args], cwd=REPO, env=train_env(tmp_path),
                          capture_output=True, text=True, timeout=600)


def test_without_a_gpu_it_says_so_and_succeeds(tmp_path):
    result = gpu_check(tmp_path=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("no GPU: CUDA sees none here")


def test_every_check_runs_in_the_cpu_dry_run(tmp_path):
    result = gpu_check("--cpu-dry-run", "--steps", "2", "--batch-size", "2", tmp_path=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    rows = {line.split("  ")[0].strip(): line.rsplit("  ", 1)[-1].strip() for line in result.stdout.splitlines()
            if line.endswith(("  ok", "FAILED", ")"))}
    for check in ("frozen ResNet-50 + head, AMP + channels_last (img/s)", "step timer: CUDA-event phases",
                  "trainable ResNet-50 + head, AMP + channels_last (img/s)", "frozen: ours / original",
                  "trainable: ours / original", "DDP over NCCL"):
        assert rows.get(check) == "ok", (check, result.stdout)
    assert rows.get("LowGPUUtilization judged") == "skipped (CPU dry run)"
    assert "CPU DRY RUN: no GPU was checked" in result.stdout
