"""`python -m bench [--quick]`: every benchmark in one run, then one summary table of all their rows.

Each row: what is measured, ours, the baseline, the ratio, and which baseline (defined under the
table). `--quick` runs each benchmark's quick mode; `--smoke` each one's smallest run, which the suite
makes (tests/test_bench.py). Prints numbers; asserts nothing.
"""

from __future__ import annotations

from bench import diagnostics_overhead, feature_cache, serve_latency, train_throughput, tuning_trial
from bench.cli import benchmark_parser
from bench.report import PRINTED, print_summary

BENCHMARKS = (train_throughput, feature_cache, tuning_trial, diagnostics_overhead, serve_latency)


def main(argv: list[str] | None = None) -> int:
    args = benchmark_parser("bench", __doc__, "every benchmark's quick mode (a few minutes)").parse_args(argv)
    for benchmark in BENCHMARKS:
        benchmark.main(["--quick"] if args.quick else ["--smoke"] if args.smoke else [])
    print_summary(PRINTED)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
