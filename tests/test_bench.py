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
          "diagnostics overhead per training step", "serving", "served against the model alone", "int8")


def test_every_benchmark_runs_to_its_table_in_the_smoke_run(tmp_path):
    result = subprocess.run([sys.executable, "-m", "bench", "--smoke"], cwd=REPO, env=train_env(tmp_path),
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-5000:]
    summary = result.stdout.split("\nsummary: every benchmark of this run\n", 1)[1]
    topics = {line.split(":")[0] for line in summary.splitlines()[1:] if not line.startswith("[")}
    assert topics == set(TOPICS)
    assert "int8 target (p50 <= 0.55x float32" in result.stdout


def test_the_endpoint_shape_is_one_physical_core_with_its_hyperthreads(tmp_path):
    from bench import shape

    assert shape.parse_cpu_list("0-1,4\n") == {0, 1, 4}
    for cpu, siblings in ((0, "0,2"), (1, "1,3"), (2, "0,2"), (3, "1,3")):  # 2 cores x 2 threads
        (tmp_path / f"cpu{cpu}" / "topology").mkdir(parents=True)
        (tmp_path / f"cpu{cpu}" / "topology" / "thread_siblings_list").write_text(siblings)
    assert shape.core_of(2, tmp_path) == {0, 2}
    assert shape.core_of(7, tmp_path) == {7}  # no topology: the CPU alone


def test_a_served_latency_splits_into_the_worker_stages_and_the_rest():
    from bench.serve_latency import split_latency, worker_lines

    log = "\n".join(f"2026 [INFO ] W-model-1-stdout WorkerLifeCycle - serve.requests INFO status=200 "
                    f"latency_ms={9 + i:.2f} parse_ms=0.10 decode_ms=1.00 preprocess_ms=1.40 model_ms={6.5 + i:.2f} "
                    f"encode_ms=0.00 bytes=64386 images=500x375 accept=application/json" for i in range(3))
    lines = worker_lines(log + "\n2026 [INFO ] W-9000-model ACCESS_LOG - \"POST /invocations HTTP/1.1\" 200 12")
    stages, outside = split_latency([12.0, 13.5, 14.0], lines)
    assert stages == {"parse": 0.1, "decode": 1.0, "preprocess": 1.4, "model": 7.5, "encode": 0.0}
    assert outside == 3.0  # median of 3.0, 3.5, 3.0
    assert split_latency([12.0], lines)[0] == {}  # a line per request, or no split
