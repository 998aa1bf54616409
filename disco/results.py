"""What each step returns: a small dataclass of counts, failures and timings that is also the
step's ``summary.json`` (written by :func:`disco.publish.finish_step`, read back with ``read``).

Callers read attributes (``result.ok``), never string keys; ``summary.json`` is the same fields as
JSON plus ``"step"``, so other tools (the KFP UI, ``jq``) still read it as before.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from disco import fileio, params
from disco.errors import OutputError

R = TypeVar("R", bound="StepResult")


@dataclass
class StepResult:
    step: ClassVar[str] = ""

    def to_dict(self) -> dict[str, Any]:
        return {"step": self.step, **dataclasses.asdict(self)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, default=str) + "\n"

    def write(self, directory: str | os.PathLike[str]) -> str:
        path = fileio.join(directory, params.SUMMARY_FILE)
        fileio.write_text(path, self.to_json())
        return path

    @classmethod
    def from_dict(cls: type[R], data: dict[str, Any]) -> R:
        # Fields a newer disco added are ignored, fields an older one lacked take their defaults.
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    @classmethod
    def read(cls: type[R], directory: str | os.PathLike[str]) -> R:
        from disco.publish import check_complete, check_side_file

        check_complete(directory)
        path = fileio.join(directory, params.SUMMARY_FILE)
        if not fileio.exists(path):
            raise OutputError(f"{path}: missing; is {directory} a finished {cls.step} output?")

        text = fileio.read_text(path)
        check_side_file(directory, params.SUMMARY_FILE, text)
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise OutputError(f"{path}: not JSON ({exc})") from exc
        if not isinstance(data, dict) or "step" not in data:
            # Every field has a default: without this, any JSON object would read as a result.
            raise OutputError(f"{path}: no 'step' field; not the summary of a disco {cls.step} step")
        if data["step"] != cls.step:
            raise OutputError(f"{path}: the summary of a {data['step']!r} step, expected {cls.step!r}")
        return cls.from_dict(data)

    # What finish_step checks before publishing: how many outputs the step made, how many inputs
    # failed, and a few examples of why.
    def produced(self) -> int:
        raise NotImplementedError

    def shard_records(self) -> int | None:
        """The records its shards must hold, checked against the manifest before publishing (None:
        the step writes no record shards)."""
        return None

    def failed_inputs(self) -> list[dict[str, Any]]:
        return []

    def summary_line(self) -> str:
        """The step's final log line."""
        raise NotImplementedError

    def run_info_extra(self) -> dict[str, Any]:
        """Anything run_info.json records beyond the call's parameters."""
        return {}

    # Read access by key, for call sites on other branches that still index the old summary
    # dicts; new code uses the attributes.
    def __getitem__(self, key: str) -> Any:
        data = self.to_dict()
        if key not in data:
            raise KeyError(key)
        return data[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.to_dict().get(key, default)


@dataclass
class ResampleResult(StepResult):
    step: ClassVar[str] = "resample"
    dataset: str = ""
    clips: int = 0
    ok: int = 0
    failed: int = 0
    failures: list[dict[str, Any]] = field(default_factory=list)
    splits: dict[str, int] = field(default_factory=dict)
    shards: dict[str, int] = field(default_factory=dict)
    sample_rate: int = params.SAMPLE_RATE
    clip_samples: int = params.CLIP_SAMPLES
    resampler: str = "soxr HQ"
    seconds: float = 0.0
    clips_per_s: float | None = None

    def produced(self) -> int:
        return self.ok

    def shard_records(self) -> int | None:
        return self.ok

    def failed_inputs(self) -> list[dict[str, Any]]:
        return self.failures

    def summary_line(self) -> str:
        return (
            f"resample: {self.ok} ok, {self.failed} failed in {self.seconds:.1f} s "
            f"({self.clips_per_s or 0:.1f} clips/s)"
        )


@dataclass
class AugmentResult(StepResult):
    step: ClassVar[str] = "augment"
    records: int = 0
    # Input records that could not be read or decoded (skipped, in failures.jsonl).
    failed: int = 0
    failures: list[dict[str, Any]] = field(default_factory=list)
    copies: int = 0
    mixup: int = 0
    masks: bool = False
    seed: int = params.DEFAULT_SEED
    chain: list[str] = field(default_factory=list)
    mixup_weights: list[float] | None = None
    seconds: float = 0.0

    def produced(self) -> int:
        return self.records

    def shard_records(self) -> int | None:
        return self.records

    def failed_inputs(self) -> list[dict[str, Any]]:
        return self.failures

    def summary_line(self) -> str:
        return (
            f"augment: {self.copies} copies + {self.mixup} mixtures of train clips → {self.records} records "
            f"in {self.seconds:.1f} s"
        )


@dataclass
class EmbedResult(StepResult):
    step: ClassVar[str] = "embed"
    records: int = 0
    splits: dict[str, int] = field(default_factory=dict)
    failed: int = 0
    failures: list[dict[str, Any]] = field(default_factory=list)
    embedder: str = ""
    embedder_version: str = ""
    frames: int = 0
    dim: int = 0
    precision: str = ""
    inputs: list[str] = field(default_factory=list)
    shards: int = 0
    batch_size: int = 0
    seconds: float = 0.0
    clips_per_s: float | None = None

    def produced(self) -> int:
        return self.records

    def shard_records(self) -> int | None:
        return self.records

    def failed_inputs(self) -> list[dict[str, Any]]:
        return self.failures

    def summary_line(self) -> str:
        return (
            f"embed: {self.records} records ({', '.join(f'{k} {v}' for k, v in self.splits.items())}) "
            f"in {self.seconds:.1f} s ({self.clips_per_s or 0:.1f} clips/s)"
        )

    def run_info_extra(self) -> dict[str, Any]:
        return {
            "embedder": {
                "embedder": self.embedder,
                "embedder_version": self.embedder_version,
                "frames": self.frames,
                "dim": self.dim,
                "precision": self.precision,
            }
        }


@dataclass
class ImportFeaturesResult(StepResult):
    step: ClassVar[str] = "import_features"
    records: int = 0
    splits: dict[str, int] = field(default_factory=dict)
    shards: int = 0
    embedder: str = params.RELEASE_EMBEDDER
    frames: int = 0
    dim: int = 0
    source: str = ""
    precision: str = "uint8-dequantized"
    seconds: float = 0.0

    def produced(self) -> int:
        return self.records

    def shard_records(self) -> int | None:
        return self.records

    def summary_line(self) -> str:
        return f"import-features: {self.records} records from {self.source} in {self.shards} shards"


@dataclass
class TrainResult(StepResult):
    step: ClassVar[str] = "train"
    preset: str = ""  # params.PRESETS name
    model: str = ""  # asked for ("auto" selects)
    chosen: str = ""  # what model.keras holds: linear, a network or "average"
    selection: str | None = None  # how it was chosen (selection.json), None for a single network
    ensemble: int = 1
    refits: int = 0
    mixup_alpha: float = 0.0
    batch_size: int = 0
    epochs: int = 0
    learning_rate: float = 0.0
    dropout: float = 0.0
    l2: float = 0.0
    patience: int = 0
    features: str = ""
    feature_kind: str = ""
    embedder: str = ""
    frames: int = 0
    dim: int = 0
    examples: dict[str, int] = field(default_factory=dict)
    augmented_train_examples: int = 0
    # One network: the epochs it ran and its best. Cross-fitted ("auto"): the epochs the fold
    # networks ran side by side and the one epoch count chosen for all of them on their pooled
    # out-of-fold mAP, which any refits train for (history.csv: the pooled curve).
    epochs_run: int = 0
    best_epoch: int = 0
    # Validation mAP; cross-fitted, of the chosen candidate's out-of-fold scores.
    val_mAP: float = float("nan")
    seconds: float = 0.0

    def produced(self) -> int:
        # The logistic regression is fitted by L-BFGS, not in epochs: one fitted model.
        return 1 if self.chosen == "linear" else self.epochs_run

    def summary_line(self) -> str:
        if self.selection is None:
            return f"train: {self.chosen or self.model}, best epoch {self.best_epoch} of {self.epochs_run}, val mAP {self.val_mAP:.4f}"
        epochs = (
            f", fold networks' best pooled epoch {self.best_epoch} of {self.epochs_run}"
            if self.best_epoch
            else ""
        )
        return f"train: {self.chosen} (cross-fitted){epochs}, out-of-fold mAP {self.val_mAP:.4f}"


@dataclass
class EvaluateResult(StepResult):
    step: ClassVar[str] = "evaluate"
    mAP: float = float("nan")
    f1_macro: float = float("nan")
    f1_macro_tuned: float | None = None
    rf_mAP: float | None = None
    lr_mAP: float | None = None
    examples: int = 0
    seconds: float = 0.0

    def produced(self) -> int:
        return self.examples

    def summary_line(self) -> str:
        rf = f"{self.rf_mAP:.4f}" if self.rf_mAP is not None else "n/a"
        return f"evaluate: test mAP {self.mAP:.4f}, macro F1 {self.f1_macro:.4f} (random forest mAP {rf})"
