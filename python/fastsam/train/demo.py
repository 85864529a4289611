"""The embedded default pipeline (``sam-train --demo``): generated data -> finetune -> export -> segment.

Needs no files of the user's and no download. It starts from the project's own base model (vit_t at 256 px,
trained on generated flat-colour shapes by ``python -m fastsam.train.demo_base``, committed under
``models/demo/``) and finetunes it to a new generated domain: objects painted with two-colour stripes and
checks, which the base model has never seen. It prints the validation box-prompt mIoU before and after,
exports the best checkpoint through the parity-gated ``sam-export`` pipeline, and segments a validation
image with the C++ runtime ``fastsam_rt`` (box prompts, point clicks and segment-everything).
``--set checkpoint=mobile_sam.pt --set img_size=1024`` finetunes real MobileSAM weights the same way.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path

from ..data.build import load_records
from ..data.synthetic import generate_synthetic_dataset
from ..demo_model import base_checkpoint_path, demo_run_dir
from .config import TrainConfig, apply_overrides, config_from_dict
from .demo_base import BASE_CONFIG
from .demo_figures import segment_and_draw
from .trainer import train

logger = logging.getLogger("fastsam.train")

# The new domain: patterned objects (the base model saw only flat-colour ones).
# 24 validation scenes (about 80 objects): with 8 (25 objects) the mIoU moved by 0.03 between equal runs.
DEMO_DATA = {"num_train": 48, "num_val": 24, "size": 256, "objects": (2, 5), "radius": (0.1, 0.3), "seed": 7,
             "style": "patterned"}

# The base model's recipe (whole model, 256 px, boxes and some clicks), shorter and at a lower learning rate:
# 1e-4 keeps the first epoch's gain (3e-4 lost it in epoch 2 and won it back only as the rate decayed).
DEMO_CONFIG = dict(BASE_CONFIG, project_name="demo", run_name="finetune", num_epochs=4, max_steps_per_epoch=None,
                   learning_rate=1e-4, point_prompt_prob=0.3, overwrite=False,
                   scheduler={"power": 1.0, "end_lr": 0.0, "warmup_steps": 5})


def demo_config(output_dir: Path, overrides: list[str]) -> TrainConfig:
    data = output_dir / "demo_data"
    raw = dict(DEMO_CONFIG, output_dir=str(output_dir), train_img_dir=str(data / "train/images"),
               train_mask_dir=str(data / "train/masks"), val_img_dir=str(data / "val/images"),
               val_mask_dir=str(data / "val/masks"))
    raw = apply_overrides(raw, list(overrides))
    if "checkpoint" not in raw:  # the base model unless --set checkpoint=... names other weights
        raw["checkpoint"] = str(base_checkpoint_path())
    return config_from_dict(raw)


def export_best(cfg: TrainConfig, export_dir: Path) -> Path:
    """Export the run's best checkpoint with the parity gate (raises ParityError on a mismatch)."""
    from ..export.pipeline import ExportOptions, run_export
    from ..export.settings import build_model

    # Built as sam-export builds it: the checkpoint's stored image size, model type and mask threshold.
    sam, _ = build_model(str(cfg.run_dir / "best_model.pth"))
    lines: list[str] = []
    run_export(sam, ExportOptions(output_dir=export_dir, model_type=cfg.model_type,
                                  extra_manifest={"checkpoint": "best_model.pth"}), log=lines.append)
    for line in lines:
        logger.debug(line)
    return export_dir


def run_demo(output_dir: str | Path, overrides: list[str] = ()) -> dict:
    """Run the whole pipeline under `output_dir`; returns the last epoch's metrics plus the figures' paths,
    the start and best validation mIoU, and the runtime's results on one validation image."""
    t0 = time.perf_counter()
    output_dir = Path(output_dir)
    data = output_dir / "demo_data"
    if not (data / "val" / "images").is_dir():
        logger.info("generating the demo dataset (patterned shapes) in %s", data)
        generate_synthetic_dataset(data, **DEMO_DATA)
    cfg = demo_config(output_dir, list(overrides))
    if cfg.run_dir != demo_run_dir(output_dir):
        logger.info("demo run folder %s (overridden)", cfg.run_dir)
    record = train(cfg)
    train_s = time.perf_counter() - t0

    export_dir = export_best(cfg, cfg.run_dir / "export")
    logger.info("exported the best checkpoint to %s (parity gate passed)", export_dir)
    val_records, _ = load_records(cfg.val_img_dir, cfg.val_mask_dir, None, "skip", "val")
    busiest = max(val_records, key=lambda r: len(r.masks))  # the figure shows the most objects
    figures = segment_and_draw(export_dir, busiest, cfg.run_dir)
    start = _start_miou(cfg.run_dir)
    return dict(record, start_miou=start, train_seconds=train_s, total_seconds=time.perf_counter() - t0,
                export_dir=str(export_dir), **figures)


def _start_miou(run_dir: Path) -> float | None:
    """The before-training val mIoU from metrics.jsonl (the first record)."""
    import json

    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return None
    first = json.loads(path.read_text().splitlines()[0])
    return first.get("val_miou")
