"""vit_b training speed on this CPU: seconds per optimizer step at each image size, batch 1, random weights
(the model is built at that size directly), the whole model trainable, through the sam-train loop.

Each size runs 2 epochs of --steps steps on a generated COCO export (data/synthetic_coco.py); epoch 1 is the
warm-up and the figure is epoch 2's training time per step (validation excluded, as the trainer measures it).

    OMP_NUM_THREADS=1 python benchmarks/bench_vit_b_train.py [--sizes 256,512] [--steps 2] [--threads 1]
"""
from __future__ import annotations

import argparse
import json
import logging
import tempfile
from pathlib import Path

import torch

from fastsam.data.synthetic_coco import write_coco_export
from fastsam.train.config import config_from_dict
from fastsam.train.trainer import train


def seconds_per_step(size: int, steps: int, work: Path) -> float:
    root = write_coco_export(work / f"data{size}", num_train=steps, num_val=1, size=size, seed=0)
    cfg = config_from_dict({"data_root": str(root), "model_type": "vit_b", "img_size": size, "batch_size": 1,
                            "num_epochs": 2, "num_val_overlays": 0, "save_top_k": 0, "output_dir": str(work),
                            "run_name": f"vit_b_{size}", "max_objects_per_image": 3})
    train(cfg)
    records = [json.loads(line) for line in (cfg.run_dir / "metrics.jsonl").read_text().splitlines()]
    return 1.0 / records[-1]["steps_per_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="256,512", help="comma-separated image sizes")
    parser.add_argument("--steps", type=int, default=2, help="optimizer steps per epoch (epoch 2 is measured)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        for size in (int(s) for s in args.sizes.split(",")):
            sec = seconds_per_step(size, args.steps, Path(tmp))
            print(f"vit_b train step at {size} px, batch 1, {args.threads} thread(s): {sec:.2f} s/step")


if __name__ == "__main__":
    main()
