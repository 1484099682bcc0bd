#!/usr/bin/env bash
# Build both images, push them to ECR, upload the dataset to S3, and start the tuning job.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: scripts/push_and_tune.sh --role ROLE_ARN --data PATH_OR_S3_URI [options] [-- tune.py options]

Builds the training and serving images (or takes ones built already: --train-image, --serve-image),
makes sure their ECR repositories exist (created
with scan on push if missing), logs Docker in with `aws ecr get-login-password`, tags each
image with the git commit and `latest` and pushes both; uploads the dataset to S3 when
--data is a local folder (train/ valid/ test/); then starts the tuning job with
scripts/tune.py. Options after `--` go to tune.py (e.g. -- --max-jobs 4 --spot --wait).

  --role ARN              SageMaker execution role (required unless --no-tune)
  --data PATH|S3_URI      dataset folder to upload, or an S3 prefix already holding it
  --fetch-dogimages DIR   download dogImages into DIR first (if not there yet) and use it as --data
  --dogimages-url URL     archive to fetch (default: the public dogImages.zip)
  --bucket NAME           upload bucket (default: sagemaker-REGION-ACCOUNT, created if missing)
  --registry HOST[:PORT]  push here instead of ACCOUNT.dkr.ecr.REGION.amazonaws.com
  --train-repository NAME default dog-classifier-train
  --serve-repository NAME default dog-classifier-serve
  --tag TAG               image tag besides latest (default: the git commit, -dirty if changed)
  --train-image IMAGE     push this local image as the training image instead of building it (one your CI built)
  --serve-image IMAGE     the same for the serving image (single-platform only)
  --build-arg NAME=VALUE  passed to both docker builds (repeatable), e.g. TORCH_INDEX_URL=...
  --platforms LIST        the serving image's platforms, e.g. linux/amd64,linux/arm64 (arm64: Graviton,
                          ml.c7g/ml.m7g), pushed as one multi-arch manifest (default linux/amd64; arm64 is
                          built through QEMU here: make graviton-check first). Training stays linux/amd64.
  --arm64-build-arg NAME=VALUE  for the arm64 serving build only, e.g. an arm64 BASE_IMAGE
  --no-tune               stop after pushing and uploading
  --region REGION         AWS region (default: the credential chain's)
  --profile NAME          AWS profile (default: the credential chain's)
  -h, --help              this text

Needs docker, the AWS CLI and the project's Python environment (PYTHON, default python3).
EOF
}

fail() { echo "error: $*" >&2; exit 2; }
need_value() { [ $# -ge 2 ] && [ -n "$2" ] || fail "argument $1: expected a value"; }

here=$(cd "$(dirname "$0")" && pwd)
repo_root=$(dirname "$here")
PYTHON=${PYTHON:-python3}
role="" data="" fetch_dir="" dogimages_url="" bucket="" registry="" tag="" tune=true
train_source="" serve_source=""  # --train-image / --serve-image: local images pushed as they are
train_repository=dog-classifier-train serve_repository=dog-classifier-serve
aws_args=() build_args=() tune_args=() arm64_build_args=() platforms=linux/amd64

while [ $# -gt 0 ]; do
  case "$1" in
    --role) need_value "$@"; role=$2; shift 2 ;;
    --data) need_value "$@"; data=$2; shift 2 ;;
    --fetch-dogimages) need_value "$@"; fetch_dir=$2; shift 2 ;;
    --dogimages-url) need_value "$@"; dogimages_url=$2; shift 2 ;;
    --bucket) need_value "$@"; bucket=$2; shift 2 ;;
    --registry) need_value "$@"; registry=$2; shift 2 ;;
    --train-repository) need_value "$@"; train_repository=$2; shift 2 ;;
    --serve-repository) need_value "$@"; serve_repository=$2; shift 2 ;;
    --tag) need_value "$@"; tag=$2; shift 2 ;;
    --train-image) need_value "$@"; train_source=$2; shift 2 ;;
    --serve-image) need_value "$@"; serve_source=$2; shift 2 ;;
    --build-arg) need_value "$@"; build_args+=(--build-arg "$2"); shift 2 ;;
    --platforms) need_value "$@"; platforms=$2; shift 2 ;;
    --arm64-build-arg) need_value "$@"; arm64_build_args+=(--build-arg "$2"); shift 2 ;;
    --no-tune) tune=false; shift ;;
    --region|--profile) need_value "$@"; aws_args+=("$1" "$2"); shift 2 ;;
    -h|--help) usage; exit 0 ;;
    --) shift; tune_args=("$@"); break ;;
    *) fail "unknown argument $1 (see --help)" ;;
  esac
done

# Check everything before building or calling AWS.
role_pattern='^arn:aws[a-z-]*:iam::[0-9]{12}:role/[A-Za-z0-9_+=,.@/-]+$'
repository_pattern='^([a-z0-9]+([._-][a-z0-9]+)*/)*[a-z0-9]+([._-][a-z0-9]+)*$'
if $tune; then
  [ -n "$role" ] || fail "argument --role: required (or --no-tune)"
  [[ $role =~ $role_pattern ]] || fail "argument --role: expected an IAM role ARN like arn:aws:iam::123456789012:role/SageMakerExecutionRole, got '$role'"
fi
[ -n "$data" ] || [ -n "$fetch_dir" ] || fail "argument --data: required (a dataset folder or an S3 prefix), or --fetch-dogimages DIR"
[ -z "$data" ] || [ -z "$fetch_dir" ] || fail "argument --fetch-dogimages: not with --data"
if [ -n "$data" ] && [[ $data != s3://* ]]; then
  [ -d "$data" ] || fail "argument --data: folder $data does not exist"
  for split in train valid; do
    [ -d "$data/$split" ] || fail "argument --data: $data has no $split/ folder (expected train/ valid/ test/)"
  done
fi
[[ $data != s3://* ]] || [[ $data =~ ^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?$ ]] || fail "argument --data: expected an S3 URI like s3://bucket/dogImages, got '$data'"
for name in "$train_repository" "$serve_repository"; do
  [[ $name =~ $repository_pattern ]] || fail "argument --train-repository/--serve-repository: expected an ECR repository name, got '$name'"
done
[ -z "$tag" ] || [[ $tag =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]] || fail "argument --tag: not a valid image tag: '$tag'"
IFS=, read -r -a platform_list <<< "$platforms"
for platform in "${platform_list[@]}"; do
  [[ $platform == linux/amd64 || $platform == linux/arm64 ]] \
    || fail "argument --platforms: expected linux/amd64 and/or linux/arm64 (comma-separated), got '$platform'"
done
[ ${#arm64_build_args[@]} -eq 0 ] || [[ ,$platforms, == *,linux/arm64,* ]] \
  || fail "argument --arm64-build-arg: needs --platforms with linux/arm64"
[ -z "$serve_source" ] || [ "$platforms" = linux/amd64 ] \
  || fail "argument --serve-image: a single-platform image; build a multi-arch one here with --platforms instead"
command -v docker >/dev/null || fail "docker not found: install Docker (the images are built here)"
for source in "$train_source" "$serve_source"; do
  # `--`: a value such as --help is an image name here, never one of docker's own flags
  [ -z "$source" ] || docker image inspect -- "$source" >/dev/null 2>&1 \
    || fail "argument --train-image/--serve-image: no local image '$source' (docker images lists them)"
done
command -v aws >/dev/null || fail "aws not found: install the AWS CLI (pip install awscli, or AWS CLI v2)"

aws_() { aws "${aws_args[@]}" "$@"; }
region=""  # --region, else the environment, else the profile's
for ((i = 0; i < ${#aws_args[@]}; i += 2)); do
  [ "${aws_args[i]}" != --region ] || region=${aws_args[i + 1]}
done
region=${region:-${AWS_REGION:-${AWS_DEFAULT_REGION:-$(aws_ configure get region 2>/dev/null || true)}}}
[ -n "$region" ] || fail "no AWS region: pass --region or set AWS_DEFAULT_REGION (or a region in your profile)"
account=$(aws_ sts get-caller-identity --query Account --output text) \
  || fail "AWS credentials do not work (aws sts get-caller-identity failed): check --profile or your credentials"
registry=${registry:-$account.dkr.ecr.$region.amazonaws.com}
bucket=${bucket:-sagemaker-$region-$account}
if [ -z "$tag" ]; then
  tag=$(git -C "$repo_root" rev-parse --short=12 HEAD 2>/dev/null || echo manual)
  [ -z "$(git -C "$repo_root" status --porcelain 2>/dev/null)" ] || tag="$tag-dirty"
fi

echo "== images ($tag): training for linux/amd64, serving for $platforms"
# SageMaker's instances are x86_64 (Graviton's ml.c7g/m7g: arm64, serving only): an image built for
# this machine's architecture alone (arm64 on Apple silicon) would fail there with "exec format error".
take_built() {  # take_built KIND SOURCE REPOSITORY: a local image (--train-image/--serve-image) as TAG and latest
  echo "$1 image: $2, as built"
  docker tag -- "$2" "$registry/$3:$tag"
  docker tag -- "$2" "$registry/$3:latest"
}
if [ -n "$train_source" ]; then
  take_built training "$train_source" "$train_repository"
else
  docker build --platform linux/amd64 "${build_args[@]}" -f "$repo_root/docker/train.Dockerfile" \
    -t "$registry/$train_repository:$tag" -t "$registry/$train_repository:latest" "$repo_root"
fi
multi_arch=false
[ "$platforms" = linux/amd64 ] || multi_arch=true
serve_refs=()  # one image per platform, tagged TAG-ARCH, when the serving image is multi-arch
if [ -n "$serve_source" ]; then
  take_built serving "$serve_source" "$serve_repository"
  platform_list=()  # nothing to build
fi
for platform in "${platform_list[@]}"; do
  arch=${platform#linux/}
  extra=()
  [ "$arch" != arm64 ] || extra=("${arm64_build_args[@]}")
  if $multi_arch; then
    tags=(-t "$registry/$serve_repository:$tag-$arch")
    serve_refs+=("$registry/$serve_repository:$tag-$arch")
  else
    tags=(-t "$registry/$serve_repository:$tag" -t "$registry/$serve_repository:latest")
  fi
  docker build --platform "$platform" "${build_args[@]}" "${extra[@]}" -f "$repo_root/docker/serve.Dockerfile" \
    "${tags[@]}" "$repo_root"
done

echo "== ECR repositories"
for name in "$train_repository" "$serve_repository"; do
  if aws_ ecr describe-repositories --repository-names "$name" >/dev/null 2>&1; then
    echo "$name exists"
  else
    aws_ ecr create-repository --repository-name "$name" \
      --image-scanning-configuration scanOnPush=true >/dev/null
    echo "$name created (scan on push)"
  fi
done
aws_ ecr get-login-password | docker login --username AWS --password-stdin "$registry"

echo "== pushing to $registry"
docker push "$registry/$train_repository:$tag"
docker push "$registry/$train_repository:latest"
if $multi_arch; then
  for ref in "${serve_refs[@]}"; do docker push "$ref"; done
  insecure=()  # a plain-HTTP registry on this machine (the tests' stand-in for ECR)
  [[ $registry != 127.0.0.1:* && $registry != localhost:* ]] || insecure=(--insecure)
  for name in "$registry/$serve_repository:$tag" "$registry/$serve_repository:latest"; do
    docker manifest rm "$name" >/dev/null 2>&1 || true
    docker manifest create "${insecure[@]}" "$name" "${serve_refs[@]}" >/dev/null
    docker manifest push "${insecure[@]}" "$name"
  done
  echo "serving image: one manifest for $platforms ($registry/$serve_repository:$tag)"
else
  docker push "$registry/$serve_repository:$tag"
  docker push "$registry/$serve_repository:latest"
fi

if [ -n "$fetch_dir" ]; then
  if [ -d "$fetch_dir/train" ] && [ -d "$fetch_dir/valid" ]; then
    echo "== dogImages already in $fetch_dir"
  else
    echo "== fetching dogImages into $fetch_dir"
    (cd "$repo_root" && "$PYTHON" -m train.dogimages "$fetch_dir" ${dogimages_url:+--url "$dogimages_url"})
  fi
  data=$fetch_dir
fi
if [[ $data != s3://* ]]; then
  target="s3://$bucket/dog-classifier/data/$(basename "$(cd "$data" && pwd)")"
  echo "== uploading $data to $target"
  aws_ s3api head-bucket --bucket "$bucket" >/dev/null 2>&1 || aws_ s3 mb "s3://$bucket"
  aws_ s3 sync "$data" "$target" --only-show-errors
  data=$target
fi

train_image="$registry/$train_repository:$tag"
serve_image="$registry/$serve_repository:$tag"
echo "training image: $train_image"
echo "serving image:  $serve_image"
echo "data:           $data"
if $tune; then
  echo "== starting the tuning job"
  (cd "$repo_root" && "$PYTHON" scripts/tune.py --image-uri "$train_image" --role "$role" --data "$data" \
    "${aws_args[@]}" "${tune_args[@]}")
fi
