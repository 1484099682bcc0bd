# Serving image: `docker run IMAGE serve`, SageMaker's real-time endpoint contract on port 8080.
# No torch: ONNX Runtime, Pillow, numpy, multi-model-server (Java 17) and sagemaker-inference.
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS build
# a JDK here only: it compiles the /execution-parameters plugin (serve/mms_plugins); the image has a JRE
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends openjdk-17-jdk-headless \
    && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml ./
# hadolint ignore=DL3013
RUN mkdir serve imaging && touch serve/__init__.py imaging/__init__.py && pip install ".[serve]"
COPY serve ./serve
COPY imaging ./imaging
COPY contract ./contract
# (build/ holds the empty stand-ins with newer mtimes: drop it, or setuptools keeps them)
RUN rm -rf build ./*.egg-info && pip install --no-deps --force-reinstall . && python -m serve.mms_plugins

FROM ${BASE_IMAGE}
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends openjdk-17-jre-headless \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /opt/venv /opt/venv
COPY docker/serve/serve /usr/local/bin/serve
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1
LABEL com.amazonaws.sagemaker.capabilities.accept-bind-to-port=true \
      com.amazonaws.sagemaker.capabilities.multi-models=true
EXPOSE 8080
WORKDIR /opt/ml
# SageMaker starts the container as root; `serve` runs the model server as this unprivileged user (docker/serve/serve)
RUN useradd --system --uid 10001 --user-group --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin model-server
# SageMaker runs `docker run IMAGE serve`; SDK 3's local modes and a bare `docker run IMAGE` give no
# argument, and would otherwise run the base image's python3 and exit 0 having served nothing.
CMD ["serve"]
