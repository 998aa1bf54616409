#!/usr/bin/env bash
# Add a GPU node pool to an existing GKE cluster, shaped to what the disco pipeline compiles to
# with GPU requests on (pipelines/factory.py GpuConfig): the embed and train pods ask for
# `nvidia.com/gpu: 1`, select nodes by `cloud.google.com/gke-accelerator=<type>` and tolerate the
# `nvidia.com/gpu` NoSchedule taint.
#
# GKE itself labels GPU nodes cloud.google.com/gke-accelerator=<type> and taints them
# nvidia.com/gpu=present:NoSchedule; we set the taint explicitly too so the contract is visible.
# `gpu-driver-version=default` makes GKE install the NVIDIA driver (no driver DaemonSet to manage).
#
# Usage: k8s/gke/create-gpu-pool.sh CLUSTER [REGION_OR_ZONE]
# Environment: PROJECT, GPU_TYPE (nvidia-tesla-t4), GPU_COUNT (1), MACHINE_TYPE (n1-standard-8),
#              MAX_NODES (2), POOL (disco-gpu), DRY_RUN=1 prints the command only.
set -euo pipefail

CLUSTER="${1:?usage: $0 CLUSTER [REGION_OR_ZONE]}"
LOCATION="${2:-us-central1-a}"
GPU_TYPE="${GPU_TYPE:-nvidia-tesla-t4}"
GPU_COUNT="${GPU_COUNT:-1}"
MACHINE_TYPE="${MACHINE_TYPE:-n1-standard-8}"
MAX_NODES="${MAX_NODES:-2}"
POOL="${POOL:-disco-gpu}"

location_flag="--zone=${LOCATION}"
# A region has two dashes and no zone letter suffix (us-central1 vs us-central1-a).
if [[ "$LOCATION" =~ ^[a-z]+-[a-z]+[0-9]+$ ]]; then location_flag="--region=${LOCATION}"; fi

cmd=(gcloud container node-pools create "$POOL"
  --cluster="$CLUSTER" "$location_flag"
  --machine-type="$MACHINE_TYPE"
  --accelerator="type=${GPU_TYPE},count=${GPU_COUNT},gpu-driver-version=default"
  --node-taints="nvidia.com/gpu=present:NoSchedule"
  --node-labels="disco.io/pool=gpu"
  --num-nodes=0 --enable-autoscaling --min-nodes=0 --max-nodes="$MAX_NODES"
  --scopes=cloud-platform)
if [ -n "${PROJECT:-}" ]; then cmd+=(--project="$PROJECT"); fi

if [ "${DRY_RUN:-0}" = 1 ]; then
  printf '%q ' "${cmd[@]}"; echo
  exit 0
fi
"${cmd[@]}"
echo "GPU pool $POOL ready; check it with: kubectl apply -k k8s/gke && kubectl -n kubeflow logs job/disco-gpu-smoke-test -f"
