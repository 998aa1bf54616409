"""Container images, for real: disco.images' tags and commands (fast), then (slow, `images` marker)
build the CPU images with buildah on a debootstrapped Debian bookworm base and run each pipeline
component's exact compiled command inside its image with a real executor input and tiny data."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import helpers.images_fixtures as fx
import pytest

from disco import images, params
from disco.errors import ConfigError

log = logging.getLogger(__name__)

# Which per-step image target runs which component function.
FUNCTION_TARGET = {
    "import_release_features": "import-features",
    "resample_audio": "resample",
    "augment_audio": "augment",
    "embed_audio": "embed",
    "train_classifier": "train",
    "evaluate_classifier": "evaluate",
}
# Input artifact name -> the upstream output artifact that feeds it (same name unless listed).
ARTIFACT_SOURCE = {"features": "embeddings"}
DEMO_CLIPS = 24
STEP_PARAMETERS = {
    "seed": params.DEFAULT_SEED,
    "data_fingerprint": "",
    "validation_fraction": 0.2,
    "beam_options": "",
    "copies": 1,
    "mixup": 1,
    "masks": True,
    "embedder": "musicnn",
    "vggish_handle": params.VGGISH_DEFAULT_HANDLE,  # unused by musicnn; the component still takes it
    "preset": params.DEFAULT_PRESET,
    "model_type": "baseline",
    "epochs": 2,
    "batch_size": 8,
    "learning_rate": 1e-3,
    "dropout": 0.5,
    "l2": 0.01,
    "patience": 2,
}


# ---------------------------------------------------------------- fast: tags, names, commands


def test_tags_are_version_and_commit_never_latest(repo_root):
    from disco import __version__

    tag = images.default_tag(repo_root)
    assert tag.startswith(f"{__version__}-") and len(tag) > len(__version__) + 6
    assert images.validate_tag(tag) == tag
    for bad in ("latest", "", "has space", "-leading", "a" * 129, "x/y"):
        with pytest.raises(ConfigError):
            images.validate_tag(bad)


def test_uncommitted_code_never_gets_the_commits_tag(repo_root, tmp_path):
    """A cluster's KFP cache is keyed by image: images of changed code under the clean commit's tag
    would reuse the old code's results. The Makefile, k8s/kind-up.sh and disco.images give the same
    tag, and -dirty for a changed tracked file or a new untracked one."""
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", "--depth", "1", f"file://{repo_root}", str(clone)], check=True)

    def tags() -> set[str]:
        made = subprocess.run(
            ["make", "-s", "-n", "build-images"], cwd=clone, check=True, capture_output=True, text=True
        ).stdout
        kind = subprocess.run(
            ["bash", "-c", 'eval "$(sed -n \'/^VERSION=/,/^TAG=/p\' k8s/kind-up.sh)"; echo "$TAG"'],
            cwd=clone,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        return {made.split("--tag ", 1)[1].split()[0], kind, images.default_tag(clone)}

    clean = tags()
    assert len(clean) == 1 and not next(iter(clean)).endswith("-dirty")
    (clone / "disco" / "new_module.py").write_text("X = 1\n")
    assert tags() == {next(iter(clean)) + "-dirty"}
    (clone / "disco" / "new_module.py").unlink()
    with open(clone / "disco" / "steps.py", "a") as fh:
        fh.write("# changed\n")
    assert tags() == {next(iter(clean)) + "-dirty"}


def test_image_specs_cpu_and_gpu():
    cpu = images.image_specs(registry="reg.example/disco/", tag="0.1.0-abc")
    assert cpu[0] == images.ImageSpec("runtime", "cpu", "reg.example/disco/disco-cpu:0.1.0-abc")
    assert {s.target for s in cpu} == {"runtime", *images.STEP_TARGETS}
    assert "reg.example/disco/disco-embed-cpu:0.1.0-abc" in {s.ref for s in cpu}
    both = images.image_specs(registry="r", tag="t1", gpu=True, steps=False)
    assert [s.ref for s in both] == ["r/disco-cpu:t1", "r/disco-gpu:t1"]
    assert (both[1].repository, both[1].tag) == ("r/disco-gpu", "t1")


def test_buildah_command_is_chroot_layered_and_passes_build_args(repo_root):
    spec = images.ImageSpec("embed", "gpu", "r/disco-embed-gpu:t")
    args = images.build_args(
        variant="gpu", base_image="localhost/debian-bookworm-python:1", version="0.1.0", sha="abc"
    )
    cmd = images.buildah_build_command(spec, args=args, context=repo_root)
    assert cmd[:4] == ["buildah", "bud", "--isolation", "chroot"]
    assert "--layers" in cmd and cmd[cmd.index("--target") + 1] == "embed"
    assert "VARIANT=gpu" in cmd and "BASE_IMAGE=localhost/debian-bookworm-python:1" in cmd
    assert cmd[-3:] == ["-t", "r/disco-embed-gpu:t", str(repo_root)]
    with pytest.raises(ConfigError):
        images.build_args(variant="tpu", base_image="b", version="v", sha="s")


def test_cli_dry_run_and_push_refuses_local_store(capsys):
    assert images.main(["build", "--dry-run", "--tag", "0.1.0-abc", "--no-steps", "--base-image", "b:1"]) == 0
    out = capsys.readouterr().out
    assert "--target runtime" in out and "localhost/disco/disco-cpu:0.1.0-abc" in out
    assert images.main(["push", "--dry-run", "--tag", "0.1.0-abc"]) == 2
    assert "not a registry" in capsys.readouterr().err
    assert (
        images.main(
            ["push", "--dry-run", "--tag", "0.1.0-abc", "--registry", "localhost:5000/disco", "--no-steps"]
        )
        == 0
    )
    assert "docker://localhost:5000/disco/disco-cpu:0.1.0-abc" in capsys.readouterr().out
    assert images.main(["build", "--dry-run", "--tag", "latest"]) == 2
    capsys.readouterr()
    assert images.main(["kind-load", "--dry-run", "--tag", "t1", "--no-steps", "--cluster", "c1"]) == 0
    out = capsys.readouterr().out
    assert "buildah push localhost/disco/disco-cpu:t1 docker-archive:" in out
    assert "kind load image-archive" in out and "--name c1" in out


def test_backend_choice_follows_what_is_reachable(monkeypatch):
    if images.docker_client() is not None:
        assert images.pick_backend("auto") == "docker"
        return
    with pytest.raises(ConfigError, match="no Docker daemon"):
        images.pick_backend("docker")
    if images.shutil.which("buildah"):
        assert images.pick_backend("auto") == "buildah"
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(ConfigError, match="buildah is not installed"):
        images.pick_backend("auto")
    with pytest.raises(ConfigError, match="backend"):
        images.pick_backend("kaniko")


def test_harness_covers_every_compiled_component(repo_root, tmp_path):
    """Every executor of the compiled pipeline gets all its parameters and upstream artifacts from
    the image test's harness (so a renamed parameter fails here, fast, not after a 5-minute build)."""
    executors = fx.load_executors(repo_root / params.PIPELINE_YAML)
    assert set(executors) == set(FUNCTION_TARGET)
    produced: dict[str, str] = {}
    parameters = dict(STEP_PARAMETERS, data_uri="/data")
    for function in (
        "import_release_features",
        "resample_audio",
        "augment_audio",
        "embed_audio",
        "train_classifier",
        "evaluate_classifier",
    ):
        ex = executors[function]
        assert ex.command[:2] == ["sh", "-ec"] and "{{$}}" in ex.args
        inputs = {
            name: produced[ARTIFACT_SOURCE.get(name, name)] for name in ex.inputs.get("artifacts") or {}
        }
        payload = fx.executor_input(
            ex, parameters=parameters, input_artifacts=inputs, out_dir=tmp_path / function
        )
        argv = fx.container_argv(ex, payload)
        assert json.loads(argv[argv.index("--executor_input") + 1]) == payload
        produced.update(
            {name: a["artifacts"][0]["uri"] for name, a in payload["outputs"]["artifacts"].items()}
        )


# ---------------------------------------------------------------- slow: really build and run


def _require_builders() -> None:
    missing = fx.missing_tools()
    if missing:
        pytest.skip(
            f"image tests need {', '.join(missing)} (docker/ci-prepare.sh installs them with apt-get)"
        )
    if os.geteuid() != 0:
        pytest.skip(
            "image tests need root: debootstrap and buildah --isolation chroot (rootless needs subuid setup)"
        )


@pytest.fixture(scope="session")
def built_images(repo_root) -> dict[str, str]:
    """Build every CPU target on the local base; ``{target: image ref}``."""
    _require_builders()
    t0 = time.monotonic()
    base = fx.make_local_base(repo_root)
    t1 = time.monotonic()
    tag = f"test-{images.git_sha(repo_root)}"
    registry = "localhost/disco-test"
    specs = images.build(
        images.ImageSet(tag, registry, steps=True, backend="buildah"), base_image=base, context=repo_root
    )
    t2 = time.monotonic()
    fx.prune_old_test_images(registry, keep_tag=tag)
    log.warning("image test: local base %.0f s, CPU images (%d targets) %.0f s", t1 - t0, len(specs), t2 - t1)
    return {s.target: s.ref for s in specs}


def _inspect(ref: str) -> dict:
    out = subprocess.run(
        ["buildah", "inspect", "--type", "image", ref], check=True, capture_output=True, text=True
    ).stdout
    return json.loads(out)


@pytest.mark.images
@pytest.mark.slow
def test_images_are_non_root_labelled_and_carry_the_imports(built_images, repo_root):
    from disco import __version__

    runtime = built_images["runtime"]
    config = _inspect(runtime)["OCIv1"]["config"]
    assert config["User"] == "1000:1000"
    labels = config["Labels"]
    assert labels["org.opencontainers.image.version"] == __version__
    assert labels["org.opencontainers.image.revision"] == images.git_sha(repo_root)
    # run_info.json's git_commit inside the image (no checkout there): the same commit.
    env = dict(e.split("=", 1) for e in config["Env"])
    assert env["DISCO_GIT_COMMIT"] == labels["org.opencontainers.image.revision"]
    assert labels["io.disco.variant"] == "cpu"
    assert _inspect(built_images["embed"])["OCIv1"]["config"]["Labels"]["io.disco.step"] == "embed"
    proc = fx.run_in_image(
        runtime,
        [
            "python3",
            "-c",
            "import os, tensorflow, apache_beam, kfp, kfp.kubernetes, disco, disco_components, disco_pipelines, musicnn;"
            "print(os.getuid(), disco.__version__, tensorflow.__version__, apache_beam.__version__)",
        ],
        mounts=[],
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    uid, version, tf_version, beam_version = proc.stdout.split()[-4:]
    assert (uid, version) == ("1000", __version__)
    assert (tf_version, beam_version) == _host_versions()
    # Only the runtime dependencies: the extras' own packages stay out of the step images.
    from disco.extras import EXTRA_MODULES

    only_in_extras = [
        m for m in EXTRA_MODULES if m != "google.cloud.aiplatform"
    ]  # apache-beam[gcp] brings it
    probe = fx.run_in_image(
        runtime,
        [
            "python3",
            "-c",
            "import importlib.util, sys; print([m for m in sys.argv[1:] if importlib.util.find_spec(m)])",
            *only_in_extras,
        ],
        mounts=[],
    )
    assert probe.returncode == 0, probe.stderr[-3000:]
    assert probe.stdout.strip().splitlines()[-1] == "[]", probe.stdout


def _host_versions() -> tuple[str, str]:
    from importlib.metadata import version

    return version("tensorflow"), version("apache-beam")


@pytest.mark.images
@pytest.mark.slow
def test_lightweight_component_executor_runs_in_image(built_images, tmp_path):
    """The launcher contract on its own: a component compiled against our image, its exact command,
    a real executor input, outputs written where the executor input says."""
    from helpers.images_probe import probe
    from kfp import compiler, dsl

    comp = dsl.component(probe, base_image=built_images["runtime"], install_kfp_package=False)
    compiler.Compiler().compile(comp, str(tmp_path / "probe.yaml"))
    (ex,) = fx.load_executors(tmp_path / "probe.yaml").values()
    assert ex.image == built_images["runtime"]
    work = fx.make_writable(tmp_path / "run")
    payload = fx.executor_input(ex, parameters={"n": 21}, input_artifacts={}, out_dir=work)
    proc = fx.run_in_image(ex.image, fx.container_argv(ex, payload), mounts=[work])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (work / "out" / "probe.txt").read_text().endswith(" 1000")
    executor_output = json.loads((work / "executor_output.json").read_text())
    assert executor_output["parameterValues"]["Output"] == 42
    assert executor_output["artifacts"]["out"]["artifacts"][0]["uri"] == str(work / "out")


@pytest.mark.images
@pytest.mark.slow
def test_every_component_body_imports_in_its_image(built_images, repo_root):
    """The modules each compiled component body imports (read from the YAML's embedded source)
    import inside its per-step image: a step whose image lacks its library fails here by name."""
    import ast

    executors = fx.load_executors(repo_root / params.PIPELINE_YAML)
    failures = []
    for function, ex in sorted(executors.items()):
        source = ex.command[3]  # sh -ec <launcher script> <component source>
        tree = ast.parse(source)
        (fn,) = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == function]
        modules = sorted(
            {n.module for n in ast.walk(fn) if isinstance(n, ast.ImportFrom) and n.module}
            | {a.name for n in ast.walk(fn) if isinstance(n, ast.Import) for a in n.names}
        )
        assert modules, f"{function} imports nothing?"
        check = "import importlib, sys\nfor m in sys.argv[1:]:\n    importlib.import_module(m)\nprint('ok')"
        proc = fx.run_in_image(
            built_images[FUNCTION_TARGET[function]], ["python3", "-c", check, *modules], mounts=[]
        )
        if proc.returncode != 0 or not proc.stdout.strip().endswith("ok"):
            # Python's exception line, not buildah's own trailer ("subprocess exited with status 1").
            errors = [
                ln
                for ln in proc.stderr.splitlines()
                if ln and ln.split(":", 1)[0].endswith(("Error", "Exception")) and not ln.startswith("Error")
            ]
            last = (errors or proc.stderr.strip().splitlines() or ["(no stderr)"])[-1]
            failures.append(f"{function} in {built_images[FUNCTION_TARGET[function]]}: {last}")
    assert not failures, "component imports missing from their images:\n" + "\n".join(failures)


def _demo_dataset(tmp_path: Path) -> Path:
    out = tmp_path / "demo" / "openmic-2018"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "disco",
            "demo-data",
            "--out",
            str(out),
            "--clips",
            str(DEMO_CLIPS),
            "--seed",
            str(params.DEFAULT_SEED),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, f"disco demo-data failed:\n{proc.stderr[-3000:]}"
    return out


def _run_step(
    built_images, ex: fx.Executor, *, parameters, produced: dict[str, str], work: Path
) -> dict[str, str]:
    image = built_images[FUNCTION_TARGET[ex.function]]
    step_dir = fx.make_writable(work / ex.function)
    inputs = {}
    for name in ex.inputs.get("artifacts") or {}:
        source = ARTIFACT_SOURCE.get(name, name)
        assert source in produced, f"{ex.function} needs {name} ({source}), not produced upstream"
        inputs[name] = produced[source]
    payload = fx.executor_input(ex, parameters=parameters, input_artifacts=inputs, out_dir=step_dir)
    t0 = time.monotonic()
    proc = fx.run_in_image(image, fx.container_argv(ex, payload), mounts=[work])
    log.warning("image test: %s in %s took %.0f s", ex.function, image, time.monotonic() - t0)
    assert proc.returncode == 0, (
        f"{ex.function} failed in {image}:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    )
    outputs = {}
    for name, adef in (ex.outputs.get("artifacts") or {}).items():
        path = step_dir / name
        assert path.exists(), f"{ex.function} wrote no {name} artifact at {path}"
        if adef["artifactType"]["schemaTitle"] in ("system.Dataset", "system.Model"):
            assert path.is_dir() and any(path.iterdir()), f"{ex.function}: {name} is empty"
            assert (path / "summary.json").is_file() and (path / "run_info.json").is_file(), (
                f"{ex.function}: {name} lacks summary.json / run_info.json"
            )
        outputs[name] = str(path)
    assert json.loads((step_dir / "executor_output.json").read_text()) is not None
    return outputs


@pytest.mark.images
@pytest.mark.slow
@pytest.mark.timeout(3000)
def test_pipeline_components_run_in_their_images(built_images, repo_root, tmp_path):
    executors = fx.load_executors(repo_root / params.PIPELINE_YAML)
    assert set(executors) == set(FUNCTION_TARGET), (
        "the compiled pipeline's components changed; update FUNCTION_TARGET"
    )
    for ex in executors.values():
        # The compiled image is one of ours (any tag): the pipeline and the build agree on names.
        assert ex.image.rsplit(":", 1)[0].rsplit("/", 1)[-1] in {"disco-cpu", "disco-gpu"} | {
            f"disco-{t}-cpu" for t in images.STEP_TARGETS
        }, ex.image
    data = _demo_dataset(tmp_path)
    # Data and step outputs all under tmp_path, mounted at the same path in each container.
    mounts_root = fx.make_writable(tmp_path)
    parameters = dict(STEP_PARAMETERS, data_uri=str(data))

    produced: dict[str, str] = {}
    for function in (
        "resample_audio",
        "augment_audio",
        "embed_audio",
        "train_classifier",
        "evaluate_classifier",
    ):
        produced.update(
            _run_step(
                built_images, executors[function], parameters=parameters, produced=produced, work=mounts_root
            )
        )
    metrics = json.loads((Path(produced["evaluation"]) / "metrics.json").read_text())
    assert 0.0 <= metrics["mAP"] <= 1.0 and set(metrics["per_class"])
    executor_output = json.loads((tmp_path / "evaluate_classifier" / "executor_output.json").read_text())
    assert abs(executor_output["parameterValues"]["mAP"] - metrics["mAP"]) < 1e-6

    # The release-features branch: import -> train -> evaluate in their images, when the data has features.
    if (data / "openmic-2018.npz").exists() or (data / "vggish").is_dir():
        produced = {}
        release = tmp_path / "release"
        fx.make_writable(release)
        for function in ("import_release_features", "train_classifier", "evaluate_classifier"):
            out = _run_step(
                built_images, executors[function], parameters=parameters, produced=produced, work=release
            )
            if function == "import_release_features":
                out["embeddings"] = next(iter(out.values()))
            produced.update(out)
