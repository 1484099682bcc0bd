"""Errors that end a training job, and the failure file SageMaker shows as FailureReason."""

from __future__ import annotations

import os
import re
import signal
import sys
from pathlib import Path

# SageMaker truncates FailureReason at 1024 characters.
_MAX_REASON_CHARS = 1000


class TrainingError(Exception):
    """A failure with a reason a user can act on (bad data, missing weights, ...)."""


class UsageError(TrainingError):
    """A bad flag or hyperparameter value."""


class Interrupted(TrainingError):
    """The job got SIGTERM (spot interruption, StopTrainingJob) and saved a checkpoint."""


def one_line_reason(error: BaseException) -> str:
    if isinstance(error, TrainingError):
        text = str(error)
    else:
        text = f"{type(error).__name__}: {error}"
    text = " ".join(text.split())
    return text[:_MAX_REASON_CHARS] if text else type(error).__name__


def write_failure_file(path: Path, reason: str) -> None:
    """Write the one-line reason; never raise, the job is failing already."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(reason + "\n")
    except OSError as error:
        print(f"could not write failure file {path}: {error}", file=sys.stderr)


def clear_failure_file(path: Path) -> None:
    # A stale failure file from an earlier attempt (e.g. a spot restart) must not
    # outlive a successful run.
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as error:  # the job may still succeed; if it fails, writing the reason says why
        print(f"could not remove an earlier failure file {path}: {error}", file=sys.stderr)


def reason_for_silent_exit(toolkit_message: str) -> str:
    """One line for a training program that ended without writing its reason (killed by a signal, say),
    from the sagemaker-training toolkit's multi-line message ("ExecuteUserScriptError:\nExitCode -9 ...")."""
    match = re.search(r"ExitCode (-?\d+)", toolkit_message)
    if match is None:
        return one_line_reason(TrainingError(toolkit_message or "the training program failed without a reason"))
    code = int(match.group(1))
    number = -code if code < 0 else code - 128 if code > 128 else None
    try:
        name = signal.Signals(number).name if number else None
    except ValueError:
        name = None
    if name is None:
        return f"the training program exited with code {code} without writing a reason; its log has the last lines"
    cause = " (the kernel's out-of-memory killer sends it: a smaller --batch-size or fewer --num-workers)" \
        if name == "SIGKILL" else ""
    return f"the training program was killed by {name}{cause} before it could write a reason; its log has the rest"
