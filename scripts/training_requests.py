"""The CreateTrainingJob and CreateHyperParameterTuningJob requests the scripts send, built here field by field
as SageMaker's API reference names them and sent with boto3.

Why not through the SageMaker Python SDK: the request must not depend on which SDK a user has. SDK 2's
Estimator and HyperparameterTuner are gone from SDK 3, and SDK 3's replacements drop fields this project
needs: its HyperparameterTuner never sends EnableNetworkIsolation (sagemaker-train 1.27.0,
`_build_training_job_definition`), and ModelTrainer has no Debugger or profiler fields. boto3 is in both
environments and sends exactly this. The fields and their values are the ones SDK 2 sent for the same flags
(tests/test_cloud_scripts.py compares them).
"""

from __future__ import annotations

import dataclasses

from scripts.isolation import network_isolation
from train.metrics import metric_definitions

HOUR = 3600
# What a dogImages job needs on a GPU instance; the images and the model come to ~2 GB.
DEFAULT_MAX_RUN_HOURS = 6
DEFAULT_VOLUME_GB = 30
TUNING_JOB_NAME_LENGTH = 32  # SageMaker's limit for tuning jobs (63 for training jobs)


@dataclasses.dataclass(frozen=True)
class TrainingJobSpec:
    """What a training job (or every trial of a tuning job) runs: the image, its inputs and its limits."""

    image_uri: str
    role: str
    instance_type: str
    channels: dict[str, str]  # channel name -> S3 prefix or object
    output_path: str
    hyperparameters: dict[str, str]
    instance_count: int = 1
    spot: bool = False
    checkpoint_s3_uri: str | None = None
    max_run_hours: float = DEFAULT_MAX_RUN_HOURS


def _channels(channels: dict[str, str]) -> list[dict]:
    return [{"ChannelName": name,
             "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": uri,
                                             "S3DataDistributionType": "FullyReplicated"}}}
            for name, uri in channels.items()]


def _definition(spec: TrainingJobSpec) -> dict:
    """The fields a training job and a tuning job's trials share."""
    max_run = int(spec.max_run_hours * HOUR)
    stopping = {"MaxRuntimeInSeconds": max_run}
    definition = {
        "AlgorithmSpecification": {"TrainingImage": spec.image_uri, "TrainingInputMode": "File",
                                   # the training program's own regexes: they cannot drift from what it prints
                                   "MetricDefinitions": metric_definitions()},
        "RoleArn": spec.role,
        "InputDataConfig": _channels(spec.channels),
        "OutputDataConfig": {"S3OutputPath": spec.output_path},
        "StoppingCondition": stopping,
        "EnableNetworkIsolation": network_isolation(),
    }
    if spec.spot:
        # Managed spot: an interrupted job restarts under the same name and resumes from its checkpoint.
        definition["EnableManagedSpotTraining"] = True
        stopping["MaxWaitTimeInSeconds"] = max_run + HOUR
    if spec.checkpoint_s3_uri:
        # SageMaker syncs /opt/ml/checkpoints with this prefix; the trailing / keeps .../ckpt-1 from also
        # syncing .../ckpt-10. Each job keeps its checkpoint in a folder of its own name there.
        definition["CheckpointConfig"] = {"S3Uri": spec.checkpoint_s3_uri.rstrip("/") + "/"}
    return definition


def _resources(spec: TrainingJobSpec) -> dict:
    return {"InstanceCount": spec.instance_count, "InstanceType": spec.instance_type,
            "VolumeSizeInGB": DEFAULT_VOLUME_GB}


def create_training_job(spec: TrainingJobSpec, name: str, debugging: dict | None = None) -> dict:
    """CreateTrainingJob's request. `debugging`: DebugHookConfig, DebugRuleConfigurations, ProfilerConfig, ...;
    without it the job has neither hook nor profiler (each costs a rule job)."""
    return {"TrainingJobName": name, **_definition(spec), "ResourceConfig": _resources(spec),
            "HyperParameters": dict(spec.hyperparameters),
            **(debugging or {"ProfilerConfig": {"DisableProfiler": True}})}


@dataclasses.dataclass(frozen=True)
class SearchSpace:
    """The tuned hyperparameters: continuous ones (name -> (min, max), log scale) and categorical ones."""

    continuous: dict[str, tuple[float, float]]
    categorical: dict[str, list]


def create_tuning_job(spec: TrainingJobSpec, name: str, objective: str, space: SearchSpace, max_jobs: int,
                      max_parallel_jobs: int) -> dict:
    """CreateHyperParameterTuningJob's request: Bayesian search maximising `objective`, early stopping Auto."""
    definition = _definition(spec)
    definition.update(StaticHyperParameters=dict(spec.hyperparameters),
                      HyperParameterTuningResourceConfig=_resources(spec))
    ranges = {
        "ContinuousParameterRanges": [{"Name": key, "MinValue": str(low), "MaxValue": str(high),
                                       "ScalingType": "Logarithmic"} for key, (low, high) in space.continuous.items()],
        "CategoricalParameterRanges": [{"Name": key, "Values": [str(value) for value in values]}
                                       for key, values in space.categorical.items()],
        "IntegerParameterRanges": [],
    }
    return {
        "HyperParameterTuningJobName": name,
        "HyperParameterTuningJobConfig": {
            "Strategy": "Bayesian",
            "HyperParameterTuningJobObjective": {"Type": "Maximize", "MetricName": objective},
            "ResourceLimits": {"MaxNumberOfTrainingJobs": max_jobs, "MaxParallelTrainingJobs": max_parallel_jobs},
            "ParameterRanges": ranges,
            "TrainingJobEarlyStoppingType": "Auto",
        },
        "TrainingJobDefinition": definition,
    }
