"""Compute precision for the embedders: detect native bfloat16 and build models under it.

bfloat16 pays only where the hardware computes it natively: CPUs with AVX512-BF16 or AMX-BF16
(oneDNN then runs bf16 convolutions/matmuls about twice as fast as float32), and tensor-core
GPUs (compute capability >= 8.0). Elsewhere bfloat16 is emulated and slower, so the default is
float32. Models are built under Keras' ``mixed_bfloat16`` policy: variables stay float32
(checkpoints load unchanged), computation is bfloat16, and the output is cast back to float32.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from disco.errors import ConfigError

if TYPE_CHECKING:
    import keras

log = logging.getLogger(__name__)

FLOAT32 = "float32"
BFLOAT16 = "bfloat16"
PRECISIONS: tuple[str, ...] = (FLOAT32, BFLOAT16)
CPU_BF16_FLAGS: tuple[str, ...] = ("avx512_bf16", "amx_bf16")
MIN_GPU_BF16_CAPABILITY: tuple[int, int] = (8, 0)  # Ampere: first tensor cores with bf16

_KERAS_POLICY = {FLOAT32: "float32", BFLOAT16: "mixed_bfloat16"}


def cpu_bf16_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> tuple[str, ...]:
    """The bf16 CPU flags present in ``cpuinfo`` (empty where the file is missing: not Linux)."""
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError as exc:
        log.debug("cannot read %s (%s): assuming no native bfloat16 on the CPU", cpuinfo, exc)
        return ()
    flags: set[str] = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            flags.update(value.split())
    return tuple(flag for flag in CPU_BF16_FLAGS if flag in flags)


def gpu_compute_capabilities() -> list[tuple[int, int]]:
    """Compute capability of each visible GPU (empty without GPUs)."""
    import tensorflow as tf

    capabilities = []
    for gpu in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(gpu)
        capability = details.get("compute_capability")
        capabilities.append(tuple(capability) if capability else (0, 0))
    return capabilities


def native_bfloat16(
    *, cpuinfo: str | Path = "/proc/cpuinfo", gpus: list[tuple[int, int]] | None = None
) -> tuple[bool, str]:
    """Whether the device TF will run on computes bfloat16 natively, and why.

    With GPUs, the model runs on them, so they decide (all must be >= 8.0); otherwise the CPU
    flags decide."""
    if gpus is None:
        gpus = gpu_compute_capabilities()
    if gpus:
        ok = all(tuple(cap) >= MIN_GPU_BF16_CAPABILITY for cap in gpus)
        caps = ", ".join(f"{major}.{minor}" for major, minor in gpus)
        return ok, f"GPU compute capability {caps} ({'>=' if ok else '<'} 8.0)"
    flags = cpu_bf16_flags(cpuinfo)
    if flags:
        return True, f"CPU flags {', '.join(flags)}"
    return False, "no GPU and no avx512_bf16/amx_bf16 CPU flag"


def default_precision(**kwargs: object) -> str:
    ok, why = native_bfloat16(**kwargs)  # type: ignore[arg-type]
    choice = BFLOAT16 if ok else FLOAT32
    log.info("default precision %s: %s", choice, why)
    return choice


def resolve_precision(precision: str | None) -> str:
    """``None`` -> the hardware default; otherwise validate the name."""
    if precision is None:
        return default_precision()
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return precision


def keras_policy_name(precision: str) -> str:
    """Keras dtype policy for a precision ("float32" or "mixed_bfloat16")."""
    if precision not in _KERAS_POLICY:
        raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return _KERAS_POLICY[precision]


@contextlib.contextmanager
def keras_precision(precision: str) -> Iterator[None]:
    """Build layers under the precision's Keras dtype policy, restoring the previous global policy
    afterwards (so other models in the process are unaffected). Layers built inside keep their
    policy after the block ends."""
    import keras

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(keras_policy_name(precision))
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def float32_output(tensor: keras.KerasTensor, *, name: str = "float32_output") -> keras.KerasTensor:
    """Cast a (possibly bfloat16) model output to float32, as the last layer of a model."""
    import keras

    return keras.layers.Activation("linear", dtype="float32", name=name)(tensor)
