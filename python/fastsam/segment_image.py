"""One image through either backend (``fastsam.backends``): prompts in, masks with scores and an overlay out.

Shared by ``sam-segment``'s single-image and folder modes; torch-free unless the backend is torch.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .prompts_file import ImagePrompts


@dataclass(frozen=True)
class EverythingSettings:
    """The mask generator's main thresholds (SamAutomaticMaskGenerator's names and defaults)."""

    points_per_side: int = 32
    pred_iou_thresh: float = 0.88
    stability_score_thresh: float = 0.95


@dataclass
class Segmentation:
    """Masks (best first for one prompt) with the fields of their records, and what the overlay shows."""

    masks: list[np.ndarray]
    fields: list[dict[str, Any]]
    shown: list[np.ndarray] = field(default_factory=list)
    title_suffix: str = ""
    labels: list[str] | None = None


def check_prompts_inside(prompts: ImagePrompts, width: int, height: int) -> None:
    """ValueError naming the first point or box outside the image (SAM would answer it with a meaningless mask)."""
    valid = f"outside the {width}x{height} image: x must be in [0, {width}] and y in [0, {height}] (pixels)"
    for x, y, _ in prompts.points:
        if not (0 <= x <= width and 0 <= y <= height):
            raise ValueError(f"point {x:g},{y:g} is {valid}")
    for box in prompts.boxes:
        if box[0] < 0 or box[1] < 0 or box[2] > width or box[3] > height:
            raise ValueError(f"box {','.join(f'{c:g}' for c in box)} is {valid}")


def segment_everything(backend, image: np.ndarray, settings: EverythingSettings,
                       progress: bool = False) -> Segmentation:
    results = backend.generate(image, points_per_side=settings.points_per_side,
                               pred_iou_thresh=settings.pred_iou_thresh,
                               stability_score_thresh=settings.stability_score_thresh, progress=progress)
    # With the filters off the generator (like SAM's) keeps empty masks, whose stability score is 0/0 (NaN):
    # they are no object, so they are not reported.
    results = [r for r in results if np.any(r["segmentation"])]
    masks = [np.asarray(r["segmentation"], dtype=bool) for r in results]
    fields = [{"predicted_iou": float(r["predicted_iou"]), "stability_score": float(r["stability_score"]),
               "point_coords": [[float(v) for v in p] for p in r["point_coords"]]} for r in results]
    return Segmentation(masks, fields, shown=masks, title_suffix=f"{len(masks)} masks (segment everything)")


def segment_prompts(predictor, image: np.ndarray, prompts: ImagePrompts, multimask: bool = True) -> Segmentation:
    """Points alone or with one box: the prompt's candidates, best first. Several boxes: one mask per box.

    ``predictor`` has the SamPredictor interface plus predict_boxes (a backend's ``new_predictor()``); the
    image is embedded here unless the predictor already holds it.
    """
    h, w = image.shape[:2]
    check_prompts_inside(prompts, w, h)
    predictor.set_image(image)
    if len(prompts.boxes) > 1:
        masks, scores, _ = predictor.predict_boxes(np.asarray(prompts.boxes, dtype=np.float32),
                                                   multimask_output=False)
        masks = [np.asarray(m[0], dtype=bool) for m in masks]
        fields = [{"predicted_iou": float(s[0]), "box": list(b)} for s, b in zip(scores, prompts.boxes)]
        return Segmentation(masks, fields, shown=masks, title_suffix=f"{len(masks)} boxes, one mask each",
                            labels=[f"box {i}: predicted IoU {f['predicted_iou']:.3f}" for i, f in enumerate(fields)])
    coords = labels = box = None
    if prompts.points:
        coords = np.array([p[:2] for p in prompts.points], dtype=np.float32)
        labels = np.array([p[2] for p in prompts.points], dtype=np.int64)
    if prompts.boxes:
        box = np.asarray(prompts.boxes[0], dtype=np.float32)
    masks, scores, _ = predictor.predict(point_coords=coords, point_labels=labels, box=box,
                                         multimask_output=multimask)
    order = np.argsort(-np.asarray(scores))
    best = [np.asarray(masks[i], dtype=bool) for i in order]
    fields = [{"predicted_iou": float(scores[i])} for i in order]
    return Segmentation(best, fields, shown=best[:1], title_suffix=f"best of {len(best)} mask(s) for the prompt",
                        labels=[f"predicted IoU {fields[0]['predicted_iou']:.3f}"])


def draw(image: np.ndarray, result: Segmentation, prompts: ImagePrompts, name: str) -> np.ndarray:
    """The overlay figure: shown masks, the prompts, a title with the image name and a legend."""
    from .visualize import overlay_masks

    return overlay_masks(image, result.shown, boxes=list(prompts.boxes), points=[p[:2] for p in prompts.points],
                         point_labels=[p[2] for p in prompts.points], title=f"{name}: {result.title_suffix}",
                         labels=result.labels)
