"""Embedding cache: keyed by file content and encoder identity; cached embeddings equal fresh ones."""
from __future__ import annotations

import shutil

import pytest
import torch

from fastsam.data.build import load_records
from fastsam.data.dataset import PromptSettings, SamDataset
from fastsam.data.synthetic import generate_synthetic_dataset
from fastsam.train.embedding_cache import EmbeddingCache, model_identity
from fastsam.train.trainer import embed_images


@pytest.mark.slow
def test_cache_hits_equal_fresh_embeddings_and_keys_follow_content(tmp_path):
    from fastsam.build_sam import build_sam_vit_t

    root = generate_synthetic_dataset(tmp_path / "d", num_train=2, num_val=1, size=64, objects=(1, 2), seed=2)
    shutil.copy(root / "train/images/train_0000.png", root / "train/images/copy_of_0.png")
    shutil.copy(root / "train/masks/train_0000_0.png", root / "train/masks/copy_of_0_0.png")
    records, _ = load_records(str(root / "train/images"), str(root / "train/masks"), None, "error", "train")
    ds = SamDataset(records, 64, PromptSettings(), max_objects=4, train=False)
    items = [ds[i] for i in range(len(ds))]
    assert items[0]["digest"] == items[1]["digest"] != items[2]["digest"]  # copy_of_0 == train_0000 bytes

    torch.manual_seed(0)
    sam = build_sam_vit_t(image_size=64).eval()
    cache = EmbeddingCache(model_identity(sam.image_encoder, 64))
    with torch.no_grad():
        first = embed_images(sam, items, cache, torch.device("cpu"))
        fresh = [sam.image_encoder(sam.preprocess(it["image"])[None])[0] for it in items]
        second = embed_images(sam, items, cache, torch.device("cpu"))
    assert len(cache) == 2 and cache.hits >= 3  # the renamed copy hit, and every second lookup hit
    for a, b, c in zip(first, fresh, second):
        assert torch.equal(a, c) and torch.allclose(a, b, atol=1e-5)

    identity = model_identity(sam.image_encoder, 64)
    assert model_identity(sam.image_encoder, 128) != identity
    with torch.no_grad():
        sam.image_encoder.neck[0].weight.add_(1e-3)
    assert model_identity(sam.image_encoder, 64) != identity
