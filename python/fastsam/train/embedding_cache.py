"""Cache of image embeddings for runs whose image encoder is frozen and data not augmented.

Keyed by (file content SHA-1, model identity): the identity hashes the encoder's weights and the input
size, so a changed checkpoint or img_size never reuses stale embeddings. Entries live in memory and,
when a directory is given, also on disk as <directory>/<identity>/<digest>.pt, so later runs (and a
resumed run) skip the encoder from their first epoch. `embed_images` is the one way the training loop gets
embeddings: from this cache where it can, from the encoder otherwise.
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


def embed_images(sam: nn.Module, items: list[dict], cache: EmbeddingCache | None, device: torch.device) -> list[torch.Tensor]:
    """Image embeddings (C, h, w) for each item, from the cache where possible.

    With a cache, misses are encoded one image at a time so an embedding never depends on which images
    shared its batch (keeps cached and resumed runs bit-identical).
    """
    out: list[torch.Tensor | None] = [None] * len(items)
    if cache is not None:
        for i, item in enumerate(items):
            hit = cache.get(item["digest"])
            out[i] = None if hit is None else hit.to(device)
        for i, item in enumerate(items):
            if out[i] is None:
                if item["image"] is None:
                    raise RuntimeError(f"embedding cache lost the entry of {item['image_path']} while images were "
                                       "not being loaded (was the cache directory emptied during the run?)")
                emb = sam.image_encoder(sam.preprocess(item["image"].to(device))[None])[0]
                cache.put(item["digest"], emb)
                out[i] = emb
        return out
    images = torch.stack([sam.preprocess(item["image"].to(device)) for item in items])
    return list(sam.image_encoder(images))


def load_images_only_on_misses(cache: EmbeddingCache | None, *datasets) -> None:
    """Let datasets (with `load_images` and `digests()`) skip reading photos while the cache holds every
    one of their embeddings."""
    for ds in datasets:
        ds.load_images = cache is None or not all(cache.contains(d) for d in ds.digests())
