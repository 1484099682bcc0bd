"""The SageMaker SDK 2 Estimator for the training image (debug/profile and local mode), and the checks of the
hyperparameters every script sends.

Its metric definitions are the training program's own (`train/metrics.py`), as in the requests
scripts/training_requests.py builds, so the regexes SageMaker reads with can never drift from the lines the
job prints.
"""

from __future__ import annotations

import dataclasses
import tarfile
from pathlib import Path, PurePosixPath

from scripts.isolation import network_isolation
from scripts.training_requests import DEFAULT_MAX_RUN_HOURS, DEFAULT_VOLUME_GB, HOUR
from train.errors import UsageError
from train.hyperparameters import PathOverrides
from train.hyperparameters import parse_args as parse_training_flags
from train.metrics import metric_definitions


def parse_hyperparameters(pairs: list[str]) -> dict[str, str]:
    """`name=value` pairs (SageMaker's string form), checked by the training program's own parser."""
    hyperparameters = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise UsageError(f"expected name=value, got {pair!r}")
        hyperparameters[name.strip().lstrip("-")] = value.strip()
    check_hyperparameters(hyperparameters)
    return hyperparameters


def check_hyperparameters(hyperparameters: dict[str, str]) -> None:
    """Refuse before any AWS call what the training job would refuse after minutes of provisioning."""
    flags = [part for name, value in hyperparameters.items() for part in (f"--{name}", str(value))]
    _, _, namespace = parse_training_flags(flags)  # raises UsageError naming the flag
    given_paths = sorted(field.name for field in dataclasses.fields(PathOverrides)
                         if getattr(namespace, field.name) is not None)
    if given_paths:
        raise UsageError(f"--{given_paths[0].replace('_', '-')} is a path flag, not a hyperparameter: "
                         "SageMaker sets the paths of a job")
    # A weights path names a file in the container, which this machine cannot see: only its form is checked.
    if namespace.weights not in ("imagenet", "none") and not PurePosixPath(namespace.weights).is_absolute():
        raise UsageError(f"--weights {namespace.weights}: give the file's path inside the container, e.g. "
                         "/opt/ml/input/data/pretrained/model.tar.gz for a `pretrained` channel")


def training_estimator(*, image_uri: str, role: str, instance_type: str, session, hyperparameters: dict,
                       instance_count: int = 1, output_path: str | None = None, spot: bool = False,
                       checkpoint_s3_uri: str | None = None, max_run_hours: float = DEFAULT_MAX_RUN_HOURS,
                       base_job_name: str = "dog-classifier", **debugging):
    """An Estimator on our image. `debugging`: debugger_hook_config, rules, profiler_config, ..."""
    from sagemaker.estimator import Estimator

    max_run = int(max_run_hours * HOUR)
    spot_options = {}
    if checkpoint_s3_uri:
        # SageMaker syncs /opt/ml/checkpoints with this prefix; the trailing / keeps .../ckpt-1 from
        # also syncing .../ckpt-10. Each job keeps its checkpoint in a folder of its own name there.
        spot_options["checkpoint_s3_uri"] = checkpoint_s3_uri.rstrip("/") + "/"
    if spot:
        # Managed spot: an interrupted job restarts under the same name and resumes from its checkpoint.
        spot_options.update(use_spot_instances=True, max_wait=max_run + HOUR)
    if not debugging:
        # No Debugger hook or profiler unless asked for (debug_profile.py): they cost a rule job each.
        debugging = {"debugger_hook_config": False, "disable_profiler": True}
    return Estimator(
        image_uri=image_uri,
        role=role,
        instance_count=instance_count,
        instance_type=instance_type,
        volume_size=DEFAULT_VOLUME_GB,
        max_run=max_run,
        hyperparameters=dict(hyperparameters),
        metric_definitions=metric_definitions(),
        output_path=output_path,
        base_job_name=base_job_name,
        sagemaker_session=session,
        enable_network_isolation=network_isolation(),  # tuning jobs take it from here too
        **spot_options,
        **debugging,
    )



def local_job_failure(output_dir: Path) -> str | None:
    """The failure reason of a local-mode job, or None if it succeeded.

    SageMaker SDK local mode decides by `docker compose up --abort-on-container-exit`'s exit code, and
    Compose v2 exits 0 whatever the containers' codes (measured: 2.40.3), so a failed job is reported
    Completed. The job's own failure file, which local mode packs into output.tar.gz, is the sign left.
    """
    archive = output_dir / "output.tar.gz"
    if not archive.is_file():
        return "the job left no output.tar.gz (local mode writes it even for a failed job)"
    with tarfile.open(archive) as outputs:
        member = next((m for m in outputs.getmembers() if m.isfile() and m.name.lstrip("./") == "failure"), None)
        if member is None:
            return None
        return outputs.extractfile(member).read().decode(errors="replace").strip() or "failed without a reason"
