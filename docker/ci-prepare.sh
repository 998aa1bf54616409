#!/usr/bin/env bash
# CI preparation for the image tests (tests/test_images.py, markers `images` + `slow`) and the
# report's browser test (tests/test_report.py): installs buildah, podman, debootstrap and chromium
# from Debian's packages. Without them those tests skip with a reason naming the missing tool. Idempotent; measured ~11 s here (apt-get update + install).
# Intended to run from .ci/run before `make test`, as root (CI runs as root).
set -euo pipefail
missing=()
for tool in buildah podman debootstrap chromium; do
  command -v "$tool" >/dev/null 2>&1 || [ -x "/usr/sbin/$tool" ] || missing+=("$tool")
done
if [ "${#missing[@]}" -eq 0 ]; then
  echo "ci-prepare: buildah, podman, debootstrap and chromium present"
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "ci-prepare: not root; cannot install ${missing[*]} (image tests will skip)" >&2
  exit 0
fi
echo "ci-prepare: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${missing[@]}" >/dev/null
buildah --version
