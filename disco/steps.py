"""One declaration per step: the pipeline's run parameters and each step's spec.

What is declared here once, and who reads it:

* :data:`RUN_PARAMETERS`: name, type, default, help and CLI flag of every pipeline parameter. The
  commands that take one (``disco run``, ``train``, ``resample``, ...) build its flag from it
  (:func:`disco.cli._params.add_arguments`); the pipeline function in ``pipelines/factory.py``,
  ``disco.runner.run_local`` and docs/pipeline.md's tables are checked against it by
  tests/test_step_specs.py (KFP reads real annotations, so those signatures stay written out).
* :data:`STEPS`: per step its component function (and so its KFP task name), display name, which
  run parameters its component takes (under which argument name), its library entry point and the
  result type that entry point returns (the step's summary.json), GPU, retry and resource settings,
  and the container image target. The factory wires and configures tasks from it, the local runner
  names progress lines with it and reads each step's result with its result type, ``disco.images``
  builds one image per step from it; the component signatures and the entry points' return types
  are checked against it.

Defaults come from :mod:`disco.params`; nothing here imports KFP.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from disco import params, results
from disco.embedders import available_embedders
from disco.errors import ConfigError


@dataclass(frozen=True)
class Parameter:
    """A pipeline parameter. ``default`` None with ``required`` means the pipeline has no default."""

    name: str
    type: type
    default: Any
    help: str
    flag: str = ""  # CLI flag; "" means --<name with dashes>
    choices: tuple[Any, ...] | None = None
    required: bool = False
    cli: bool = True  # False: set by the runner / submit, not a command-line flag
    # The CLI's range check: a validator's name in disco.cli.argtypes (a bad value is then a usage
    # error at parse time); "" means the plain type.
    check: str = ""

    @property
    def cli_flag(self) -> str:
        return self.flag or "--" + self.name.replace("_", "-")


RUN_PARAMETERS: tuple[Parameter, ...] = (
    Parameter(
        "data_uri",
        str,
        None,
        "dataset: extracted directory, release .tgz, or gs://bucket/prefix",
        flag="--data",
        required=True,
    ),
    Parameter(
        "embedder", str, params.DEFAULT_EMBEDDER, "embedding model", choices=tuple(available_embedders())
    ),
    Parameter(
        "vggish_handle", str, params.VGGISH_DEFAULT_HANDLE, "TF Hub handle or local/gs:// path of VGGish"
    ),
    Parameter(
        "augment_copies",
        int,
        params.DEFAULT_AUGMENT_COPIES,
        "augmented copies per training clip (0: none)",
        flag="--copies",
        check="non_negative_int",
    ),
    Parameter(
        "augment_mixup",
        int,
        0,
        "mixtures with other training clips per training clip",
        flag="--mixup",
        check="non_negative_int",
    ),
    Parameter(
        "augment_masks",
        bool,
        False,
        "SpecAugment-style time and frequency masks on the copies",
        flag="--masks",
    ),
    Parameter(
        "preset",
        str,
        params.DEFAULT_PRESET,
        "training recipe (params.PRESETS); each hyperparameter below given a value overrides its field",
        choices=tuple(params.PRESETS),
    ),
    Parameter(
        "model",
        str,
        params.FROM_PRESET_MODEL,
        "classifier (auto: candidates chosen by cross-fitting)",
        choices=params.MODELS,
    ),
    Parameter(
        "epochs",
        int,
        params.FROM_PRESET,
        "most training epochs (early stopping may end sooner)",
        check="positive_int",
    ),
    Parameter("batch_size", int, params.FROM_PRESET, "training batch size", check="positive_int"),
    Parameter(
        "learning_rate", float, float(params.FROM_PRESET), "Adam learning rate", check="positive_float"
    ),
    Parameter(
        "dropout",
        float,
        float(params.FROM_PRESET),
        "dropout rate of the classifier",
        check="fraction_closed_open",
    ),
    Parameter(
        "l2",
        float,
        float(params.FROM_PRESET),
        "L2 weight penalty of the classifier",
        check="non_negative_float",
    ),
    Parameter(
        "patience",
        int,
        params.FROM_PRESET,
        "epochs without validation progress before stopping",
        check="positive_int",
    ),
    Parameter(
        "seed",
        int,
        params.DEFAULT_SEED,
        "seed of every seeded step (split, augmentation, training)",
        check="non_negative_int",
    ),
    Parameter(
        "validation_fraction",
        float,
        params.DEFAULT_VALIDATION_FRACTION,
        "validation carved from train, grouped by artist",
        check="fraction_closed_open",
    ),
    Parameter(
        "use_release_features",
        bool,
        False,
        "train on the release's openmic-2018.npz VGGish features; skips resample, augment, embed",
        flag="--release-features",
    ),
    Parameter(
        "beam_options",
        str,
        "",
        "extra Beam pipeline options for the Beam steps, one shell-quoted string",
    ),
    Parameter(
        "data_fingerprint",
        str,
        "",
        "identity of the dataset's contents, part of the cache key (the runner and submit compute it)",
        cli=False,
    ),
)
RUN_PARAMETER = {p.name: p for p in RUN_PARAMETERS}
CLI_PARAMETERS: tuple[str, ...] = tuple(p.name for p in RUN_PARAMETERS if p.cli)


def run_values(given: Mapping[str, Any]) -> dict[str, Any]:
    """Every run parameter's value, in declaration order: the given ones, the rest at their
    declared default. A name that is no run parameter is a ConfigError (a misspelt keyword must not
    be dropped silently)."""
    unknown = sorted(set(given) - set(RUN_PARAMETER))
    if unknown:
        raise ConfigError(f"no such pipeline parameter: {', '.join(unknown)} (disco.steps.RUN_PARAMETERS)")
    return {p.name: given.get(p.name, p.default) for p in RUN_PARAMETERS}


def keywords_for(fn: Callable[..., Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """The keyword-only arguments of ``fn`` found by name in ``values`` (a command's parsed options,
    a component's arguments), so a caller whose names are the library's does not restate each one;
    a keyword with no value there keeps ``fn``'s default."""
    keywords = inspect.signature(fn).parameters.values()
    return {p.name: values[p.name] for p in keywords if p.kind is p.KEYWORD_ONLY and p.name in values}


def run_signature(fn: Callable[..., Any]) -> inspect.Signature:
    """``fn``'s signature with the run parameters (``data_uri`` first, then the other command-line
    parameters as keywords with their defaults) in place of its ``**parameters``: what ``help()``
    and the tests see of a function that takes the run parameters by name."""
    own = list(inspect.signature(fn).parameters.values())
    first = [p for p in own if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD]
    keywords = [p for p in own if p.kind is inspect.Parameter.KEYWORD_ONLY]
    declared = [
        inspect.Parameter(p.name, inspect.Parameter.KEYWORD_ONLY, default=p.default, annotation=p.type)
        for p in RUN_PARAMETERS
        if p.cli and p.name not in {q.name for q in first}
    ]
    return inspect.signature(fn).replace(parameters=[*first, *declared, *keywords])


def hyperparameters(values: Mapping[str, Any]) -> dict[str, Any]:
    """The training recipe's fields (params.TrainPreset) among a run's parameter values."""
    recipe = {f.name for f in dataclasses.fields(params.TrainPreset)}
    return {name: value for name, value in values.items() if name in recipe}


@dataclass(frozen=True)
class Resources:
    """Requests/limits of a step on a cluster (kfp.local ignores them). Kubernetes schedules on the
    requests; Vertex AI picks the machine from the limits (CPU limit = ``cpu_limit`` or the request)."""

    cpu_request: str
    memory_request: str
    memory_limit: str
    cpu_limit: str | None = None


@dataclass(frozen=True)
class StepSpec:
    """A pipeline step. ``arguments`` maps the component's parameter names to run parameters."""

    name: str
    component: str  # the component function in components/<name>.py
    display_name: str
    arguments: Mapping[str, str]
    resources: Resources
    # The library function the component calls ("module:function"; a name, so that this module
    # imports no TensorFlow or Beam) and the result type it returns, which is its summary.json.
    entry_point: str
    result: type[results.StepResult]
    gpu: bool = False
    # Reads remote storage (gs:// dataset, TF Hub handle): retries transient failures on a cluster.
    remote_read: bool = False

    @property
    def task_name(self) -> str:
        """KFP names a task after its component function, dashed (a branch copy adds ``-2``)."""
        return self.component.replace("_", "-")

    @property
    def target(self) -> str:
        """The step's docker/Dockerfile target (a stage name holds no "_")."""
        return self.name.replace("_", "-")

    def component_arguments(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """The component's parameter arguments from the run's parameter values."""
        return {arg: values[param] for arg, param in self.arguments.items()}

    def run_values(self, arguments: Mapping[str, Any]) -> dict[str, Any]:
        """The run parameters' values from the component's arguments (the inverse of
        :meth:`component_arguments`; other arguments, the artifacts, are left out)."""
        return {param: arguments[arg] for arg, param in self.arguments.items()}


_SEEDED_SPLIT = {
    "data_uri": "data_uri",
    "seed": "seed",
    "validation_fraction": "validation_fraction",
    "data_fingerprint": "data_fingerprint",
}

STEPS: tuple[StepSpec, ...] = (
    StepSpec(
        "import_features",
        "import_release_features",
        "Import release VGGish features",
        _SEEDED_SPLIT,
        Resources("1", "4G", "8G"),
        "disco.train.features:write_release_records",
        results.ImportFeaturesResult,
        remote_read=True,
    ),
    StepSpec(
        "resample",
        "resample_audio",
        "Resample audio (16 kHz mono, 10 s)",
        {**_SEEDED_SPLIT, "beam_options": "beam_options"},
        Resources("2", "4G", "8G"),
        "disco.beam.resample:run_resample",
        results.ResampleResult,
        remote_read=True,
    ),
    StepSpec(
        "augment",
        "augment_audio",
        "Augment training audio",
        {
            "copies": "augment_copies",
            "mixup": "augment_mixup",
            "masks": "augment_masks",
            "seed": "seed",
            "beam_options": "beam_options",
        },
        Resources("2", "4G", "8G"),
        "disco.beam.augment:run_augment",
        results.AugmentResult,
    ),
    StepSpec(
        "embed",
        "embed_audio",
        "Embed audio (Beam)",
        {"embedder": "embedder", "vggish_handle": "vggish_handle", "beam_options": "beam_options"},
        Resources("4", "8G", "16G"),
        "disco.beam.embed:run_embed",
        results.EmbedResult,
        gpu=True,
        remote_read=True,
    ),
    StepSpec(
        "train",
        "train_classifier",
        "Train classifier",
        {
            "preset": "preset",
            "model_type": "model",
            **{
                name: name
                for name in ("epochs", "batch_size", "learning_rate", "dropout", "l2", "patience", "seed")
            },
        },
        Resources("2", "8G", "16G"),
        "disco.train:run_train",
        results.TrainResult,
        gpu=True,
    ),
    StepSpec(
        "evaluate",
        "evaluate_classifier",
        "Evaluate on split01 test",
        {"seed": "seed"},
        Resources("1", "4G", "8G"),
        "disco.evaluate:run_evaluate",
        results.EvaluateResult,
    ),
)
STEP = {s.name: s for s in STEPS}
STEP_NAMES: tuple[str, ...] = tuple(s.name for s in STEPS)
GPU_STEPS: tuple[str, ...] = tuple(s.name for s in STEPS if s.gpu)
REMOTE_READ_STEPS: tuple[str, ...] = tuple(s.name for s in STEPS if s.remote_read)


def step_of_task(task: str) -> StepSpec | None:
    """The step a KFP task name belongs to (``train-classifier-2`` is the second branch's copy)."""
    base = task.rsplit("-", 1)[0] if task.rsplit("-", 1)[-1].isdigit() else task
    return next((s for s in STEPS if s.task_name == base), None)


def takes_preset(p: Parameter) -> bool:
    """Whether ``p`` is a training hyperparameter whose default is "the chosen preset's"."""
    return p.name in params.TrainPreset.__dataclass_fields__ and params.from_preset(p.default)


def preset_default_text(p: Parameter) -> str:
    """How a help line or the docs say the default of a hyperparameter that takes the preset's."""
    return (
        f"the preset's; {getattr(params.PRESETS[params.DEFAULT_PRESET], p.name)} in {params.DEFAULT_PRESET!r}"
    )


def parameters_markdown() -> str:
    """docs/pipeline.md's parameter table (tests/test_step_specs.py keeps the doc equal to it)."""
    rows = ["| parameter | `disco run` flag | default | meaning |", "| --- | --- | --- | --- |"]
    for p in RUN_PARAMETERS:
        if takes_preset(p):
            shown = '""' if p.default == params.FROM_PRESET_MODEL else p.default
            default = f"`{shown}`: {preset_default_text(p)}"
        elif p.required:
            default = "(required)"
        elif p.type is bool:
            default = str(p.default).lower()
        elif p.type is str:
            default = f"`{p.default}`" if p.default else '`""`'
        elif p.type is float:
            default = f"{p.default:g}"
        else:
            default = str(p.default)
        choices = f" ({' or '.join(f'`{c}`' for c in p.choices)})" if p.choices else ""
        flag = f"`{p.cli_flag}`" if p.cli else "(none)"
        rows.append(f"| `{p.name}` | {flag} | {default} | {p.help}{choices} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":  # pragma: no cover
    print(parameters_markdown(), end="")
