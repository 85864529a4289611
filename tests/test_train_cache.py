"""Embedding cache: keyed by file content and encoder identity; cached embeddings equal fresh ones."""
from __future__ import annotations

import shutil

import pytest
import torch

from fastsam.data.build import load_records
from fastsam.data.dataset import PromptSettings, SamDataset
from fastsam.data.synthetic import generate_synthetic_dataset
from fastsam.train.embedding_cache import EmbeddingCache, model_identity
from fastsam.train.embedding_cache import embed_images


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


def test_disk_cache_round_trip_identity_and_unreadable_entries(tmp_path):
    emb = torch.arange(2 * 3 * 4, dtype=torch.float32).reshape(2, 3, 4)
    first = EmbeddingCache("modelA", tmp_path)
    assert not first.contains("abc") and first.get("abc") is None
    first.put("abc", emb)
    assert (tmp_path / "modelA" / "abc.pt").is_file()
    assert [p.name for p in (tmp_path / "modelA").iterdir()] == ["abc.pt"]  # no temp file left behind

    later = EmbeddingCache("modelA", tmp_path)  # a new run: nothing in memory yet
    assert later.contains("abc")
    assert torch.equal(later.get("abc"), emb) and later.hits == 1
    assert EmbeddingCache("modelB", tmp_path).get("abc") is None  # other weights / size: never reused

    (tmp_path / "modelA" / "abc.pt").write_bytes(b"truncated")
    again = EmbeddingCache("modelA", tmp_path)
    assert again.get("abc") is None and again.misses == 1  # recomputed, not trusted
    again.put("abc", emb)
    assert torch.equal(EmbeddingCache("modelA", tmp_path).get("abc"), emb)


def test_disk_cache_dir_that_cannot_be_created_names_the_key(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OSError, match="embedding_cache_dir"):
        EmbeddingCache("modelA", blocker / "sub")


@pytest.mark.slow
def test_second_run_on_a_disk_cache_reads_no_photos_and_ends_identically(tmp_path, monkeypatch):
    import fastsam.data.dataset as dataset_module
    from fastsam.train.config import config_from_dict
    from fastsam.train.trainer import train

    torch.set_num_threads(1)
    root = generate_synthetic_dataset(tmp_path / "d", num_train=4, num_val=2, size=64, objects=(1, 2), seed=5)

    def run(name):
        cfg = config_from_dict({
            "output_dir": str(tmp_path / "runs"), "run_name": name, "img_size": 64, "seed": 0,
            "train_img_dir": str(root / "train/images"), "train_mask_dir": str(root / "train/masks"),
            "val_img_dir": str(root / "val/images"), "val_mask_dir": str(root / "val/masks"),
            "freeze": {"image_encoder": True, "prompt_encoder": True}, "batch_size": 2, "num_epochs": 2,
            "learning_rate": 1e-3, "num_val_overlays": 0, "embedding_cache_dir": str(tmp_path / "cache"),
        })
        return train(cfg)

    photos_read = []
    real_getitem = dataset_module.SamDataset.__getitem__

    def spy(self, index):
        item = real_getitem(self, index)
        if item["image"] is not None:
            photos_read.append(item["image_path"])
        return item

    monkeypatch.setattr(dataset_module.SamDataset, "__getitem__", spy)
    first = run("first")
    assert len(photos_read) == 6  # epoch 1 and the first validation read each photo once, then the cache serves
    assert len(list((tmp_path / "cache").glob("*/*.pt"))) == 6
    photos_read.clear()
    second = run("second")
    assert photos_read == []
    for key in ("train_loss", "val_miou", "val_dice"):
        assert second[key] == first[key]
