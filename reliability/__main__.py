"""`python -m reliability [--quick]`: load, a worker crash and the bad-input corpus against the live serving stack.

One `python -m serve` (multi-model-server, 2 workers) on loopback serving a dogImages-shaped
ResNet-50 artifact (133 classes, 224 px), then:
1. load: 8 concurrent keep-alive clients posting a 500x375 JPEG for 60 s (--quick: 20 s);
   no 5xx, no dropped connection, server memory (whole process group) growing under 10% from
   the first to the last 10 s (--quick: 5 s windows);
2. worker crash: the same load, one worker SIGKILLed a third of the way in; /ping must stay or
   return to 200 within 10 s, a new worker must replace it, and only the requests in flight on
   that worker may fail (at most one per worker thread);
3. bad input: every case of reliability/corpus.py, each answered as documented, /ping and a good
   request answered after each.
Prints a table and exits 1 if any check fails (these are correctness checks, not speed: the
latency and throughput figures are printed, never judged).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

from reliability.corpus import cases, problem_with
from reliability.load import LoadResult, run_load, server_workers
from serve.config import DEFAULT_MAX_INSTANCES, DEFAULT_MAX_PAYLOAD_MB
from support.artifacts import resnet50_artifact
from support.live_server import invoke, request, running_server
from support.photos import photo_jpeg

CONCURRENCY = 8
WORKERS = 2
PING_BACK_LIMIT_S = 10
MEMORY_GROWTH_LIMIT = 0.10


class Checks:
    def __init__(self):
        self.rows: list[tuple[str, str, bool]] = []

    def add(self, what: str, measured: str, passed: bool) -> None:
        self.rows.append((what, measured, passed))

    def print(self, heading: str) -> bool:
        width = max(len(what) for what, _, _ in self.rows)
        measured_width = max(len(measured) for _, measured, _ in self.rows)
        print(f"\n{heading}\n{'check':{width}}  {'measured':{measured_width}}  result")
        for what, measured, passed in self.rows:
            print(f"{what:{width}}  {measured:{measured_width}}  {'ok' if passed else 'FAILED'}")
        return all(passed for _, _, passed in self.rows)


def check_load(checks: Checks, result: LoadResult, window: float, judge_memory: bool) -> None:
    checks.add(f"load: requests in {result.seconds:.0f} s at concurrency {result.concurrency}",
               f"{len(result.requests)} ({result.throughput:.1f}/s)", result.ok > 0)
    checks.add("load: 5xx answers", str(result.server_errors), result.server_errors == 0)
    checks.add("load: dropped connections", str(result.dropped), result.dropped == 0)
    checks.add("load: other non-200 answers", str(len(result.requests) - result.ok - result.server_errors
                                                  - result.dropped), result.ok == len(result.requests))
    checks.add("load: latency p50 / p99 (ms)", f"{result.latency_ms(50):.0f} / {result.latency_ms(99):.0f}", True)
    first, last, growth = result.memory_growth(window)
    checks.add(f"load: server memory, first vs last {window:.0f} s (MB)",
               f"{first:.0f} -> {last:.0f} ({growth:+.1%})", growth < MEMORY_GROWTH_LIMIT or not judge_memory)


def check_crash(checks: Checks, result: LoadResult) -> None:
    crash = result.crash
    failed = result.failed_near_crash()
    bound = 1  # a worker handles one request at a time (batch size 1, one handler thread)
    checks.add(f"crash: worker {crash.pid} SIGKILLed at {crash.at:.1f} s under load",
               f"{len(result.requests)} requests, {result.ok} answered 200", True)
    checks.add("crash: /ping back to 200 (s after the kill; 0: never failed)",
               f"{crash.ping_back_after:.1f} ({crash.ping_failures} failed pings)",
               crash.ping_back_after <= PING_BACK_LIMIT_S)
    checks.add("crash: new worker running (s after the kill)",
               "never" if crash.replaced_after is None else f"{crash.replaced_after:.1f}",
               crash.replaced_after is not None)
    statuses = sorted({str(r.status or r.error.split(':')[0]) for r in result.requests if r.status != 200})
    checks.add("crash: failed requests (in flight on the killed worker)",
               f"{len(result.requests) - result.ok} ({', '.join(statuses) or 'none'})",
               len(result.requests) - result.ok <= bound and failed == len(result.requests) - result.ok)
    checks.add("crash: latency p99 (ms)", f"{result.latency_ms(99):.0f}", True)


def check_corpus(checks: Checks, base: str, max_payload_bytes: int) -> None:
    good = photo_jpeg(500, 375)
    corpus = cases(max_payload_bytes, DEFAULT_MAX_INSTANCES)
    problems = []
    for case in corpus:
        headers = dict(case.headers)
        status, response_headers, payload = invoke(base, case.body, case.content_type, **headers)
        problem = problem_with(case, status, response_headers.get("content-type", ""), payload)
        if problem is None and request(f"{base}/ping")[0] != 200:
            problem = "/ping failed afterwards"
        if problem is None and invoke(base, good)[0] != 200:
            problem = "a good request failed afterwards"
        if problem:
            problems.append(f"{case.name}: {problem}")
    refused = sum(1 for case in corpus if case.status != 200)
    checks.add(f"bad input: {len(corpus)} kinds ({refused} refused with a JSON 4xx, {len(corpus) - refused} "
               "valid but odd, answered)", f"{len(corpus) - len(problems)} as documented", not problems)
    for problem in problems:
        print(f"bad input: {problem}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reliability", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="20 s phases, 5 s memory windows (CI)")
    parser.add_argument("--seconds", type=float, help="length of the load phase (default 60, --quick 20)")
    args = parser.parse_args(argv)
    seconds = args.seconds or (20.0 if args.quick else 60.0)
    window = 5.0 if args.quick else 10.0
    body = photo_jpeg(500, 375)
    checks = Checks()
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = resnet50_artifact(Path(tmp) / "model")
        started = time.perf_counter()
        with running_server(model_dir, {"SAGEMAKER_MODEL_SERVER_WORKERS": str(WORKERS),
                                        "ORT_INTRA_OP_THREADS": "1"}) as server:
            print(f"server ready in {time.perf_counter() - started:.1f} s: {WORKERS} workers, "
                  f"{len(server_workers(server.process.pid))} running", flush=True)
            for _ in range(4):  # both workers warm
                invoke(server.base, body)
            check_load(checks, run_load(server.base, server.process.pid, body, CONCURRENCY, seconds), window,
                       judge_memory=True)
            crash_seconds = max(20.0, seconds / 2)
            check_crash(checks, run_load(server.base, server.process.pid, body, CONCURRENCY, crash_seconds,
                                         kill_worker_at=crash_seconds / 3))
            check_corpus(checks, server.base, DEFAULT_MAX_PAYLOAD_MB << 20)
        checks.add("server: exit code on SIGTERM, processes left", f"{server.process.returncode}, "
                   f"{len(server.leftovers)}", server.process.returncode == 0 and not server.leftovers)
    passed = checks.print(f"reliability: python -m serve, {WORKERS} workers x 1 thread, ResNet-50 133 classes "
                          f"224 px, 500x375 JPEG, {platform.machine()} x {os.cpu_count()} CPUs")
    print("all checks passed" if passed else "SOME CHECKS FAILED")
    return 0 if passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
