"""Every Kubernetes manifest we ship renders with `kubectl kustomize` (offline), validates against
the Kubernetes schemas (kubernetes-validate), runs non-root with requests and limits, nothing
privileged; the remote KFP bases stay pinned to 2.17; the GKE pool matches the pipeline's GPU contract."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from disco import params

# Directories that render with no network (the KFP bases fetch GitHub at apply time).
OFFLINE = ("k8s/disco", "k8s/gke")
REMOTE = ("k8s/kfp", "k8s/kfp/cluster-scoped")
KFP_REF = "ref=2.17.0"


def _kubectl() -> str:
    path = shutil.which("kubectl")
    if path is None:
        pytest.skip(
            "kubectl not on PATH: `kubectl kustomize` renders the manifests (apt/apt-get or "
            "https://kubernetes.io/docs/tasks/tools/)"
        )
    return path


def _render(repo_root: Path, rel: str) -> list[dict]:
    proc = subprocess.run(
        [_kubectl(), "kustomize", str(repo_root / rel)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, f"kubectl kustomize {rel} failed:\n{proc.stderr}"
    docs = [d for d in yaml.safe_load_all(proc.stdout) if d]
    assert docs, f"{rel} rendered no objects"
    return docs


def _pod_specs(doc: dict) -> list[dict]:
    kind = doc.get("kind")
    if kind == "Pod":
        return [doc["spec"]]
    if kind in ("Job", "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"):
        return [doc["spec"]["template"]["spec"]]
    if kind == "CronJob":
        return [doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]]
    return []


@pytest.fixture(scope="module")
def rendered(repo_root) -> dict[str, list[dict]]:
    return {rel: _render(repo_root, rel) for rel in OFFLINE}


@pytest.mark.parametrize("rel", OFFLINE)
def test_manifests_validate_against_kubernetes_schemas(rendered, rel):
    import kubernetes_validate

    for doc in rendered[rel]:
        # strict: unknown fields (a typo in securityContext, say) fail, not pass silently.
        kubernetes_validate.validate(doc, params.K8S_VERSION, strict=True)


def test_schema_validation_catches_a_typo(rendered):
    import kubernetes_validate

    job = yaml.safe_load(yaml.safe_dump(next(d for d in rendered["k8s/disco"] if d["kind"] == "Job")))
    job["spec"]["template"]["spec"]["containers"][0]["resource"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(job, params.K8S_VERSION, strict=True)


@pytest.mark.parametrize("rel", OFFLINE)
def test_pods_non_root_with_requests_and_limits(rendered, rel):
    pods = [spec for doc in rendered[rel] for spec in _pod_specs(doc)]
    assert pods, f"{rel} has no workloads to check"
    for spec in pods:
        pod_sc = spec.get("securityContext") or {}
        assert spec.get("hostNetwork") is not True and spec.get("hostPID") is not True
        assert spec.get("automountServiceAccountToken") is False
        for c in spec.get("initContainers", []) + spec["containers"]:
            sc = c.get("securityContext") or {}
            name = f"{rel}: container {c['name']}"
            assert sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is True, f"{name} may run as root"
            assert sc.get("runAsUser", pod_sc.get("runAsUser", 1)) != 0, f"{name} runs as uid 0"
            assert sc.get("privileged") is not True, f"{name} is privileged"
            assert sc.get("allowPrivilegeEscalation") is False, f"{name} allows privilege escalation"
            assert "ALL" in (sc.get("capabilities") or {}).get("drop", []), f"{name} keeps capabilities"
            res = c.get("resources") or {}
            for kind in ("requests", "limits"):
                for resource in ("cpu", "memory"):
                    assert resource in (res.get(kind) or {}), f"{name} has no {resource} {kind}"
            assert ":" in c["image"] and not c["image"].endswith(":latest"), (
                f"{name} image {c['image']} not pinned"
            )


def test_gke_gpu_job_matches_the_pipelines_gpu_contract(rendered):
    from disco_pipelines.factory import GpuConfig

    gpu = GpuConfig()
    (job,) = [d for d in rendered["k8s/gke"] if d["kind"] == "Job"]
    spec = job["spec"]["template"]["spec"]
    assert spec["nodeSelector"] == {gpu.node_label_key: gpu.node_label_value}
    assert {"key": gpu.toleration_key, "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]
    assert spec["containers"][0]["resources"]["limits"][gpu.accelerator_type] == gpu.count


def test_gke_pool_script_creates_the_label_and_taint_the_pipeline_expects(repo_root):
    from disco_pipelines.factory import GpuConfig

    gpu = GpuConfig()
    proc = subprocess.run(
        ["bash", str(repo_root / "k8s/gke/create-gpu-pool.sh"), "my-cluster", "us-central1"],
        capture_output=True,
        text=True,
        env={"DRY_RUN": "1", "PATH": "/usr/bin:/bin"},
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    cmd = proc.stdout
    assert "--region=us-central1" in cmd
    # GKE labels GPU nodes cloud.google.com/gke-accelerator=<type> from --accelerator type=...
    assert f"type={gpu.node_label_value}" in cmd and gpu.node_label_key == "cloud.google.com/gke-accelerator"
    assert f"{gpu.toleration_key}=present:NoSchedule" in cmd
    assert "gpu-driver-version=default" in cmd


@pytest.mark.parametrize("rel", REMOTE)
def test_kfp_bases_are_pinned_to_2_17(repo_root, rel):
    kust = yaml.safe_load((repo_root / rel / "kustomization.yaml").read_text())
    remote = [r for r in kust["resources"] if r.startswith("https://")]
    assert remote, f"{rel} has no remote KFP base"
    for r in remote:
        assert r.startswith("https://github.com/kubeflow/pipelines//manifests/kustomize/") and r.endswith(
            KFP_REF
        ), r


def test_kind_up_installs_the_pinned_base(repo_root):
    kust = yaml.safe_load((repo_root / "k8s/kfp/kustomization.yaml").read_text())
    (remote,) = [r for r in kust["resources"] if r.startswith("https://")]
    assert f'KFP_BASE="{remote}"' in (repo_root / "k8s/kind-up.sh").read_text()


def test_kind_up_smoke_image_uses_the_default_registry(repo_root):
    assert (
        f'DISCO_IMAGE="${{DISCO_IMAGE:-{params.DEFAULT_REGISTRY}/disco-cpu:'
        in (repo_root / "k8s/kind-up.sh").read_text()
    )


def test_kind_config_and_scripts(repo_root):
    cfg = yaml.safe_load((repo_root / "k8s/kind-config.yaml").read_text())
    assert cfg["kind"] == "Cluster" and cfg["apiVersion"] == "kind.x-k8s.io/v1alpha4"
    assert [n["role"] for n in cfg["nodes"]].count("control-plane") == 1
    for script in ("k8s/kind-up.sh", "k8s/gke/create-gpu-pool.sh", "docker/make-local-base.sh"):
        proc = subprocess.run(["bash", "-n", str(repo_root / script)], capture_output=True, text=True)
        assert proc.returncode == 0, f"{script}: {proc.stderr}"
        assert (repo_root / script).stat().st_mode & 0o111, f"{script} is not executable"


def test_the_image_smoke_test_imports_what_the_package_installs(repo_root):
    """kind-up waits on this Job: a module name the package no longer installs (``components``
    became ``disco_components``) failed it every time. Its command runs here as it would there."""
    docs = list(yaml.safe_load_all((repo_root / "k8s/disco/image-smoke-test.yaml").read_text()))
    (job,) = [d for d in docs if d and d.get("kind") == "Job"]
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["python3", "-c"]
    proc = subprocess.run(
        [sys.executable, "-c", *container["args"]], capture_output=True, text=True, cwd="/", timeout=300
    )
    assert proc.returncode == 0 and proc.stdout.startswith("disco "), proc.stderr[-2000:]


def _quantity(value: str) -> float:
    units = {"m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
    for unit in sorted(units, key=len, reverse=True):
        if str(value).endswith(unit):
            return float(str(value)[: -len(unit)]) * units[unit]
    return float(value)


def test_no_step_asks_for_more_than_its_limit_after_the_limitrange_defaults(repo_root):
    """The namespace's LimitRange fills in what a task leaves out; a default limit below a step's
    request (a 2-CPU default under embed's 4-CPU request) makes the pod invalid on the cluster."""
    (limits,) = yaml.safe_load((repo_root / "k8s/disco/limitrange.yaml").read_text())["spec"]["limits"]
    executors = yaml.safe_load_all((repo_root / "pipelines/disco-openmic.yaml").read_text())
    spec = next(d for d in executors if d and "deploymentSpec" in d)
    checked = 0
    for name, executor in spec["deploymentSpec"]["executors"].items():
        resources = executor["container"].get("resources", {})
        for kind, request_key, limit_key in (
            ("cpu", "resourceCpuRequest", "resourceCpuLimit"),
            ("memory", "resourceMemoryRequest", "resourceMemoryLimit"),
        ):
            request = resources.get(request_key) or limits.get("defaultRequest", {}).get(kind)
            limit = resources.get(limit_key) or limits.get("default", {}).get(kind)
            if request is not None and limit is not None:
                assert _quantity(request) <= _quantity(limit), (
                    f"{name}: {kind} request {request} > limit {limit}"
                )
                checked += 1
    assert checked >= 6
