"""Cache of image embeddings for runs whose image encoder is frozen and data not augmented.

Keyed by (file content SHA-1, model identity): the identity hashes the encoder's weights and the input
size, so a changed checkpoint or img_size never reuses stale embeddings. Entries live in memory and,
when a directory is given, also on disk as <directory>/<identity>/<digest>.pt, so later runs (and a
resumed run) skip the encoder from their first epoch.
"""
from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import torch
from torch import nn

from .checkpointing import save_atomic

logger = logging.getLogger("fastsam.train")


def model_identity(image_encoder: nn.Module, img_size: int) -> str:
    """A short hash of the encoder's weights and input size."""
    h = hashlib.sha1(str(img_size).encode())
    for key, value in sorted(image_encoder.state_dict().items()):
        h.update(key.encode())
        h.update(value.detach().cpu().float().numpy().tobytes())
    return h.hexdigest()[:16]


class EmbeddingCache:
    """Maps image digests to (C, h, w) embeddings kept on the CPU (and on disk if `directory` is set)."""

    def __init__(self, identity: str, directory: str | Path | None = None):
        self.identity = identity
        self.directory = None if directory is None else Path(directory) / identity
        if self.directory is not None:
            try:
                self.directory.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise OSError(f"config key 'embedding_cache_dir': cannot create {self.directory}: "
                              f"{err.strerror or err}") from None
        self._store: dict[str, torch.Tensor] = {}
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._store)

    def _file(self, digest: str) -> Path | None:
        return None if self.directory is None else self.directory / f"{digest}.pt"

    def contains(self, digest: str) -> bool:
        """True if `get(digest)` would hit (without counting it)."""
        path = self._file(digest)
        return digest in self._store or (path is not None and path.is_file())

    def get(self, digest: str) -> torch.Tensor | None:
        value = self._store.get(digest)
        path = self._file(digest)
        if value is None and path is not None and path.is_file():
            value = self._read(path)
            if value is not None:
                self._store[digest] = value
        if value is None:
            self.misses += 1
        else:
            self.hits += 1
        return value

    def put(self, digest: str, embedding: torch.Tensor) -> None:
        value = embedding.detach().cpu().contiguous()
        self._store[digest] = value
        path = self._file(digest)
        if path is not None:  # put follows a miss: the file is absent or was unreadable
            save_atomic(value, path)

    @staticmethod
    def _read(path: Path) -> torch.Tensor | None:
        # A truncated or foreign file is recomputed (and rewritten), never trusted.
        try:
            value = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # noqa: BLE001 - any unreadable file means "not cached"
            logger.warning("embedding cache: ignoring unreadable %s (%s)", path, err)
            return None
        if not isinstance(value, torch.Tensor) or value.ndim != 3:
            logger.warning("embedding cache: ignoring %s (not a (C, h, w) tensor)", path)
            return None
        return value
