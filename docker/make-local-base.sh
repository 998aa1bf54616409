#!/usr/bin/env bash
# Make a Debian bookworm + Python 3.11 base image locally, with no container registry.
#
# Why: CI and air-gapped machines reach Debian's and PyPI's package mirrors but no container
# registry, so `FROM python:3.11-slim-bookworm` cannot be pulled. debootstrap builds the same
# distribution from Debian packages and `podman import` turns the root file system into an image
# that `--build-arg BASE_IMAGE=...` points the Dockerfile at. Bookworm's python3 is 3.11, the
# version disco pins.
#
# Usage: docker/make-local-base.sh [IMAGE_NAME]
#   IMAGE_NAME defaults to localhost/debian-bookworm-python:<yyyymmdd>; printed on stdout at the end.
# Environment:
#   DEBIAN_MIRROR   (default http://deb.debian.org/debian)
#   BASE_CACHE_DIR  where the finished rootfs tarball is kept and reused (default ~/.cache/disco-base)
#   FORCE=1         rebuild even if the image or a cached tarball exists
set -euo pipefail

DATE_TAG="$(date -u +%Y%m%d)"
IMAGE="${1:-localhost/debian-bookworm-python:${DATE_TAG}}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
CACHE_DIR="${BASE_CACHE_DIR:-${HOME}/.cache/disco-base}"
TARBALL="${CACHE_DIR}/debian-bookworm-python.tar"
# python3-venv gives ensurepip (pip for the image's venv); libsndfile1 is what soundfile loads;
# ca-certificates so pip reaches PyPI over TLS.
PACKAGES="python3,python3-venv,ca-certificates,libsndfile1,libgomp1"

log() { echo "make-local-base: $*" >&2; }

for tool in podman; do
  command -v "$tool" >/dev/null || { log "error: $tool not found (apt-get install -y podman buildah debootstrap)"; exit 2; }
done

if [ "${FORCE:-0}" != 1 ] && podman image exists "$IMAGE"; then
  log "image $IMAGE already present; FORCE=1 rebuilds it"
  echo "$IMAGE"
  exit 0
fi

if [ "${FORCE:-0}" = 1 ] || [ ! -s "$TARBALL" ]; then
  command -v debootstrap >/dev/null || { log "error: debootstrap not found (apt-get install -y debootstrap)"; exit 2; }
  [ "$(id -u)" = 0 ] || { log "error: debootstrap needs root"; exit 2; }
  mkdir -p "$CACHE_DIR"
  rootfs="$(mktemp -d "${CACHE_DIR}/rootfs.XXXXXX")"
  trap 'rm -rf "$rootfs"' EXIT
  log "debootstrap bookworm (minbase + $PACKAGES) from $MIRROR into $rootfs"
  start=$SECONDS
  debootstrap --variant=minbase --include="$PACKAGES" bookworm "$rootfs" "$MIRROR" >&2
  # The host's CA bundle too: a proxy or corporate CA trusted here must also be trusted in the image.
  if [ -s /etc/ssl/certs/ca-certificates.crt ]; then
    cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
  fi
  # Shrink: apt caches and docs are not needed at run time.
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
         "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/locale/*
  log "debootstrap took $((SECONDS - start)) s; packing rootfs"
  tar -C "$rootfs" --numeric-owner -cf "$TARBALL.tmp" .
  mv "$TARBALL.tmp" "$TARBALL"
else
  log "reusing cached rootfs $TARBALL"
fi

podman import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["/bin/bash"]' \
  "$TARBALL" "$IMAGE" >&2
log "imported $IMAGE"
echo "$IMAGE"
