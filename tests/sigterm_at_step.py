"""`python tests/sigterm_at_step.py PHASE STEP TRAIN_ARGS...`: the real training program, sent a real
SIGTERM by its own process once the progress of PHASE ("epoch 2/", "epoch 3 valid") reaches STEP.

A spot interruption lands at some moment of a step; the handler only sets a flag that training reads
between steps, so the moment within a step makes no difference, and which step it lands in is what a
test needs to choose. Sending it from outside after a sleep chose the step by the machine's speed.
"""

from __future__ import annotations

import os
import runpy
import signal
import sys

from train import progress


def main() -> None:
    phase, step, train_args = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    update = progress.Progress.update

    def update_then_stop(self, at: int, **values: float) -> None:
        update(self, at, **values)
        if self.description.startswith(phase) and at == step:
            os.kill(os.getpid(), signal.SIGTERM)

    progress.Progress.update = update_then_stop
    sys.argv = ["train", *train_args]
    runpy.run_module("train", run_name="__main__")


if __name__ == "__main__":
    main()
