"""Network isolation (SageMaker's EnableNetworkIsolation) for every training job, tuning job and model the
scripts create: the container gets no network at all, unless something the user asked for cannot run so;
then one line says what turned it off.

Neither image needs the network. Training finds its starting weights offline (train/weights.py), and SageMaker
itself moves the channels, checkpoints, Debugger and profiler output and the model between S3 and the container
(distributed training's peers still reach each other); the serving image only reads /opt/ml/model, and SageMaker
fetches multi-model artifacts and async payloads. tests/test_docker.py runs both images under
`docker run --network none`. SageMaker SDK local mode ignores the setting (its containers share a Compose network).
"""

from __future__ import annotations

# AWS's Serverless Inference page lists network isolation among the features a serverless endpoint lacks
SERVERLESS = "AWS's serverless endpoints do not support network isolation"


def network_isolation(off_because: str | None = None) -> bool:
    """True, or False with one line saying why (`off_because`: what the user asked for that needs it off)."""
    if off_because:
        print(f"network isolation: off ({off_because})")
        return False
    return True
