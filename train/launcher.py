"""Starts a host's training processes: one code path for 1 and N, the same stop and failure semantics.

SageMaker starts `train` once per host (SM_HOSTS, SM_CURRENT_HOST); this module starts that host's
processes (one per GPU, or the requested number on a CPU) and derives nothing itself: ranks and the
rendezvous come from train.distributed's layout. One process runs in the launching process (no
spawn cost, a debugger works); more are spawned. Either way:
- SIGTERM/SIGINT (spot interruption, StopTrainingJob, Ctrl-C) set a StopFlag in every process, which
  saves a checkpoint and raises Interrupted;
- a process's failure becomes the job's one-line reason, the same words one process would give
  (with "process i of N:" in front), never a child's traceback;
- a process killed by a signal is named with it (SIGKILL: the OOM killer, usually).

Why not torchrun (torch.distributed.run): on SageMaker it would still need this host's node rank,
host count and master address from SM_HOSTS, and it would put its own agent between SageMaker and
the workers: the agent ends workers 30 s after it forwards SIGTERM (SageMaker allows 120 s for a
checkpoint), reports failures as a multi-line ChildFailedError (SageMaker's FailureReason wants one
line), and its elastic restarts and membership changes have nothing to act on: a SageMaker job has a
fixed set of hosts and is restarted, if at all, by SageMaker from its checkpoint.
"""

from __future__ import annotations

import logging
import os
import queue
import signal
from collections.abc import Callable
from multiprocessing.connection import wait

import torch.multiprocessing as mp

from train.errors import Interrupted, TrainingError, one_line_reason

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
# After a stop, how long the other processes get to finish their step and checkpoint once the first has
# ended (SageMaker sends SIGKILL 120 s after SIGTERM); after a failure they are stopped at once.
STOP_GRACE_SECONDS = 100


class StopFlag:
    """Set by SIGTERM/SIGINT; training checks it between steps, saves a checkpoint and exits."""

    def __init__(self):
        self.signal_name: str | None = None

    def install(self) -> None:
        for sig in STOP_SIGNALS:
            signal.signal(sig, self._handle)

    def __enter__(self):
        self._previous = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
        self.install()
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum, _frame) -> None:
        if self.signal_name is None:
            log.warning("got %s: stopping after this step and saving a checkpoint", signal.Signals(signum).name)
        self.signal_name = signal.Signals(signum).name

    def __call__(self) -> bool:
        return self.signal_name is not None


def ignore_stop_signals(_worker_id: int) -> None:
    """worker_init_fn of data loaders: workers leave SIGTERM/SIGINT to their training process."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)


# fn(local_rank, stop, *args) trains as one process of the host.
ProcessFunction = Callable[..., None]


def launch(fn: ProcessFunction, args: tuple, processes: int) -> None:
    if processes == 1:
        with StopFlag() as stop:
            fn(0, stop, *args)
        return
    reasons = mp.get_context("spawn").Queue()
    context = mp.start_processes(_process_entry, args=(fn, args, reasons), nprocs=processes, join=False,
                                 start_method="spawn")
    stop = StopFlag()

    def forward(signum, frame):
        stop._handle(signum, frame)
        for process in context.processes:
            if process.is_alive():
                os.kill(process.pid, signum)

    previous = {sig: signal.signal(sig, forward) for sig in STOP_SIGNALS}
    try:
        # Wait here, not in join: join binds its grace period when called, and a SIGTERM that arrives while it
        # waits would leave a failure's immediate termination in force for a stop.
        while True:
            wait(list(context.sentinels), timeout=1.0)
            if context.join(timeout=0, grace_period=STOP_GRACE_SECONDS if stop() else None):
                break
    except mp.ProcessRaisedException as error:
        interrupted, reason = _reported(reasons).get(error.error_index, (False, str(error).strip().splitlines()[-1]))
        failure = Interrupted if interrupted or stop() else TrainingError
        raise failure(f"process {error.error_index} of {processes}: {reason}") from None
    except mp.ProcessExitedException as error:
        how = f"was killed by {error.signal_name}" if error.signal_name else f"exited with code {error.exit_code}"
        raise TrainingError(f"process {error.error_index} of {processes} {how} before it could write a reason"
                            + (" (the kernel's out-of-memory killer sends SIGKILL)"
                               if error.signal_name == "SIGKILL" else "")) from None
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _process_entry(local_rank: int, fn: ProcessFunction, args: tuple, reasons) -> None:
    logging.basicConfig(level=logging.INFO if local_rank == 0 else logging.WARNING,
                        format=f"%(asctime)s %(levelname)s [rank {local_rank}] %(message)s")
    stop = StopFlag()
    stop.install()
    try:
        fn(local_rank, stop, *args)
    except BaseException as error:
        reasons.put((local_rank, isinstance(error, Interrupted), one_line_reason(error)))
        raise


def _reported(reasons) -> dict[int, tuple[bool, str]]:
    found = {}
    while True:
        try:
            rank, interrupted, reason = reasons.get(timeout=1.0)
        except queue.Empty:
            return found
        found.setdefault(rank, (interrupted, reason))
