"""A training job on this machine in the installed SageMaker SDK's own local mode (docker compose), for
debug_profile.py --local: SDK 3's ModelTrainer in LOCAL_CONTAINER mode, or SDK 2's Estimator with
instance_type "local". Both leave model.tar.gz and output.tar.gz in the job's download folder, and both call every
job Completed (docker compose's exit code is 0 whatever the container's), so the job's own failure file decides.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import shutil
from pathlib import Path

from scripts.estimator import local_job_failure, training_estimator

LOCAL_ROOT = "local-container"  # SDK 3's container root, inside the download folder, removed after the job


@dataclasses.dataclass(frozen=True)
class LocalJob:
    image_uri: str
    role: str
    hyperparameters: dict[str, str]
    channels: dict[str, Path]  # channel name -> a local file or folder
    environment: dict[str, str]
    job_name: str
    destination: Path  # model.tar.gz and output.tar.gz land here
    max_run_hours: float
    logs: bool = True


def installed_sdk() -> int:
    """3 where sagemaker-train (SDK 3) is installed, 2 where SDK 2's local mode is; one line where neither is."""
    if importlib.util.find_spec("sagemaker") is None:
        raise SystemExit("error: --local runs on the SageMaker Python SDK's local mode: pip install sagemaker "
                         "(make setup)")
    if importlib.util.find_spec("sagemaker.train") is not None:
        return 3
    if importlib.util.find_spec("sagemaker.local") is not None:
        return 2
    raise SystemExit("error: --local needs SageMaker Python SDK 3's ModelTrainer or SDK 2's local mode, and "
                     "this environment's sagemaker package has neither")


def run(job: LocalJob, boto) -> dict:
    """Run the job to its end; a description as DescribeTrainingJob's (status, failure reason)."""
    job.destination.mkdir(parents=True, exist_ok=True)
    description = run_sdk3(job, boto) if installed_sdk() == 3 else run_sdk2(job, boto)
    reason = local_job_failure(job.destination)
    if reason is not None:
        description = {**description, "TrainingJobStatus": "Failed", "FailureReason": reason}
    return description


def run_sdk3(job: LocalJob, boto) -> dict:
    """SDK 3's ModelTrainer, LOCAL_CONTAINER: it starts the image with no argument (the image trains then too)
    and writes compressed_artifacts/{model,output}.tar.gz under its container root."""
    from sagemaker.core.helper.session_helper import Session
    from sagemaker.core.training.configs import Compute, InputData, StoppingCondition
    from sagemaker.train import ModelTrainer
    from sagemaker.train.model_trainer import Mode

    root = job.destination / LOCAL_ROOT
    root.mkdir(parents=True, exist_ok=True)
    trainer = ModelTrainer(
        training_image=job.image_uri, training_mode=Mode.LOCAL_CONTAINER, role=job.role,
        sagemaker_session=Session(boto_session=boto),
        compute=Compute(instance_type="local_cpu", instance_count=1),
        stopping_condition=StoppingCondition(max_runtime_in_seconds=int(job.max_run_hours * 3600)),
        hyperparameters=dict(job.hyperparameters), environment=dict(job.environment),
        local_container_root=str(root.resolve()), base_job_name=job.job_name[:50])
    try:
        trainer.train(input_data_config=[InputData(channel_name=name, data_source=str(path.resolve()))
                                         for name, path in job.channels.items()], wait=True, logs=job.logs)
        for archive in ("model.tar.gz", "output.tar.gz"):
            made = root / "compressed_artifacts" / archive
            if made.is_file():
                shutil.move(made, job.destination / archive)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return {"TrainingJobName": job.job_name, "TrainingJobStatus": "Completed"}


def sdk2_session(boto, serving_port: int = 8080):
    """SDK 2's local-mode session: file:// channels and outputs stay on this machine, no bucket is touched and
    no account looked up."""
    from sagemaker.local import LocalSession

    session = LocalSession(boto_session=boto, default_bucket=f"sagemaker-{boto.region_name}-local")
    session.config = {"local": {"local_code": True, "serving_port": serving_port}}
    return session


def run_sdk2(job: LocalJob, boto) -> dict:
    """SDK 2's Estimator in local mode: model.tar.gz and output.tar.gz go straight into a file:// output path."""
    from sagemaker.exceptions import UnexpectedStatusException

    session = sdk2_session(boto)
    estimator = training_estimator(
        image_uri=job.image_uri, role=job.role, instance_type="local", session=session,
        hyperparameters=job.hyperparameters, output_path=f"file://{job.destination.resolve()}",
        max_run_hours=job.max_run_hours, base_job_name="dog-debug", debugger_hook_config=False,
        disable_profiler=True, environment=job.environment)
    try:
        estimator.fit({name: f"file://{path.resolve()}" for name, path in job.channels.items()},
                      job_name=job.job_name, wait=True, logs="All" if job.logs else "None")
    except UnexpectedStatusException:
        pass  # a failed job's tensors and rule results are the most useful ones: read them all the same
    return session.sagemaker_client.describe_training_job(TrainingJobName=job.job_name)
