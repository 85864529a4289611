"""Decoder-only finetuning on real photos: val mIoU before and after a fixed number of steps.

Uses ../shared/data/coco128seg (COCO layout: polygons via pycocotools) and the vit_t fixture weights
(../shared/fixtures/official_vit_t/vit_t_fixture.pth), image encoder and prompt encoder frozen with
cached embeddings, box prompts from the ground truth.

  python benchmarks/bench_train_coco128.py [--steps 51] [--epochs 30] [--img-size 256] [--shared ../shared]

Embeddings are kept on disk (--cache-dir), so only the first run pays for the encoder (~4 min at 1024 px).
The defaults are the README figure (fixture weights are random: the decoder first collapses to empty masks,
then learns to localise; about 8 minutes on 2 cores).
"""
from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path

import torch

from fastsam.train.config import config_from_dict
from fastsam.train.trainer import train

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    parser.add_argument("--steps", type=int, default=51, help="optimizer steps per epoch")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is also robust on a busy machine)")
    parser.add_argument("--img-size", type=int, default=256, help="model input side (1024 is 16x dearer per step)")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--max-objects", type=int, default=2, help="objects per training image and step")
    parser.add_argument("--focal", type=float, default=1.0, help="focal loss weight")
    parser.add_argument("--dice", type=float, default=1.0, help="dice loss weight")
    parser.add_argument("--cache-dir", type=Path, default=REPO / "build" / "embedding_cache")
    parser.add_argument("--keep-run", type=Path, default=None, help="write the run folder here (default: a temp dir)")
    args = parser.parse_args()
    data = args.shared / "data" / "coco128seg" / "coco"
    checkpoint = args.shared / "fixtures" / "official_vit_t" / "vit_t_fixture.pth"
    for path in (data, checkpoint):
        if not path.exists():
            raise SystemExit(f"not found: {path} (pass --shared)")
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with tempfile.TemporaryDirectory() as tmp:
        cfg = config_from_dict({
            "output_dir": str(args.keep_run or tmp), "embedding_cache_dir": str(args.cache_dir),
            "max_objects_per_image": args.max_objects, "loss_weights": {"focal": args.focal, "dice": args.dice},
            "model_type": "vit_t", "checkpoint": str(checkpoint),
            "train_img_dir": str(data / "train"), "train_coco": str(data / "train/_annotations.coco.json"),
            "val_img_dir": str(data / "val"), "val_coco": str(data / "val/_annotations.coco.json"),
            "freeze": {"image_encoder": True, "prompt_encoder": True}, "img_size": args.img_size,
            "num_epochs": args.epochs, "max_steps_per_epoch": args.steps, "batch_size": args.batch_size,
            "learning_rate": args.lr, "box_jitter": 0.05, "num_val_overlays": 0, "seed": 0,
        })
        t0 = time.perf_counter()
        train(cfg)
        elapsed = time.perf_counter() - t0
        records = [json.loads(line) for line in (cfg.run_dir / "metrics.jsonl").read_text().splitlines()]
    start, end = records[0], records[-1]
    print(f"coco128seg val ({start['val_objects']} objects), vit_t fixture weights at {args.img_size} px, decoder-only, "
          f"{end['step']} steps of batch {args.batch_size}, lr {args.lr}, loss weights focal {args.focal} "
          f"dice {args.dice}, <= {args.max_objects} objects per image, {elapsed / 60:.1f} min:")
    print(f"val mIoU {start['val_miou']:.4f} -> {end['val_miou']:.4f} (best {end['best_miou']:.4f}); "
          f"Dice {start['val_dice']:.4f} -> {end['val_dice']:.4f}; predicted masks cover "
          f"{100 * start['val_pred_area']:.1f}% -> {100 * end['val_pred_area']:.1f}% of the image "
          f"(objects {100 * end['val_gt_area']:.1f}%)")


if __name__ == "__main__":
    main()
