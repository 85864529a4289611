"""Decoder-only finetuning on real photos (../shared/data/coco128seg) from the vit_t fixture weights.

The fixture weights are random, so the starting masks are noise (val mIoU ~0.014). The run is at 256 px
(the CPU budget of CI; benchmarks/bench_train_coco128.py runs longer) with the default loss weights.
The decoder first collapses to near-empty masks, then learns to localise: the test asserts a clear rise
and that the masks then cover about as much of the image as the objects do (not the trivial empty or
whole-frame solutions).
"""
from __future__ import annotations

import json

import pytest
import torch

from fastsam.train.config import config_from_dict
from fastsam.train.trainer import train


@pytest.mark.slow
def test_decoder_only_finetune_on_coco128_raises_val_miou(coco128_dir, fixture_checkpoint, tmp_path):
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        data = coco128_dir / "coco"
        cfg = config_from_dict({
            "output_dir": str(tmp_path), "model_type": "vit_t", "checkpoint": str(fixture_checkpoint),
            "train_img_dir": str(data / "train"), "train_coco": str(data / "train/_annotations.coco.json"),
            "val_img_dir": str(data / "val"), "val_coco": str(data / "val/_annotations.coco.json"),
            "freeze": {"image_encoder": True, "prompt_encoder": True}, "img_size": 256,
            "num_epochs": 10, "batch_size": 2, "max_objects_per_image": 2, "learning_rate": 1e-4,
            "box_jitter": 0.05, "num_val_overlays": 0, "seed": 0,
        })
        train(cfg)
    finally:
        torch.set_num_threads(before)
    rows = [json.loads(line) for line in (cfg.run_dir / "metrics.jsonl").read_text().splitlines()]
    start, best = rows[0], max(rows[1:], key=lambda r: r["val_miou"])
    assert start["val_objects"] == 135
    assert best["val_miou"] > 3 * start["val_miou"], [round(r["val_miou"], 4) for r in rows]
    assert 0.5 * best["val_gt_area"] < best["val_pred_area"] < 2.0 * best["val_gt_area"]
