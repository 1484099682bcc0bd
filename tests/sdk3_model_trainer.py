"""A training job as a user of SageMaker Python SDK 3 starts one locally: ModelTrainer in LOCAL_CONTAINER mode
with the training image, hyperparameters as Python values, one local folder as the `training` channel.

Run by make setup's Python (SDK 3); SDK 2's local mode runs in .venv-sdk2 (make setup-sdk2).
Usage: sdk3_model_trainer.py IMAGE DATA_DIR CONTAINER_ROOT INSTANCE_COUNT HYPERPARAMETERS_JSON
Prints `MODEL-DATA <path of model.tar.gz>` when SDK 3 says the job is done. Like SDK 2's local mode, it judges
by docker compose's exit code, which is 0 whatever the containers' are: the caller reads the job's failure file
beside it (scripts/estimator.py local_job_failure).
"""

import json
import sys

from sagemaker.core.training.configs import Compute, InputData
from sagemaker.train import ModelTrainer
from sagemaker.train.model_trainer import Mode

image, data_dir, container_root, instance_count, hyperparameters = sys.argv[1:6]
trainer = ModelTrainer(
    training_image=image,
    training_mode=Mode.LOCAL_CONTAINER,
    compute=Compute(instance_type="local_cpu", instance_count=int(instance_count)),
    # JSON's true, 32 and 0.01 arrive as Python values: ModelTrainer encodes them its own way ("true", "32")
    hyperparameters=json.loads(hyperparameters),
    local_container_root=container_root,
    base_job_name="dog-sdk3",
)
trainer.train(input_data_config=[InputData(channel_name="training", data_source=data_dir)], wait=True)
print(f"MODEL-DATA {container_root}/compressed_artifacts/model.tar.gz")
