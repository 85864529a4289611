"""The demo's last step: segment one validation image with the exported model in ``fastsam_rt`` and draw it.

Writes ``segmented_val_image.png`` (ground truth | one box per object | one click per object) and
``everything_val_image.png`` (the image | segment-everything), each panel titled with what it shows and
how well it fits the ground truth.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from ..data.prompts import mask_to_box
from ..data.records import SampleRecord
from ..image_io import read_rgb, write_png
from ..utils.mask_metrics import mask_iou
from ..visualize import overlay_masks, side_by_side, upscale

logger = logging.getLogger("fastsam.train")

# Segment-everything settings for the small demo images (a 16 x 16 grid is plenty at 256 px).
# Thresholds below SAM's 0.88 / 0.95: the small demo model's IoU head predicts about 0.5 for its good masks.
EVERYTHING = {"points_per_side": 16, "pred_iou_thresh": 0.5, "stability_score_thresh": 0.7}
ZOOM = 2  # the demo images are small: draw them twice as large


def panel(image: np.ndarray, masks: list[np.ndarray], title: str, boxes=(), points=()) -> np.ndarray:
    """One titled overlay, enlarged by ZOOM (prompts scaled with it)."""
    return overlay_masks(upscale(image, ZOOM), [upscale(m, ZOOM) for m in masks], title=title,
                         boxes=[np.asarray(b) * ZOOM for b in boxes], points=[np.asarray(p) * ZOOM for p in points])


def tight_box(mask: np.ndarray) -> np.ndarray:
    """The box prompt the trainer derives from a ground-truth mask (without jitter)."""
    return mask_to_box(torch.from_numpy(np.asarray(mask, dtype=bool))).numpy()


def inner_point(mask: np.ndarray) -> np.ndarray:
    """The object pixel farthest from its border: where a person would click."""
    from scipy.ndimage import distance_transform_edt

    depth = distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
    y, x = np.unravel_index(int(np.argmax(depth)), mask.shape)
    return np.array([x, y], dtype=np.float32)


def best_match_ious(gt: list[np.ndarray], found: list[np.ndarray]) -> list[float]:
    """For each ground-truth mask, the IoU of the generated mask that fits it best (0 if none)."""
    return [max((mask_iou(g, f) for f in found), default=0.0) for g in gt]


def segment_and_draw(model_dir: Path, record: SampleRecord, out_dir: Path) -> dict:
    """Prompt the exported model with each object's box and an inner click, run segment-everything, draw both.

    Returns:
      {"segmented_image", "everything_image": paths; "box_miou", "point_miou": mean IoU over the objects;
       "everything_masks": count; "everything_recall": share of objects matched at IoU >= 0.5}, or {} when
      the runtime module fastsam_rt is not installed.
    """
    try:
        import fastsam_rt
    except ImportError:
        logger.warning("fastsam_rt is not installed (pip install . builds it when ONNX Runtime headers are found: "
                       "see README, Install): skipping the runtime segmentation of the demo")
        return {}
    image = read_rgb(record.image_path)
    gt = [ref.load() for ref in record.masks]
    predictor = fastsam_rt.Predictor(str(model_dir))
    predictor.set_image(image)
    boxes = np.stack([tight_box(m) for m in gt])
    box_masks = [predictor.predict(box=b, multimask_output=False)[0][0] for b in boxes]
    points = np.stack([inner_point(m) for m in gt])
    point_masks = []
    for p in points:
        masks, scores, _ = predictor.predict(point_coords=p[None], point_labels=np.ones(1), multimask_output=True)
        point_masks.append(masks[int(np.argmax(scores))])
    everything = fastsam_rt.AutomaticMaskGenerator(str(model_dir), **EVERYTHING).generate(image)
    found = [m["segmentation"] for m in everything]

    box_miou = float(np.mean([mask_iou(p, g) for p, g in zip(box_masks, gt)]))
    point_miou = float(np.mean([mask_iou(p, g) for p, g in zip(point_masks, gt)]))
    matched = best_match_ious(gt, found)
    recall = float(np.mean([iou >= 0.5 for iou in matched]))
    segmented = write_png(out_dir / "segmented_val_image.png", side_by_side([
        panel(image, gt, f"ground truth: {len(gt)} objects"),
        panel(image, box_masks, f"box prompts: mIoU {box_miou:.2f}", boxes=boxes),
        panel(image, point_masks, f"one click each: mIoU {point_miou:.2f}", points=points),
    ], legend="fastsam_rt on the exported demo model. Green: the prompts; one colour per object mask."))
    grid = EVERYTHING["points_per_side"]
    everything_png = write_png(out_dir / "everything_val_image.png", side_by_side([
        panel(image, [], "validation image"),
        panel(image, found, f"segment everything: {len(found)} masks"),
    ], legend=f"fastsam_rt AutomaticMaskGenerator, {grid}x{grid} point grid: {recall:.0%} of the {len(gt)} "
              "objects found (IoU >= 0.5); one colour per mask."))
    logger.info("fastsam_rt on %s: box prompts mIoU %.3f, clicks mIoU %.3f, segment-everything %d masks "
                "(%.0f%% of %d objects at IoU >= 0.5)", record.image_path.name, box_miou, point_miou, len(found),
                100 * recall, len(gt))
    return {"segmented_image": str(segmented), "everything_image": str(everything_png), "box_miou": box_miou,
            "point_miou": point_miou, "everything_masks": len(found), "everything_recall": recall}
