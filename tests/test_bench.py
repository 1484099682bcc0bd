"""`python -m bench --smoke`: every benchmark's smallest run, so that none of them stops working unseen.

The figures of such a run measure nothing and nothing here judges them: the test asserts that each
benchmark ran to its table and that the summary holds a row of every table (`make bench-quick` and
`make bench` are the runs whose figures docs/benchmarks.md quotes).
"""

from __future__ import annotations

import subprocess
import sys

from conftest import REPO, train_env

TOPICS = ("training throughput", "training step compute", "feature cache", "tuning", "featurize job",
          "diagnostics overhead per training step", "serving", "int8")


def test_every_benchmark_runs_to_its_table_in_the_smoke_run(tmp_path):
    result = subprocess.run([sys.executable, "-m", "bench", "--smoke"], cwd=REPO, env=train_env(tmp_path),
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-5000:]
    summary = result.stdout.split("\nsummary: every benchmark of this run\n", 1)[1]
    topics = {line.split(":")[0] for line in summary.splitlines()[1:] if not line.startswith("[")}
    assert topics == set(TOPICS)
    assert "int8 target (p50 <= 0.55x float32" in result.stdout
