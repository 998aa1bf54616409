"""Embedders: waveform [B, CLIP_SAMPLES] at 16 kHz -> embeddings [B, frames, dim]."""

from disco.embedders.base import Embedder, available_embedders, embedder_options, get_embedder

__all__ = ["Embedder", "available_embedders", "embedder_options", "get_embedder"]
