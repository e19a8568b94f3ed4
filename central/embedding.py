"""Segment embeddings for clustering: the code lives in `edge.segment_embedding`.

A device that carries a primitive library (`edge.primitive_library`) must embed its segments
exactly as central clusters them, and `edge` imports nothing from `central`, so the one copy
of the embedding is in `edge`; this module keeps the names central code has always imported.
"""

from __future__ import annotations

from edge.segment_embedding import (
    DEFAULT_METHODS,
    METHODS,
    MOTION_METHODS,
    EmbeddingConfig,
    FrozenTransformerEmbedder,
    MethodEmbedder,
    embed_sequences,
    embedding_dim,
    mean_pool,
    norm_weighted_pool,
    sinusoidal_positions,
    statistics_pool,
)

__all__ = [
    "DEFAULT_METHODS", "METHODS", "MOTION_METHODS", "statistics_pool", "EmbeddingConfig", "FrozenTransformerEmbedder", "MethodEmbedder", "embed_sequences", "embedding_dim", "mean_pool",
    "norm_weighted_pool", "sinusoidal_positions",
]
