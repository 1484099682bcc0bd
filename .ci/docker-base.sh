#!/usr/bin/env bash
# Builds a Debian bookworm + Python 3.11 base image without any image registry (CI has none):
# debootstrap from the Debian mirror apt already uses, plus this machine's CA certificates
# (HTTPS from containers goes through a re-signing proxy here). Machine-specific by design:
# the Dockerfiles take their base as a build ARG and never see any of this.
# A second argument builds another architecture's base (arm64 for Graviton) through QEMU: Debian's
# qemu-user-static registered with binfmt_misc runs its programs (make graviton-check sets that up).
set -euo pipefail
IMAGE=${1:-local/python:3.11-bookworm}
ARCH=${2:-$(dpkg --print-architecture)}
if docker image inspect "$IMAGE" >/dev/null 2>&1; then
  echo "base image $IMAGE exists"; exit 0
fi
MIRROR=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
[ -n "$MIRROR" ] || MIRROR=$(awk '/^deb / {print $2; exit}' /etc/apt/sources.list)
ROOTFS=$(mktemp -d)
trap 'rm -rf "$ROOTFS"' EXIT
if [ "$ARCH" = "$(dpkg --print-architecture)" ]; then
  debootstrap --variant=minbase \
    --include=ca-certificates,python3,python3-venv,python3-pip \
    bookworm "$ROOTFS" "$MIRROR" >/dev/null
else  # unpack here, configure inside the root under emulation
  debootstrap --arch="$ARCH" --foreign --variant=minbase \
    --include=ca-certificates,python3,python3-venv,python3-pip \
    bookworm "$ROOTFS" "$MIRROR" >/dev/null
  chroot "$ROOTFS" /debootstrap/debootstrap --second-stage >/dev/null
fi
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
  cp /usr/local/share/ca-certificates/*.crt "$ROOTFS/usr/local/share/ca-certificates/"
  chroot "$ROOTFS" update-ca-certificates >/dev/null
fi
# python:3.11-slim-bookworm (the public default) has python3 and pip on PATH; so does this one.
rm -f "$ROOTFS"/usr/lib/python3*/EXTERNALLY-MANAGED
if [ "$ARCH" = "$(dpkg --print-architecture)" ]; then
  tar -C "$ROOTFS" -c . | docker import -c "ENV LANG=C.UTF-8" -c 'CMD ["python3"]' - "$IMAGE" >/dev/null
else  # docker import records the engine's own architecture: a FROM scratch build records the one asked for
  CONTEXT=$(mktemp -d)
  tar -C "$ROOTFS" -cf "$CONTEXT/rootfs.tar" .
  printf 'FROM scratch\nADD rootfs.tar /\nENV LANG=C.UTF-8\nCMD ["python3"]\n' > "$CONTEXT/Dockerfile"
  docker build -q --platform "linux/$ARCH" -t "$IMAGE" "$CONTEXT" >/dev/null
  rm -rf "$CONTEXT"
fi
echo "base image $IMAGE built"
