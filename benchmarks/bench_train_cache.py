"""Decoder-only finetuning speed with and without the image-embedding cache (same data, same model).

Runs sam-train's loop twice on a generated synthetic set (vit_t, image encoder and prompt encoder
frozen): once with cache_embeddings=false, once with it on. Epoch 1 fills the cache, so the figure
compared is the steps/s of the later epochs. It also times the two parts of a step on their own (image
encoder forward per image; mask decoder forward+backward per prompt), which bound the speed-up at
1 + encoder / (prompts per image x decoder): the cache removes only the encoder.

  python benchmarks/bench_train_cache.py [--img-size 1024] [--images 8] [--epochs 3]
"""
from __future__ import annotations

import argparse
import json
import logging
import tempfile
from pathlib import Path

import torch

from fastsam.data.synthetic import generate_synthetic_dataset
from fastsam.train.config import config_from_dict
from fastsam.train.trainer import train


def run(root: Path, out: Path, img_size: int, epochs: int, cache: bool) -> list[dict]:
    cfg = config_from_dict({
        "output_dir": str(out), "run_name": "cached" if cache else "uncached",
        "train_img_dir": str(root / "train/images"), "train_mask_dir": str(root / "train/masks"),
        "val_img_dir": str(root / "val/images"), "val_mask_dir": str(root / "val/masks"),
        "img_size": img_size, "freeze": {"image_encoder": True, "prompt_encoder": True},
        "cache_embeddings": cache, "num_epochs": epochs, "batch_size": 2, "learning_rate": 1e-4,
        "num_val_overlays": 0,
    })
    train(cfg)
    lines = (cfg.run_dir / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if json.loads(line)["epoch"] >= 1]  # 0 = before training


def time_parts(img_size: int, prompts: int, repeats: int = 3) -> tuple[float, float]:
    """(encoder s per image without grad, decoder forward+backward s per prompt), medians."""
    import statistics
    import time

    from fastsam.build_sam import sam_model_registry

    sam = sam_model_registry["vit_t"](image_size=img_size)
    image = torch.rand(1, 3, img_size, img_size) * 255
    side = img_size / 4
    boxes = torch.tensor([[side * (1 + i % 2), side, side * (2 + i % 2), side * 3] for i in range(prompts)])
    enc, dec = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        with torch.no_grad():
            emb = sam.image_encoder(sam.preprocess(image[0])[None])
        t1 = time.perf_counter()
        sparse, dense = sam.prompt_encoder(points=None, boxes=boxes, masks=None)
        logits, iou = sam.mask_decoder(image_embeddings=emb, image_pe=sam.prompt_encoder.get_dense_pe(),
                                       sparse_prompt_embeddings=sparse.detach(), dense_prompt_embeddings=dense.detach(),
                                       multimask_output=False)
        (logits.sigmoid().mean() + iou.mean()).backward()
        t2 = time.perf_counter()
        enc.append(t1 - t0)
        dec.append((t2 - t1) / prompts)
    return statistics.median(enc), statistics.median(dec)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--img-size", type=int, default=1024)
    parser.add_argument("--images", type=int, default=8, help="training images (validation uses 1)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        root = generate_synthetic_dataset(Path(tmp) / "data", num_train=args.images, num_val=1,
                                          size=min(640, args.img_size), seed=0)
        objects = len(list((root / "train/masks").iterdir())) / len(list((root / "train/images").iterdir()))
        uncached = run(root, Path(tmp) / "runs", args.img_size, args.epochs, cache=False)
        cached = run(root, Path(tmp) / "runs", args.img_size, args.epochs, cache=True)
    slow = sum(r["steps_per_s"] for r in uncached[1:]) / (len(uncached) - 1)
    fast = sum(r["steps_per_s"] for r in cached[1:]) / (len(cached) - 1)
    print(f"vit_t img_size {args.img_size}, {args.images} images, batch 2, {args.threads} threads")
    print(f"uncached: {slow:.3f} steps/s (epochs 2..{args.epochs})")
    print(f"cached:   {fast:.3f} steps/s (epochs 2..{args.epochs}; epoch 1 filled the cache at "
          f"{cached[0]['steps_per_s']:.3f} steps/s)")
    print(f"speed-up: {fast / slow:.1f}x")
    enc, dec = time_parts(args.img_size, prompts=3)
    print(f"parts: image encoder {enc:.3f} s per image (no grad); mask decoder forward+backward {dec:.3f} s per prompt")
    for k in (1, 3, 8):
        print(f"  bound on the speed-up with {k} object(s) per image: {1 + enc / (k * dec):.1f}x")
    print(f"  this data has {objects:.2f} objects per image: bound {1 + enc / (objects * dec):.1f}x")


if __name__ == "__main__":
    main()
