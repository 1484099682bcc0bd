# Training image: `docker run IMAGE train` with /opt/ml/{input,model,output,checkpoints} mounted,
# as SageMaker runs it.
#   GPU instances (default): torch's CUDA 12.8 build from the default package index, and CUDA's
#   forward-compatibility libraries (from CUDA_COMPAT_IMAGE, the same CUDA 12.8) that the entry point
#   uses on hosts with drivers older than 570 (docs/training.md "GPUs and several hosts").
#   CPU instances: --build-arg TORCH_INDEX_URL=<PyTorch's CPU wheel index> (the "CPU" URL of
#   PyTorch's install selector); its torch==2.10.0+cpu outranks the CUDA build, ~4 GB smaller.
#   --build-arg BAKE_IMAGENET_WEIGHTS=true bakes torchvision's ResNet-50 ImageNet weights into
#   the image (needs internet at build time); without them, pass a `pretrained` channel.
# The int8 quantizer runs in a second, small virtualenv (/opt/quantize, QUANTIZE_PYTHON): ONNX
# Runtime's quantizer needs protobuf>=4.25.8 and ml_dtypes, smdebug pins protobuf 3.20.3.
# The virtualenv is built in the final stage on purpose: copying 5 GB out of a build stage costs
# minutes per build; the compiler sagemaker-training needs is removed in the same layer instead.
ARG BASE_IMAGE=python:3.11-slim-bookworm
# NVIDIA's CUDA base image carries the cuda-compat package for its CUDA release; only its compat/
# folder is taken. Its CUDA release must match torch's (tests/test_cuda_compat.py checks).
ARG CUDA_COMPAT_IMAGE=nvidia/cuda:12.8.1-base-ubuntu22.04
FROM ${CUDA_COMPAT_IMAGE} AS cuda-compat

FROM ${BASE_IMAGE}

ENV PATH=/opt/program:/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TORCH_HOME=/opt/torch \
    QUANTIZE_PYTHON=/opt/quantize/bin/python \
    SAGEMAKER_PROGRAM=train_entry.py
ARG TORCH_INDEX_URL=""

# Dependencies first (pinned in pyproject.toml), installed with empty stand-in packages so this
# layer only changes when the pins do. sagemaker-training compiles a C extension: a compiler,
# and Python's headers where the base's Python is Debian's own (python:* images ship theirs).
WORKDIR /src
COPY pyproject.toml ./
# hadolint ignore=DL3008,DL3013,SC2086
RUN apt-get update \
    && build_deps="gcc libc6-dev" \
    && if dpkg -s python3 >/dev/null 2>&1; then build_deps="$build_deps python3-dev"; fi \
    && apt-get install -y --no-install-recommends $build_deps \
    && python3 -m venv /opt/venv \
    && mkdir train imaging && touch train/__init__.py imaging/__init__.py \
    && pip install ${TORCH_INDEX_URL:+--extra-index-url "$TORCH_INDEX_URL"} ".[train,train-image]" \
    && python3 -m venv /opt/quantize \
    && /opt/quantize/bin/pip install ".[quantize]" \
    && apt-get purge -y --auto-remove $build_deps \
    && rm -rf /var/lib/apt/lists/* build ./*.egg-info

# The int8 check's emulated AVX2 CPU (train/int8_levels.py): QEMU's x86-64 user mode, the one binary
# of qemu-user-static it needs (the package carries every architecture's: 380 MB).
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get download qemu-user-static \
    && dpkg-deb -x qemu-user-static_*.deb /tmp/qemu \
    && mv /tmp/qemu/usr/bin/qemu-x86_64-static /usr/local/bin/ \
    && rm -rf /tmp/qemu qemu-user-static_*.deb /var/lib/apt/lists/*

COPY train ./train
COPY imaging ./imaging
COPY contract ./contract
RUN pip install --no-deps --force-reinstall . && rm -rf build ./*.egg-info

COPY --from=cuda-compat /usr/local/cuda-12.8/compat/ /usr/local/cuda/compat/

ARG BAKE_IMAGENET_WEIGHTS=false
RUN if [ "$BAKE_IMAGENET_WEIGHTS" = "true" ]; then python -m train.weights download --arch resnet50; fi
COPY docker/train/train docker/train/local-train docker/train/gpu-check /opt/program/
COPY docker/train/train_entry.py /opt/ml/code/train_entry.py
COPY bench/gpu.py /opt/ml/code/gpu_check.py
WORKDIR /opt/ml/code
# SageMaker runs `docker run IMAGE train`; SDK 3's ModelTrainer in LOCAL_CONTAINER mode passes no
# argument, and the base image's python3 would exit 0 with an empty model: no argument trains too.
CMD ["train"]
