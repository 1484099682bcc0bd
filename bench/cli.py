"""The command line the benchmarks share: the module's docstring as its help, and the three sizes of run.

Full size by default, `--quick` for a few minutes, `--smoke` for the smallest run that still takes every
code path of the benchmark (tests/test_bench.py runs it in `make test`): the figures it prints measure nothing.
"""

from __future__ import annotations

import argparse

SMOKE_HELP = "the smallest run that takes every code path (tests/test_bench.py); its figures measure nothing"


def benchmark_parser(module: str, doc: str | None, quick_help: str,
                     endpoint_shape: bool = False) -> argparse.ArgumentParser:
    """With `endpoint_shape`, also --endpoint-shape (bench/shape.py), for the benchmarks of serving."""
    parser = argparse.ArgumentParser(prog=f"python -m {module}", description=doc,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help=quick_help)
    size.add_argument("--smoke", action="store_true", help=SMOKE_HELP)
    if endpoint_shape:
        parser.add_argument("--endpoint-shape", action="store_true",
                            help="run on one physical core (ml.m5.large's 2 vCPUs: a core and its hyperthread) "
                                 "instead of the whole host (bench/shape.py)")
    return parser
