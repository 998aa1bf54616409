"""The compiled pipeline: golden YAML, GPU on/off, parameters, retries, caching, submit parameters."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from disco import __version__, params
from disco.errors import ConfigError

GOLDEN = params.PIPELINE_YAML
VERTEX_GOLDEN = params.PIPELINE_YAML_VERTEX
GPU_STEPS = {"exec-embed-audio", "exec-train-classifier", "exec-train-classifier-2"}


def _normalise(doc):
    """Drop the fields that change with the kfp or disco version, keep everything else."""
    if isinstance(doc, dict):
        out = {}
        for key, value in doc.items():
            if key == "sdkVersion":
                continue
            if key == "image" and isinstance(value, str):
                value = re.sub(r":[^:/]+$", ":<tag>", value)
            out[key] = _normalise(value)
        return out
    if isinstance(doc, list):
        return [_normalise(v) for v in doc]
    if isinstance(doc, str):
        return doc.replace(f"kfp-{_kfp_version()}", "kfp-<version>").replace(__version__, "<version>")
    return doc


def _kfp_version() -> str:
    import kfp

    return kfp.__version__


def _load(path: Path) -> list:
    with open(path, encoding="utf-8") as fh:
        return [d for d in yaml.safe_load_all(fh) if d is not None]


def _compile(tmp_path: Path, name: str = "p.yaml", **kwargs) -> list:
    from disco_pipelines.compile import compile_pipeline

    return _load(compile_pipeline(tmp_path / name, **kwargs))


@pytest.fixture(scope="module")
def cpu_docs(tmp_path_factory) -> list:
    return _compile(tmp_path_factory.mktemp("cpu"))


@pytest.fixture(scope="module")
def gpu_docs(tmp_path_factory) -> list:
    return _compile(tmp_path_factory.mktemp("gpu"), gpu=True, gpu_accelerator="nvidia-l4")


def test_golden_yaml_matches_a_fresh_compile(cpu_docs, repo_root):
    golden = _load(repo_root / GOLDEN)
    assert _normalise(cpu_docs) == _normalise(golden), (
        f"{GOLDEN} is stale: run `make compile` and review the diff"
    )


@pytest.fixture(scope="module")
def vertex_docs(tmp_path_factory) -> list:
    return _compile(tmp_path_factory.mktemp("vertex"), target="vertex")


@pytest.fixture(scope="module")
def vertex_gpu_docs(tmp_path_factory) -> list:
    return _compile(tmp_path_factory.mktemp("vgpu"), target="vertex", gpu=True, gpu_accelerator="nvidia-l4")


def test_vertex_golden_yaml_matches_a_fresh_compile(vertex_docs, repo_root):
    golden = _load(repo_root / VERTEX_GOLDEN)
    assert _normalise(vertex_docs) == _normalise(golden), (
        f"{VERTEX_GOLDEN} is stale: run `make compile` and review the diff"
    )


def test_vertex_pipeline_has_vertex_accelerators_and_limits(vertex_gpu_docs, vertex_docs):
    assert len(vertex_gpu_docs) == 1, "Vertex reads no Kubernetes platform spec"
    executors = vertex_gpu_docs[0]["deploymentSpec"]["executors"]
    for name, executor in executors.items():
        resources = executor["container"]["resources"]
        # Vertex sizes the machine from limits; requests would be ignored.
        assert resources["resourceCpuLimit"] and resources["resourceMemoryLimit"], name
        assert "resourceCpuRequest" not in resources and "resourceMemoryRequest" not in resources, name
        accel = resources.get("accelerator")
        if name in GPU_STEPS:
            assert accel["resourceType"] == "NVIDIA_L4" and accel["resourceCount"] == "1", name
        else:
            assert accel is None, name
    assert "nvidia.com/gpu" not in yaml.safe_dump(vertex_gpu_docs)
    default = _compile_gpu_types(target="vertex")
    assert default == {params.VERTEX_ACCELERATORS[params.DEFAULT_GPU_TYPE]}
    assert default == {"NVIDIA_TESLA_T4"}
    cpu = vertex_docs[0]["deploymentSpec"]["executors"]
    assert all("accelerator" not in e["container"]["resources"] for e in cpu.values())


def test_kfp_pipeline_keeps_kubernetes_requests(cpu_docs):
    for name, executor in cpu_docs[0]["deploymentSpec"]["executors"].items():
        resources = executor["container"]["resources"]
        assert resources["resourceCpuRequest"] and resources["resourceMemoryRequest"], name
        assert resources["resourceMemoryLimit"], name


def _compile_gpu_types(**kwargs) -> set[str]:
    import tempfile

    from kfp import compiler

    from disco_pipelines.factory import make_pipeline

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "p.yaml"
        compiler.Compiler().compile(make_pipeline(image="x", gpu=True, **kwargs), str(path))
        spec = _load(path)[0]
    return {
        e["container"]["resources"]["accelerator"]["resourceType"]
        for e in spec["deploymentSpec"]["executors"].values()
        if "accelerator" in e["container"].get("resources", {})
    }


def test_unknown_target_or_vertex_accelerator_is_a_config_error(tmp_path):
    from disco_pipelines.factory import GpuConfig, make_pipeline

    with pytest.raises(ConfigError, match="compile target"):
        make_pipeline(image="x", target="argo")
    with pytest.raises(ConfigError, match="no Vertex AI name"):
        make_pipeline(image="x", gpu=GpuConfig(node_label_value="nvidia-made-up"), target="vertex")
    # On KFP any GKE label value is fine (the node pool decides what exists).
    make_pipeline(image="x", gpu=GpuConfig(node_label_value="nvidia-made-up"), target="kfp")


def test_cli_compile_target_vertex(tmp_path, capsys):
    from disco.cli import main

    out = tmp_path / "v.yaml"
    assert (
        main(
            ["compile", "--target", "vertex", "--gpu", "--gpu-accelerator", "nvidia-tesla-t4", "-o", str(out)]
        )
        == 0
    )
    assert "NVIDIA_TESLA_T4" in out.read_text()
    assert (
        main(["compile", "--target", "kfp", "--gpu", "--gpu-accelerator", "nvidia-tesla-t4", "-o", str(out)])
        == 0
    )
    text = out.read_text()
    assert "nvidia.com/gpu" in text and "NVIDIA_TESLA_T4" not in text


def test_compile_is_deterministic(tmp_path, cpu_docs):
    assert _compile(tmp_path, "again.yaml") == cpu_docs


def test_cpu_pipeline_requests_no_gpu(cpu_docs):
    assert len(cpu_docs) == 1, "a CPU pipeline has no kubernetes platform spec"
    for name, executor in cpu_docs[0]["deploymentSpec"]["executors"].items():
        resources = executor["container"].get("resources", {})
        assert "accelerator" not in resources, name


def test_gpu_pipeline_requests_gpu_on_embed_and_train_only(gpu_docs):
    spec, platform = gpu_docs
    executors = spec["deploymentSpec"]["executors"]
    assert GPU_STEPS <= set(executors)
    for name, executor in executors.items():
        accel = executor["container"].get("resources", {}).get("accelerator")
        if name in GPU_STEPS:
            assert accel["resourceType"] == "nvidia.com/gpu"
            assert accel["resourceCount"] == "1"
            assert executor["container"]["image"].startswith("localhost/disco/disco-gpu:")
        else:
            assert accel is None, name
            assert "disco-cpu" in executor["container"]["image"]
    k8s = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert set(k8s) == GPU_STEPS
    for name in GPU_STEPS:
        assert k8s[name]["nodeSelector"]["labels"] == {"cloud.google.com/gke-accelerator": "nvidia-l4"}
        assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in k8s[name][
            "tolerations"
        ]


def test_pipeline_parameters_and_defaults(cpu_docs):
    inputs = cpu_docs[0]["root"]["inputDefinitions"]["parameters"]
    expected = {
        "data_uri": None,
        "embedder": "musicnn",
        "vggish_handle": params.VGGISH_DEFAULT_HANDLE,
        "augment_copies": 1,
        "preset": params.DEFAULT_PRESET,
        # "the chosen preset's" (params.from_preset)
        "model": params.FROM_PRESET_MODEL,
        "epochs": params.FROM_PRESET,
        "batch_size": params.FROM_PRESET,
        "learning_rate": params.FROM_PRESET,
        "dropout": params.FROM_PRESET,
        "l2": params.FROM_PRESET,
        "patience": params.FROM_PRESET,
        "seed": params.DEFAULT_SEED,
        "use_release_features": False,
    }
    for name, default in expected.items():
        assert name in inputs, name
        if default is None:
            assert not inputs[name].get("isOptional", False), f"{name} must be required"
        else:
            assert inputs[name]["defaultValue"] == default, name


def _tasks(spec: dict) -> dict:
    """Every task of every DAG (the root and the two condition branches)."""
    tasks = dict(spec["root"]["dag"]["tasks"])
    for comp in spec["components"].values():
        tasks.update(comp.get("dag", {}).get("tasks", {}))
    return tasks


def test_caching_retries_and_display_names(cpu_docs):
    tasks = _tasks(cpu_docs[0])
    steps = {k: v for k, v in tasks.items() if not k.startswith("condition")}
    assert {"resample-audio", "augment-audio", "embed-audio", "import-release-features"} <= set(steps)
    for name, task in steps.items():
        assert task.get("cachingOptions", {}).get("enableCache") is True, name
        assert task["taskInfo"]["name"] and task["taskInfo"]["name"] != name, f"{name} has no display name"
    for name in ("resample-audio", "embed-audio", "import-release-features"):
        assert steps[name]["retryPolicy"]["maxRetryCount"] == 3, name
    for name in ("augment-audio", "train-classifier", "evaluate-classifier"):
        assert "retryPolicy" not in steps[name], name


def test_release_features_branch_skips_audio_steps(cpu_docs):
    spec = cpu_docs[0]
    conditions = {name: t for name, t in _tasks(spec).items() if t.get("triggerPolicy", {}).get("condition")}
    assert len(conditions) == 2, "one If/Else pair on use_release_features"
    assert all("use_release_features" in t["triggerPolicy"]["condition"] for t in conditions.values())
    branches = [
        set(spec["components"][t["componentRef"]["name"]]["dag"]["tasks"]) for t in conditions.values()
    ]
    release = next(b for b in branches if "import-release-features" in b)
    audio = next(b for b in branches if "resample-audio" in b)
    assert not {"resample-audio", "augment-audio", "embed-audio"} & release
    assert any(t.startswith("train-classifier") for t in release)
    assert any(t.startswith("evaluate-classifier") for t in release)
    assert {"resample-audio", "augment-audio", "embed-audio"} <= audio


def test_components_use_the_image_and_never_pip_install(cpu_docs):
    for name, executor in cpu_docs[0]["deploymentSpec"]["executors"].items():
        command = " ".join(executor["container"]["command"])
        assert "pip install" not in command, f"{name} would pip-install at run time"
        assert "kfp.dsl.executor_main" in command
        assert "from disco_components import _runtime" in command


def test_typed_artifacts(cpu_docs):
    comps = cpu_docs[0]["components"]
    evaluate = comps["comp-evaluate-classifier"]["outputDefinitions"]["artifacts"]
    kinds = {name: a["artifactType"]["schemaTitle"] for name, a in evaluate.items()}
    assert kinds == {
        "evaluation": "system.Dataset",
        "metrics": "system.Metrics",
        "confusion": "system.ClassificationMetrics",
        "report": "system.HTML",
        "table": "system.Markdown",
    }
    train = comps["comp-train-classifier"]["outputDefinitions"]["artifacts"]
    assert train["model"]["artifactType"]["schemaTitle"] == "system.Model"


def test_unknown_step_image_is_a_config_error():
    from disco_pipelines.factory import make_pipeline

    with pytest.raises(ConfigError, match="unknown steps"):
        make_pipeline(image="x", step_images={"resampel": "y"})


def test_submit_parameters_are_typed_from_the_package(repo_root):
    from disco.cli.submit import parameter_types, parse_parameters

    package = str(repo_root / GOLDEN)
    types = parameter_types(package)
    values = parse_parameters(
        ["epochs=3", "learning_rate=0.001", "use_release_features=true", "embedder=vggish"],
        types,
        package=package,
    )
    assert values == {"epochs": 3, "learning_rate": 0.001, "use_release_features": True, "embedder": "vggish"}
    with pytest.raises(ConfigError, match="no such parameter"):
        parse_parameters(["epoch=3"], types, package=package)
    with pytest.raises(ConfigError, match="NUMBER_INTEGER"):
        parse_parameters(["epochs=three"], types, package=package)
    with pytest.raises(ConfigError, match="BOOLEAN"):
        parse_parameters(["use_release_features=maybe"], types, package=package)


def test_submit_missing_package_is_a_config_error(tmp_path):
    from disco.cli.submit import parameter_types

    with pytest.raises(ConfigError, match="not found"):
        parameter_types(str(tmp_path / "nope.yaml"))


@pytest.mark.parametrize("asked", [{"gpu_accelerator": "nvidia-l4"}, {"gpu_image": "reg/disco-gpu:1"}])
def test_gpu_options_without_gpu_are_refused(tmp_path, asked):
    """Either alone used to compile a CPU-only pipeline without a word."""
    from disco.errors import ConfigError
    from disco_pipelines.compile import compile_pipeline

    with pytest.raises(ConfigError, match="need --gpu"):
        compile_pipeline(tmp_path / "p.yaml", **asked)
    assert not (tmp_path / "p.yaml").exists()


@pytest.mark.parametrize(
    "asked, cpu, gpu",
    [
        (
            {"image": "reg:5000/p/disco-cpu:0.1.0-abc"},
            "reg:5000/p/disco-cpu:0.1.0-abc",
            "reg:5000/p/disco-gpu:0.1.0-abc",
        ),
        (
            {"gpu_image": "us-docker.pkg.dev/p/disco/disco-gpu:0.1.0-abc"},
            "us-docker.pkg.dev/p/disco/disco-cpu:0.1.0-abc",
            "us-docker.pkg.dev/p/disco/disco-gpu:0.1.0-abc",
        ),
    ],
)
def test_one_image_of_a_gpu_build_names_the_other(tmp_path, asked, cpu, gpu):
    """`--gpu --image X` (or `--gpu-image Y`) alone put the other steps on the local default
    (localhost/disco/disco-…:<version>), which no build tags and no cluster pulls."""
    executors = _compile(tmp_path, gpu=True, **asked)[0]["deploymentSpec"]["executors"]
    used = {e["container"]["image"] for e in executors.values()}
    assert used == {cpu, gpu}


def test_an_image_whose_other_variant_cannot_be_told_is_refused(tmp_path):
    from disco_pipelines.compile import compile_pipeline

    with pytest.raises(ConfigError, match="give --gpu-image too"):
        compile_pipeline(tmp_path / "p.yaml", gpu=True, image="reg/myimage:1")
