#!/usr/bin/env bash
# Create the kind cluster and install KFP standalone (2.17) plus disco's resources.
#
# Usage: k8s/kind-up.sh [CLUSTER_NAME]      (make kind-up; KIND_CLUSTER=disco by default)
# Environment: DISCO_IMAGE (default localhost/disco/disco-cpu:$TAG) is the image the smoke test runs;
#              TAG (default <version>-<git sha>); SKIP_SMOKE=1 skips the image check.
# Then: make kind-load-images && make ui (http://localhost:8080) && make submit.
set -euo pipefail
cd "$(dirname "$0")/.."

CLUSTER="${1:-disco}"
VERSION="$(sed -n 's/^__version__ = "\(.*\)"/\1/p' disco/__init__.py)"
# -dirty as disco.images.git_sha and the Makefile: a changed or new (not ignored) file gives another tag.
SHA="$(git rev-parse --short=12 HEAD 2>/dev/null || echo nogit)"
if [ "$SHA" != nogit ] && [ -n "$(git status --porcelain 2>/dev/null)" ]; then SHA="$SHA-dirty"; fi
TAG="${TAG:-${VERSION}-${SHA}}"
DISCO_IMAGE="${DISCO_IMAGE:-localhost/disco/disco-cpu:${TAG}}"
# The same remote base as k8s/kfp/kustomization.yaml (a test keeps them equal); applied on its own so
# disco's smoke Job goes in only once its image is loaded.
KFP_BASE="https://github.com/kubeflow/pipelines//manifests/kustomize/env/platform-agnostic?ref=2.17.0"

need() { command -v "$1" >/dev/null || { echo "kind-up: error: $1 not found ($2)" >&2; exit 2; }; }
need kind "https://kind.sigs.k8s.io/docs/user/quick-start/#installation"
need kubectl "https://kubernetes.io/docs/tasks/tools/"

if kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
  echo "kind-up: cluster $CLUSTER exists; reusing it"
else
  echo "kind-up: creating cluster $CLUSTER"
  kind create cluster --name "$CLUSTER" --config k8s/kind-config.yaml --wait 120s
fi
kubectl config use-context "kind-$CLUSTER" >/dev/null

echo "kind-up: installing KFP 2.17 cluster-scoped resources"
kubectl apply -k k8s/kfp/cluster-scoped
kubectl wait --for condition=established --timeout=120s crd/applications.app.k8s.io

echo "kind-up: installing KFP 2.17 (platform-agnostic) and disco's resources"
# The smoke test's image tag is set in a throw-away copy, so the checked-in manifests stay as they are.
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
cp -r k8s/disco "$work/disco"
sed -i "s#newName: .*#newName: ${DISCO_IMAGE%:*}#; s#newTag: .*#newTag: ${DISCO_IMAGE##*:}#" "$work/disco/kustomization.yaml"
kubectl apply -k "$KFP_BASE"
kubectl -n kubeflow wait --for=condition=Available --timeout=900s deployment --all

if [ "${SKIP_SMOKE:-0}" != 1 ]; then
  if docker_ref=$(kind get nodes --name "$CLUSTER" | head -1) && \
     docker exec "$docker_ref" crictl images 2>/dev/null | grep -q "${DISCO_IMAGE%:*}"; then
    kubectl -n kubeflow delete job disco-image-smoke-test --ignore-not-found
    kubectl apply -k "$work/disco"
    kubectl -n kubeflow wait --for=condition=Complete --timeout=300s job/disco-image-smoke-test
    kubectl -n kubeflow logs job/disco-image-smoke-test
  else
    kubectl apply -f k8s/disco/limitrange.yaml -n kubeflow
    echo "kind-up: $DISCO_IMAGE not loaded yet: run 'make build-images kind-load-images', then" \
         "'kubectl apply -k k8s/disco' (or re-run kind-up) to check it"
  fi
fi
echo "kind-up: ready. UI: make ui  ->  http://localhost:8080 ; submit: make submit"
