"""The embedded default pipeline: synthetic data -> decoder-only finetune -> validate -> segment a val image.

Needs no files of the user's. Without a checkpoint the student starts from random weights, so the
run shows the pipeline working (val mIoU rising from near zero) rather than state-of-the-art masks;
``--set checkpoint=mobile_sam.pt --set img_size=1024`` finetunes real MobileSAM weights the same way.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from ..data.build import load_records
from ..data.prompts import mask_to_box
from ..data.synthetic import generate_synthetic_dataset
from ..image_io import read_rgb, write_png
from ..visualize import overlay_masks
from .config import apply_overrides, config_from_dict
from .trainer import train

logger = logging.getLogger("fastsam.train")

DEMO_CONFIG = {
    "project_name": "demo",
    "run_name": "decoder_only",
    "model_type": "vit_t",
    "img_size": 256,
    "freeze": {"image_encoder": True, "prompt_encoder": True, "mask_decoder": False},
    "cache_embeddings": True,
    "num_epochs": 12,
    "batch_size": 2,
    "learning_rate": 1e-3,
    "box_jitter": 0.05,
    "scheduler": {"power": 1.0, "end_lr": 0.0, "warmup_steps": 5},
    "num_val_overlays": 3,
    "seed": 0,
}


def segment_with_boxes(checkpoint: Path, model_type: str, img_size: int, image_path: Path, boxes: np.ndarray,
                       multimask: bool) -> np.ndarray:
    """Masks for XYXY `boxes` on one image with a finetuned checkpoint, through the public SamPredictor
    (with multimask, the candidate with the highest predicted IoU).

    Returns:
      (N, H, W) bool masks.
    """
    from ..build_sam import sam_model_registry
    from ..predictor import SamPredictor

    model = sam_model_registry[model_type](checkpoint=checkpoint, image_size=img_size)
    predictor = SamPredictor(model)
    predictor.set_image(read_rgb(image_path))
    masks = []
    for box in boxes:
        m, scores, _ = predictor.predict(box=box, multimask_output=multimask)
        masks.append(m[int(np.argmax(scores))])
    return np.stack(masks)


def run_demo(output_dir: str | Path, overrides: list[str] = ()) -> dict:
    """Run the whole pipeline under `output_dir`; returns the final metrics plus the segmented image's path/IoU."""
    output_dir = Path(output_dir)
    data = output_dir / "demo_data"
    if not (data / "val" / "images").is_dir():
        logger.info("generating the synthetic dataset in %s", data)
        generate_synthetic_dataset(data, num_train=24, num_val=6, size=256, seed=0)
    raw = dict(DEMO_CONFIG, output_dir=str(output_dir), train_img_dir=str(data / "train/images"),
               train_mask_dir=str(data / "train/masks"), val_img_dir=str(data / "val/images"),
               val_mask_dir=str(data / "val/masks"))
    cfg = config_from_dict(apply_overrides(raw, list(overrides)))
    record = train(cfg)

    val_records, _ = load_records(cfg.val_img_dir, cfg.val_mask_dir, None, "skip", "val")
    sample = val_records[0]
    gt = np.stack([ref.load() for ref in sample.masks])
    boxes = np.stack([mask_to_box(torch.from_numpy(m)).numpy() for m in gt])
    pred = segment_with_boxes(cfg.run_dir / "best_model.pth", cfg.model_type, cfg.img_size, sample.image_path, boxes,
                              cfg.multimask_output)
    inter = (pred & gt).reshape(len(gt), -1).sum(1)
    union = (pred | gt).reshape(len(gt), -1).sum(1)
    image_miou = float(np.mean(inter / np.maximum(union, 1)))
    out = write_png(cfg.run_dir / "segmented_val_image.png", overlay_masks(read_rgb(sample.image_path), list(pred), boxes=boxes))
    logger.info("segmented %s with the finetuned model (box prompts): mIoU %.3f -> %s", sample.image_path.name,
                image_miou, out)
    return dict(record, segmented_image=str(out), segmented_miou=image_miou)
