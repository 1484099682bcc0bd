"""`python -m train`: parse flags, read the environment, train, and turn any error into a failure file."""

from __future__ import annotations

import logging
import os
import sys
import warnings

from train.diagnostics.settings import settings_from
from train.environment import failure_copy_from, failure_file_from, read_environment
from train.errors import Interrupted, UsageError, clear_failure_file, one_line_reason, write_failure_file
from train.hyperparameters import PathOverrides, base_dir_flag, check_files, parse_args
from train.metrics import print_metric_definitions

log = logging.getLogger("train")

EXIT_FAILURE = 1
EXIT_INTERRUPTED = 143  # 128 + SIGTERM, what a shell reports for a process SIGTERM ended


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stdout)
    warnings.filterwarnings("ignore", message=".*TypedStorage is deprecated.*")
    argv = sys.argv[1:] if argv is None else argv
    environ = os.environ
    # The failure file of the base dir in force, known before the flags are (a flag error goes there too); an
    # earlier run's failure must not outlive this run's start.
    failure_file = failure_file_from(environ, PathOverrides(base_dir=base_dir_flag(argv)))
    clear_failure_file(failure_file)
    try:
        hyperparameters, overrides, namespace = parse_args(argv)
    except UsageError as error:
        return _fail(failure_file, f"invalid hyperparameter: {error}", EXIT_FAILURE, error, traceback=False)
    if namespace.print_metric_definitions:
        print_metric_definitions()
        return 0
    try:
        env = read_environment(environ, overrides)
        check_files(hyperparameters)
        log.info("hyperparameters: %s", hyperparameters)
        from train import trainer  # torch is imported only once the flags are known to be good

        trainer.run(hyperparameters, env, settings_from(namespace))
    except Interrupted as error:
        return _fail(failure_file, one_line_reason(error), EXIT_INTERRUPTED, error, traceback=False)
    except Exception as error:  # noqa: BLE001 - every error must end in a failure file
        return _fail(failure_file, one_line_reason(error), EXIT_FAILURE, error, traceback=True)
    log.info("training finished")
    return 0


def _fail(failure_file, reason: str, code: int, error: BaseException, traceback: bool) -> int:
    log.error("training failed: %s", reason, exc_info=error if traceback else None)
    write_failure_file(failure_file, reason)
    copy = failure_copy_from(os.environ)
    if copy is not None:
        write_failure_file(copy, reason)
    return code
