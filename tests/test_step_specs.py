"""One declaration per step (#15): the places that must spell out a step's parameters (KFP reads real
signatures) are checked against disco.steps, so they cannot drift apart."""

from __future__ import annotations

import importlib
import inspect

import pytest
from kfp import dsl

from disco import params, results, steps

PRIMITIVES = (int, float, str, bool)
KFP_TYPES = {int: "NUMBER_INTEGER", float: "NUMBER_DOUBLE", str: "STRING", bool: "BOOLEAN"}


def _component_function(step: steps.StepSpec):

    return getattr(importlib.import_module(f"disco_components.{step.name}"), step.component)


def test_one_list_of_steps():
    import disco_components
    from disco import images

    assert set(disco_components.component_factories()) == set(steps.STEP_NAMES)
    assert images.STEP_TARGETS == tuple(s.target for s in steps.STEPS)
    assert len(set(s.task_name for s in steps.STEPS)) == len(steps.STEPS)
    for step in steps.STEPS:
        assert set(step.arguments.values()) <= set(steps.RUN_PARAMETER), step.name


@pytest.mark.parametrize("step", steps.STEPS, ids=lambda s: s.name)
def test_component_signature_matches_the_spec(step):
    signature = inspect.signature(_component_function(step))
    parameters = {n: p.annotation for n, p in signature.parameters.items() if p.annotation in PRIMITIVES}
    assert set(parameters) == set(step.arguments), f"{step.component}: parameters drifted from disco.steps"
    for arg, run_name in step.arguments.items():
        assert parameters[arg] is steps.RUN_PARAMETER[run_name].type, f"{step.component}({arg})"


def test_pipeline_signature_matches_the_spec(repo_root):
    import yaml

    from disco_pipelines.factory import make_pipeline

    signature = inspect.signature(make_pipeline().pipeline_func)
    assert list(signature.parameters) == [p.name for p in steps.RUN_PARAMETERS]
    # What KFP made of it (the golden YAML; tests/test_pipeline_compile.py keeps it current).
    compiled = yaml.safe_load((repo_root / params.PIPELINE_YAML).read_text())
    inputs = compiled["root"]["inputDefinitions"]["parameters"]
    assert set(inputs) == set(steps.RUN_PARAMETER)
    for p in steps.RUN_PARAMETERS:
        declared = signature.parameters[p.name]
        assert declared.annotation is p.type, p.name
        assert inputs[p.name]["parameterType"] == KFP_TYPES[p.type], p.name
        if p.required:
            assert declared.default is inspect.Parameter.empty, p.name
            assert "defaultValue" not in inputs[p.name]
        else:
            assert declared.default == p.default, p.name
            assert inputs[p.name]["defaultValue"] == p.default, p.name


def test_tasks_are_configured_from_the_spec(tmp_path):
    """The compiled pipeline's tasks carry the spec's display names, retries and resources."""
    import yaml
    from kfp import compiler

    from disco_pipelines.factory import make_pipeline

    out = tmp_path / "p.yaml"
    compiler.Compiler().compile(make_pipeline(retries=2), str(out))
    spec = yaml.safe_load(out.read_text())
    tasks = {}
    for comp in spec["components"].values():
        for name, task in (comp.get("dag") or {}).get("tasks", {}).items():
            tasks[name] = task
    for name, task in spec["root"]["dag"]["tasks"].items():
        tasks.setdefault(name, task)
    seen = set()
    for name, task in tasks.items():
        step = steps.step_of_task(name)
        if step is None:
            continue  # the If/Else condition branches
        seen.add(step.name)
        assert task["taskInfo"]["name"] == step.display_name
        assert ("retryPolicy" in task) == step.remote_read, name
    assert seen == set(steps.STEP_NAMES)
    executors = spec["deploymentSpec"]["executors"]
    for step in steps.STEPS:
        resources = executors[f"exec-{step.task_name}"]["container"]["resources"]
        assert resources["memoryLimit"] == float(step.resources.memory_limit.rstrip("G"))  # KFP: GB


def test_run_local_signature_matches_the_spec():
    from disco.runner import run_local

    signature = inspect.signature(run_local)
    names = list(signature.parameters)
    assert names[0] == "data_uri"
    # The runner computes the parameters that are no flag (data_fingerprint) itself.
    for p in (steps.RUN_PARAMETER[name] for name in steps.CLI_PARAMETERS[1:]):
        assert p.name in signature.parameters, f"run_local has no {p.name}"
        assert signature.parameters[p.name].default == p.default, p.name


def test_library_training_defaults_match_the_spec():
    from disco.train import run_train

    signature = inspect.signature(run_train)
    preset = params.PRESETS[signature.parameters["preset"].default]
    for name in (*steps.STEP["train"].arguments.values(), "validation_fraction"):
        default = signature.parameters[name].default
        declared = steps.RUN_PARAMETER[name]
        if default is None:  # the preset's value, which the pipeline asks for with its sentinel
            assert steps.takes_preset(declared), name
            assert getattr(preset, name) is not None, name
        else:
            assert default == declared.default, name


def test_cli_flags_come_from_the_spec():
    from disco.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(["run"])
    for p in (steps.RUN_PARAMETER[name] for name in steps.CLI_PARAMETERS[1:]):
        assert getattr(args, p.name) == p.default, p.name
    flags = {p.cli_flag: p for p in steps.RUN_PARAMETERS}
    args = parser.parse_args(["run", "--copies", "3", "--release-features", "--model", params.MODELS[-1]])
    assert (args.augment_copies, args.use_release_features, args.model) == (3, True, params.MODELS[-1])
    assert "--patience" in flags


def test_docs_parameter_table_is_the_spec(repo_root):
    table = steps.parameters_markdown()
    doc = (repo_root / "docs" / "pipeline.md").read_text()
    assert table in doc, (
        "docs/pipeline.md's parameter table drifted; paste `python -m disco.steps`:\n" + table
    )


def test_component_functions_are_dsl_components():
    for step in steps.STEPS:
        component = importlib.import_module(_component_function(step).__module__).make_component("img")
        assert isinstance(component, dsl.base_component.BaseComponent)
        assert component.name == step.task_name


def test_docs_step_table_names_every_step_and_argument(repo_root):
    """docs/pipeline.md's step table: display name, task name and every parameter argument of each
    component (artifact inputs are listed too, but only the parameters come from the spec)."""
    doc = (repo_root / "docs" / "pipeline.md").read_text()
    rows = {line.split("|")[1].strip(): line for line in doc.splitlines() if line.startswith("| ")}
    for step in steps.STEPS:
        title = f"{step.display_name} (`{step.task_name}`)"
        assert title in rows, f"docs/pipeline.md has no step row {title!r}"
        inputs = rows[title].split("|")[2]
        missing = [arg for arg in step.arguments if f"`{arg}`" not in inputs]
        assert missing == [], f"{title}: inputs column misses {missing}"


@pytest.mark.parametrize("step", steps.STEPS, ids=lambda s: s.name)
def test_each_step_returns_the_result_type_its_spec_names(step):
    """The spec's result type is what the step's entry point returns (and so its summary.json), the
    component calls that entry point, and the result names the same step."""
    import typing

    module, _, function = step.entry_point.partition(":")
    entry = getattr(importlib.import_module(module), function)
    assert typing.get_type_hints(entry)["return"] is step.result, (
        f"{step.entry_point} drifted from disco.steps"
    )
    assert step.result.step == step.name
    assert issubclass(step.result, results.StepResult)
    body = inspect.getsource(_component_function(step))
    assert f"{function}(" in body, f"{step.component} does not call {step.entry_point}"


def test_a_summary_parses_into_the_spec_result_type(tmp_path):
    """A real step output (the empty augment step the component writes for 0 copies) reads back as
    its spec's result type, and a summary of another step is refused."""
    from disco.errors import OutputError
    from disco_components import _runtime

    written = _runtime.empty_step(str(tmp_path / "augmented"), "augment", parameters={}, seed=7)
    assert type(written) is steps.STEP["augment"].result
    assert steps.STEP["augment"].result.read(tmp_path / "augmented") == written
    with pytest.raises(OutputError, match="expected 'train'"):
        steps.STEP["train"].result.read(tmp_path / "augmented")


def test_run_local_refuses_a_parameter_the_spec_does_not_declare(tmp_path):
    """run_local takes the run parameters by name: a misspelt one is an error, never dropped."""
    from disco.errors import ConfigError
    from disco.runner import run_local

    with pytest.raises(ConfigError, match="no such pipeline parameter: epoch"):
        run_local(str(tmp_path), tmp_path / "run", epoch=3)
    assert not (tmp_path / "run").exists()
    values = steps.run_values({"epochs": 3})
    assert list(values) == [p.name for p in steps.RUN_PARAMETERS] and values["epochs"] == 3
    assert steps.hyperparameters(values)["epochs"] == 3 and "seed" not in steps.hyperparameters(values)


def test_the_presets_sentinel_can_be_typed_and_means_the_presets_value():
    """The help says "default: -1 = the preset's": typed, -1 is that request (None for `disco
    train`, whose unset flags are None); any other out-of-range value is still refused."""
    from disco.cli import build_parser

    parser = build_parser()
    run = parser.parse_args(["run", "--epochs", "-1", "--learning-rate", "-1", "--dropout", "0.2"])
    assert (run.epochs, run.learning_rate, run.dropout) == (params.FROM_PRESET, params.FROM_PRESET, 0.2)
    train = parser.parse_args(["train", "f", "--out", "m", "--epochs", "-1", "--learning-rate", "0.01"])
    assert (train.epochs, train.learning_rate) == (None, 0.01)
    with pytest.raises(SystemExit):
        parser.parse_args(["run", "--epochs", "-2"])
