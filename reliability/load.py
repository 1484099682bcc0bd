"""A bounded load on the live server: N concurrent keep-alive clients for T seconds, and what it did to it.

Each client (aiohttp, one connection each) posts the same JPEG in a loop. Every request is
recorded: when it was sent, how long it took, its status or the connection error that ended it.
Beside it, a thread samples the server's memory (RSS of its whole process group: launcher, Java
frontend, Python workers) twice a second. Optionally one model-server worker is killed with
SIGKILL at a given second, and /ping is polled until the server answers 200 again with a new
worker in its place.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import threading
import time

import aiohttp
import numpy as np
import psutil

WORKER_MARK = "model_service_worker"  # how multi-model-server's Python workers show in ps


@dataclasses.dataclass
class Request:
    sent: float  # seconds since the load started
    seconds: float
    status: int | None  # None: the connection failed (error says how)
    error: str | None = None


@dataclasses.dataclass
class Crash:
    at: float  # seconds since the load started
    pid: int
    ping_back_after: float  # seconds from the kill to the last /ping that failed (0: none failed)
    replaced_after: float | None  # seconds until a new worker process ran
    ping_failures: int


@dataclasses.dataclass
class LoadResult:
    seconds: float
    concurrency: int
    requests: list[Request]
    memory: list[tuple[float, int]]  # (seconds since start, bytes)
    crash: Crash | None = None

    def count(self, predicate) -> int:
        return sum(1 for r in self.requests if predicate(r))

    @property
    def ok(self) -> int:
        return self.count(lambda r: r.status == 200)

    @property
    def server_errors(self) -> int:
        return self.count(lambda r: r.status is not None and r.status >= 500)

    @property
    def dropped(self) -> int:
        return self.count(lambda r: r.status is None)

    def latency_ms(self, percentile: float) -> float:
        done = [r.seconds for r in self.requests if r.status == 200]
        return float(np.percentile(done, percentile) * 1000) if done else float("nan")

    @property
    def throughput(self) -> float:
        return self.ok / self.seconds

    def memory_growth(self, window: float = 10.0) -> tuple[float, float, float]:
        """(mean MB in the first window, in the last window, growth as a fraction)."""
        first = [b for t, b in self.memory if t <= window]
        last = [b for t, b in self.memory if t >= self.seconds - window]
        if not first or not last:
            return float("nan"), float("nan"), float("nan")
        start, end = float(np.mean(first)), float(np.mean(last))
        return start / 2**20, end / 2**20, end / start - 1

    def failed_near_crash(self, window: float = 10.0) -> int:
        """Requests that did not get a 200 and were in flight or sent within `window` s after the kill."""
        if self.crash is None:
            return 0
        at = self.crash.at
        return self.count(lambda r: r.status != 200 and r.sent <= at + window and r.sent + r.seconds >= at)


def server_workers(root_pid: int) -> list[psutil.Process]:
    """The processes that run the model: multi-model-server 1.1 starts one worker server, which forks a
    child per worker the frontend connects; those children handle the requests."""
    try:
        processes = psutil.Process(root_pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    found = []
    for process in processes:
        try:
            if any(WORKER_MARK in part for part in process.cmdline()):
                found.append(process)
        except psutil.Error:
            continue
    pids = {process.pid for process in found}
    forked = [process for process in found if process.ppid() in pids]
    return forked or found


def group_rss(root_pid: int) -> int:
    total = 0
    try:
        root = psutil.Process(root_pid)
        for process in [root, *root.children(recursive=True)]:
            try:
                total += process.memory_info().rss
            except psutil.Error:
                continue
    except psutil.NoSuchProcess:
        pass
    return total


def run_load(base_url: str, server_pid: int, body: bytes, concurrency: int, seconds: float,
             kill_worker_at: float | None = None) -> LoadResult:
    return asyncio.run(_load(base_url, server_pid, body, concurrency, seconds, kill_worker_at))


async def _load(base_url, server_pid, body, concurrency, seconds, kill_worker_at) -> LoadResult:
    requests: list[Request] = []
    memory: list[tuple[float, int]] = []
    started = time.perf_counter()
    stop_sampling = threading.Event()

    def sample_memory():
        while not stop_sampling.is_set():
            memory.append((time.perf_counter() - started, group_rss(server_pid)))
            stop_sampling.wait(0.5)

    sampler = threading.Thread(target=sample_memory, daemon=True)
    sampler.start()
    timeout = aiohttp.ClientTimeout(total=60)
    headers = {"Content-Type": "image/jpeg"}

    async def client():
        connector = aiohttp.TCPConnector(limit=1)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            while time.perf_counter() - started < seconds:
                sent = time.perf_counter()
                try:
                    async with session.post(f"{base_url}/invocations", data=body, headers=headers) as response:
                        await response.read()
                        status, error = response.status, None
                except (TimeoutError, aiohttp.ClientError) as failure:
                    status, error = None, f"{type(failure).__name__}: {failure}"
                requests.append(Request(sent - started, time.perf_counter() - sent, status, error))

    crash_task = asyncio.create_task(_crash(base_url, server_pid, kill_worker_at, started)) \
        if kill_worker_at is not None else None
    await asyncio.gather(*(client() for _ in range(concurrency)))
    crash = await crash_task if crash_task else None
    elapsed = time.perf_counter() - started
    stop_sampling.set()
    sampler.join()
    return LoadResult(elapsed, concurrency, requests, memory, crash)


async def _crash(base_url: str, server_pid: int, at: float, started: float) -> Crash:
    await asyncio.sleep(max(0.0, at - (time.perf_counter() - started)))
    workers = server_workers(server_pid)
    if not workers:
        raise RuntimeError("no model-server worker process found to kill")
    victim = workers[0]
    before = {w.pid for w in workers}
    killed = time.perf_counter()
    os.kill(victim.pid, signal.SIGKILL)
    replaced = last_unhealthy = None
    failures = 0
    healthy_since = 0.0
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
        # Until a new worker runs and /ping has answered 200 for a whole second (or 30 s pass).
        while time.perf_counter() - killed < 30 and (replaced is None or healthy_since < 1.0):
            probe = time.perf_counter()
            try:
                async with session.get(f"{base_url}/ping") as response:
                    healthy = response.status == 200
            except (TimeoutError, aiohttp.ClientError):
                healthy = False
            now = time.perf_counter() - killed
            if healthy:
                healthy_since += time.perf_counter() - probe + 0.1
            else:
                failures, last_unhealthy, healthy_since = failures + 1, now, 0.0
            current = {w.pid for w in server_workers(server_pid)}
            if replaced is None and current - before and len(current) >= len(before):
                replaced = now
            await asyncio.sleep(0.1)
    ping_back = 0.0 if last_unhealthy is None else last_unhealthy
    return Crash(killed - started, victim.pid, ping_back, replaced, failures)
