"""Precision: native bfloat16 detection, the Keras policy helper, and bfloat16 VGGish embeddings
on real clips staying close to float32 ones."""

from __future__ import annotations

from pathlib import Path

import helpers.vggish_fixtures as fx
import keras
import numpy as np
import pytest

from disco.embedders import precision
from disco.embedders.base import get_embedder
from disco.errors import ConfigError

# Documented in docs/vggish.md: per-frame cosine similarity of bfloat16 vs float32 embeddings
# (random seeded He-scaled weights) on real clips.
MIN_FRAME_COSINE = 0.99

CPUINFO_BF16 = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 avx512_vnni\n"
CPUINFO_PLAIN = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_vnni\n"
CPUINFO_AMX = "processor\t: 0\nflags\t\t: fpu avx2 amx_bf16 amx_tile\n"


@pytest.mark.parametrize(
    ("text", "flags"),
    [(CPUINFO_BF16, ("avx512_bf16",)), (CPUINFO_PLAIN, ()), (CPUINFO_AMX, ("amx_bf16",))],
)
def test_cpu_flags(tmp_path: Path, text: str, flags: tuple[str, ...]) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(text)
    assert precision.cpu_bf16_flags(cpuinfo) == flags
    ok, why = precision.native_bfloat16(cpuinfo=cpuinfo, gpus=[])
    assert ok == bool(flags)
    assert precision.default_precision(cpuinfo=cpuinfo, gpus=[]) == ("bfloat16" if flags else "float32")


def test_gpus_decide_when_present(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(CPUINFO_BF16)
    assert precision.native_bfloat16(cpuinfo=cpuinfo, gpus=[(8, 0)])[0] is True
    assert precision.native_bfloat16(cpuinfo=cpuinfo, gpus=[(9, 0), (8, 6)])[0] is True
    ok, why = precision.native_bfloat16(cpuinfo=cpuinfo, gpus=[(7, 5)])  # T4: no bf16 cores
    assert ok is False and "7.5" in why
    assert precision.cpu_bf16_flags(tmp_path / "missing") == ()


def test_resolve_precision() -> None:
    assert precision.resolve_precision("float32") == "float32"
    assert precision.resolve_precision(None) in precision.PRECISIONS
    with pytest.raises(ConfigError, match="float16"):
        precision.resolve_precision("float16")


def test_keras_precision_scope_restores_global_policy() -> None:
    before = keras.config.dtype_policy().name
    with precision.keras_precision("bfloat16"):
        inputs = keras.Input((4,))
        dense = keras.layers.Dense(3)
        out = precision.float32_output(dense(inputs))
    assert keras.config.dtype_policy().name == before
    assert dense.compute_dtype == "bfloat16" and dense.variable_dtype == "float32"
    model = keras.Model(inputs, out)
    assert model(np.ones((2, 4), np.float32)).dtype.name == "float32"


@pytest.mark.slow
def test_bfloat16_embeddings_close_to_float32_on_real_clips(
    tmp_path: Path, openmic_sample: Path, real_clips: Path
) -> None:
    ckpt = fx.write_v1_checkpoint(tmp_path / "vggish_model.ckpt", fx.random_weights(11))
    clips = np.stack(
        [
            fx.load_real_clip(openmic_sample / "audio" / "000" / "000046_3840.ogg"),
            fx.load_real_clip(
                real_clips / "tinysol/audio/Strings/Contrabass/ordinario/Cb-ord-A2-mf-2c-N.wav"
            ),
            fx.load_real_clip(real_clips / "phenicx_anechoic/audio/beethoven/violin1.wav"),
        ]
    )
    f32 = get_embedder("vggish", checkpoint=str(ckpt), precision="float32")
    bf16 = get_embedder("vggish", checkpoint=str(ckpt), precision="bfloat16")
    assert bf16.precision == "bfloat16" and bf16.describe()["precision"] == "bfloat16"
    layer = bf16.keras_model().get_layer("conv2")
    assert layer.compute_dtype == "bfloat16" and layer.kernel.dtype == "float32"
    a, b = f32.embed(clips), bf16.embed(clips)
    assert b.dtype == np.float32 and b.shape == a.shape == (3, 10, 128)
    cosine = np.sum(a * b, -1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))
    assert cosine.min() >= MIN_FRAME_COSINE
    # bfloat16 really computed in lower precision (not silently float32).
    assert np.abs(a - b).max() > 0
