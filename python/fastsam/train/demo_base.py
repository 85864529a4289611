"""Train the demo's base checkpoint: vit_t from random weights on generated shapes (``models/demo/``).

No pretrained SAM weights can ship with the project, and a from-scratch run cannot learn to segment within
the few minutes the quick start allows on a CPU. So the project trains its own small base model once, with
this command, and commits it; ``sam-train --demo`` finetunes it to a new generated domain in minutes.

    python -m fastsam.train.demo_base --output models/demo/vit_t_shapes.pth

Everything is seeded (data, init, order), so a rerun on the same software gives the same model up to
floating-point thread scheduling. The stored file holds fp16 weights (about 20 MB) and the run's config;
it loads like any checkpoint (``sam_model_registry["vit_t"](checkpoint=..., image_size=256)``).
"""
from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import torch

from ..data.synthetic import generate_synthetic_dataset
from ..demo_model import BASE_IMAGE_SIZE
from .checkpointing import save_atomic
from .config import config_from_dict
from .graceful_stop import TrainingStopped
from .trainer import train

logger = logging.getLogger("fastsam.train")

# Box prompts on most images, one foreground click on the rest (so points and the mask generator work too).
# Stage 1: 1200 steps from random weights with a polynomial decay from 1e-3 (55 min on the 2-core CPU, shared).
BASE_CONFIG = {
    "project_name": "demo_base",
    "run_name": "vit_t_shapes",
    "model_type": "vit_t",
    "img_size": BASE_IMAGE_SIZE,
    "freeze": {"image_encoder": False, "prompt_encoder": False, "mask_decoder": False},
    "cache_embeddings": False,
    "num_epochs": 3,
    "max_steps_per_epoch": 400,
    "batch_size": 4,
    "max_objects_per_image": 8,
    "learning_rate": 1e-3,
    "weight_decay": 0.01,
    "box_jitter": 0.05,
    "point_prompt_prob": 0.4,
    "scheduler": {"power": 1.0, "end_lr": 0.0, "warmup_steps": 100},
    "loss_weights": {"focal": 0.0, "dice": 1.0, "bce": 1.0, "iou": 1.0},
    "num_val_overlays": 3,
    "seed": 0,
    "overwrite": True,  # a stage with no checkpoint yet replaces what an earlier attempt left
}
# Stage 2: one more pass over the 2,000 scenes per epoch from stage 1's best, a second decay from 4e-4
# (stage 1 was still improving when its learning rate reached zero).
STAGE2 = {"run_name": "vit_t_shapes_stage2", "num_epochs": 2, "max_steps_per_epoch": 500, "learning_rate": 4e-4,
          "scheduler": {"power": 1.0, "end_lr": 0.0, "warmup_steps": 20}, "seed": 1}
# Stages 3 and 4: two more decays (from 3e-4, then 2e-4); each pass still gained on the validation scenes.
STAGE3 = dict(STAGE2, run_name="vit_t_shapes_stage3", learning_rate=3e-4, seed=2)
STAGE4 = dict(STAGE2, run_name="vit_t_shapes_stage4", learning_rate=2e-4, seed=3)
BASE_STAGES = tuple(dict(BASE_CONFIG, **stage) for stage in ({}, STAGE2, STAGE3, STAGE4))
BASE_DATA = {"num_train": 2000, "num_val": 24, "size": 256, "objects": (2, 6), "radius": (0.1, 0.3), "seed": 1}


def compact_checkpoint(run_checkpoint: Path, out: Path) -> Path:
    """Keep only fp16 weights + config + metrics of a trainer checkpoint (no optimizer state)."""
    ckpt = torch.load(run_checkpoint, map_location="cpu", weights_only=False)
    model = {k: (v.half() if v.is_floating_point() else v) for k, v in ckpt["model"].items()}
    small = {"model": model, "config": ckpt["config"], "metrics": ckpt["metrics"], "model_type": ckpt["model_type"],
             "epoch": ckpt["epoch"], "step": ckpt["step"], "best_miou": ckpt["best_miou"]}
    return save_atomic(small, out)


def run_stage(raw: dict, previous_best: Path | None) -> Path:
    """Train one stage (from `previous_best` when given) unless its run folder says it finished; a stage
    stopped part-way (Ctrl-C, crash) continues from its latest checkpoint. Returns the stage's best checkpoint."""
    if previous_best is not None:
        raw = dict(raw, checkpoint=str(previous_best))
    cfg = config_from_dict(raw)
    done = cfg.run_dir / "stage_done.json"
    if done.is_file():
        logger.info("stage %s already finished (%s); reusing its best checkpoint", cfg.run_name, done)
        return cfg.run_dir / "best_model.pth"
    latest = cfg.run_dir / "latest_model.pth"
    record = train(cfg, resume=latest if latest.is_file() else None)
    done.write_text(json.dumps(record))
    return cfg.run_dir / "best_model.pth"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=Path("models/demo/vit_t_shapes.pth"))
    parser.add_argument("--work-dir", type=Path, default=Path("runs/demo_base"),
                        help="data and run folders; a rerun reuses finished stages and resumes an unfinished one")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    t0 = time.perf_counter()
    data = args.work_dir / "data"
    if not (data / "val" / "images").is_dir():
        logger.info("generating %d training scenes in %s", BASE_DATA["num_train"], data)
        generate_synthetic_dataset(data, **BASE_DATA)
    folders = dict(output_dir=str(args.work_dir), train_img_dir=str(data / "train/images"),
                   train_mask_dir=str(data / "train/masks"), val_img_dir=str(data / "val/images"),
                   val_mask_dir=str(data / "val/masks"))
    best = None
    try:
        for stage in BASE_STAGES:
            best = run_stage(dict(stage, **folders), best)
    except TrainingStopped as stopped:
        raise SystemExit(f"stopped after step {stopped.step}; run the same command again to continue") from None
    out = compact_checkpoint(best, args.output)
    small = torch.load(out, map_location="cpu", weights_only=False)
    logger.info("base checkpoint %s (%.1f MB): best val box mIoU %.4f; %.0f s", out, out.stat().st_size / 2**20,
                small["best_miou"], time.perf_counter() - t0)


if __name__ == "__main__":
    main()
