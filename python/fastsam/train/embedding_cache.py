"""In-memory cache of image embeddings for runs whose image encoder is frozen and data not augmented.

Keyed by (file content SHA-1, model identity): the identity hashes the encoder's weights and the input
size, so a changed checkpoint or img_size never reuses stale embeddings.
"""
from __future__ import annotations

import hashlib

import torch
from torch import nn


def model_identity(image_encoder: nn.Module, img_size: int) -> str:
    """A short hash of the encoder's weights and input size."""
    h = hashlib.sha1(str(img_size).encode())
    for key, value in sorted(image_encoder.state_dict().items()):
        h.update(key.encode())
        h.update(value.detach().cpu().float().numpy().tobytes())
    return h.hexdigest()[:16]


class EmbeddingCache:
    """Maps image digests to (C, h, w) embeddings kept on the CPU."""

    def __init__(self, identity: str):
        self.identity = identity
        self._store: dict[tuple[str, str], torch.Tensor] = {}
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._store)

    def get(self, digest: str) -> torch.Tensor | None:
        value = self._store.get((digest, self.identity))
        if value is None:
            self.misses += 1
        else:
            self.hits += 1
        return value

    def put(self, digest: str, embedding: torch.Tensor) -> None:
        self._store[(digest, self.identity)] = embedding.detach().cpu()
