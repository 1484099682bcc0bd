"""train.launcher: 1 and N processes of a host fail, stop and report the same way.

The process functions are tiny stand-ins for train_process (module-level, so spawned children can
import them); what is under test is the launcher's handling of what they do.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import pytest
from conftest import REPO

from support.polling import poll_until
from train import launcher
from train.errors import Interrupted, TrainingError


def fails_on_the_last_rank(local_rank: int, stop, processes: int) -> None:
    if local_rank == processes - 1:
        raise TrainingError("3 of 40 images in train are unreadable")
    time.sleep(0.5)


def killed_on_rank_1(local_rank: int, stop) -> None:
    if local_rank == 1:
        os.kill(os.getpid(), signal.SIGKILL)  # what the kernel's OOM killer does
    time.sleep(2)


def waits_for_a_stop(local_rank: int, stop, ready: str) -> None:
    open(f"{ready}.{local_rank}", "w").close()
    deadline = time.monotonic() + 60
    while not stop() and time.monotonic() < deadline:
        time.sleep(0.05)
    raise Interrupted(f"stopped by {stop.signal_name} after epoch 1; checkpoint saved")


@pytest.mark.parametrize("processes", [1, 2])
def test_a_failing_process_gives_the_job_its_one_line_reason(processes):
    with pytest.raises(TrainingError) as raised:
        launcher.launch(fails_on_the_last_rank, (processes,), processes)
    prefix = "" if processes == 1 else f"process {processes - 1} of {processes}: "
    assert str(raised.value) == prefix + "3 of 40 images in train are unreadable"
    assert not isinstance(raised.value, Interrupted)


def test_a_process_killed_by_a_signal_is_named_with_it():
    with pytest.raises(TrainingError, match=r"^process 1 of 2 was killed by SIGKILL before it could write a reason "
                                            r"\(the kernel's out-of-memory killer sends SIGKILL\)$"):
        launcher.launch(killed_on_rank_1, (), 2)


@pytest.mark.parametrize("processes", [1, 2])
def test_sigterm_reaches_every_process_and_ends_the_job_as_interrupted(processes, tmp_path):
    ready = tmp_path / "ready"
    script = ("import sys, test_launcher\nfrom train import launcher\nfrom train.errors import Interrupted\n"
              "try:\n    launcher.launch(test_launcher.waits_for_a_stop, (sys.argv[1],), int(sys.argv[2]))\n"
              "except Interrupted as error:\n    print('INTERRUPTED', error)\n")
    job = subprocess.Popen([sys.executable, "-c", script, str(ready), str(processes)], cwd=REPO, text=True,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           env={**os.environ, "PYTHONPATH": f"{REPO}:{REPO / 'tests'}"})
    try:
        poll_until(lambda: len(list(tmp_path.glob("ready.*"))) >= processes, timeout=60, seen=job.stdout.read,
                   alive=lambda: job.poll() is None)
        job.send_signal(signal.SIGTERM)  # what SageMaker sends the container (StopTrainingJob, spot)
        output, _ = job.communicate(timeout=60)
    finally:
        if job.poll() is None:
            job.kill()
            job.communicate()
    prefix = "" if processes == 1 else "process [01] of 2: "  # whichever stopped first
    assert re.search(f"^INTERRUPTED {prefix}stopped by SIGTERM after epoch 1; checkpoint saved$", output, re.M), output
    assert "Terminating process" not in output  # every process ended on its own
