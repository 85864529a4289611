"""What sam-app does, without Gradio: clicks to prompts, prompts to an overlay and scores, segment everything,
and the files offered for download. Errors are ValueError/RuntimeError with one-line messages for the UI."""
from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..coco_results import mask_annotation
from ..segment_image import EverythingSettings
from .predictor_cache import PredictorCache

CLICK_MODES = ("foreground point", "background point", "box (two corners)")


@dataclass(frozen=True)
class Clicks:
    """The prompt built so far: points with labels and a box; ``corner`` is a box's first corner awaiting its second."""

    points: tuple[tuple[float, float], ...] = ()
    labels: tuple[int, ...] = ()
    box: tuple[float, float, float, float] | None = None
    corner: tuple[float, float] | None = None

    def add(self, x: float, y: float, mode: str) -> "Clicks":
        if mode not in CLICK_MODES:
            raise ValueError(f"click mode must be one of {CLICK_MODES}, got {mode!r}")
        if mode == CLICK_MODES[2]:
            if self.corner is None:
                return replace(self, corner=(x, y))
            (x0, y0) = self.corner
            return replace(self, box=(min(x0, x), min(y0, y), max(x0, x), max(y0, y)), corner=None)
        return replace(self, points=self.points + ((x, y),), labels=self.labels + (1 if mode == CLICK_MODES[0] else 0,))

    @property
    def ready(self) -> bool:
        """Whether there is a prompt to decode (a lone first box corner is not one)."""
        return bool(self.points) or self.box is not None


@dataclass
class Result:
    """Masks with their record fields, the overlay to show and a one-line summary."""

    masks: list[np.ndarray]
    fields: list[dict[str, Any]]
    overlay: np.ndarray
    summary: str
    extra: dict[str, Any] = field(default_factory=dict)


class AppSession:
    """One loaded model (a fastsam.backends backend) shared by every browser tab, with the embedding cache."""

    def __init__(self, backend, *, cache_images: int = 4, out_dir: str | Path | None = None) -> None:
        self.backend = backend
        self.cache = PredictorCache(backend.new_predictor, cache_images)
        self.out_dir = Path(out_dir or tempfile.mkdtemp(prefix="sam-app-"))

    @property
    def model_text(self) -> str:
        b = self.backend
        return f"Weights: {b.description} — {b.name} backend, {b.model_type} at {b.image_size} px"

    def embed(self, image: np.ndarray) -> str:
        """Encode the image now (cached), so that the first click only decodes. Returns a status line."""
        _check_image(image)
        with self.cache.lock:
            if image in self.cache:
                return "image already embedded (cached)"
            start = time.perf_counter()
            self.cache.get(image)
        return f"image {image.shape[1]}x{image.shape[0]} embedded in {time.perf_counter() - start:.2f} s"

    def predict(self, image: np.ndarray, clicks: Clicks) -> Result:
        """The best of the prompt's three candidate masks, drawn with the prompt; scores of all candidates."""
        from ..visualize import overlay_masks

        _check_image(image)
        marks = _marks(clicks)
        if not clicks.ready:
            return Result([], [], overlay_masks(image, [], **marks), "click the box's opposite corner")
        coords = np.asarray(clicks.points, dtype=np.float32) if clicks.points else None
        labels = np.asarray(clicks.labels, dtype=np.int64) if clicks.points else None
        box = None if clicks.box is None else np.asarray(clicks.box, dtype=np.float32)
        start = time.perf_counter()
        with self.cache.lock:
            predictor = self.cache.get(image)
            masks, scores, _ = predictor.predict(point_coords=coords, point_labels=labels, box=box,
                                                 multimask_output=True)
        elapsed = time.perf_counter() - start
        order = np.argsort(-np.asarray(scores))
        best = np.asarray(masks[order[0]], dtype=bool)
        overlay = overlay_masks(image, [best], **marks)
        candidates = ", ".join(f"{float(scores[i]):.3f}" for i in order)
        summary = (f"best mask: predicted IoU {float(scores[order[0]]):.3f}, {int(best.sum())} px "
                   f"(candidates {candidates}); decoded in {elapsed * 1000:.0f} ms")
        return Result([best], [{"predicted_iou": float(scores[order[0]])}], overlay, summary)

    def everything(self, image: np.ndarray, settings: EverythingSettings,
                   progress: Callable[[float, str], None] | None = None) -> Result:
        from ..segment_image import segment_everything
        from ..visualize import overlay_masks

        _check_image(image)
        if progress:
            progress(0.05, f"segmenting everything: {settings.points_per_side ** 2} point prompts")
        start = time.perf_counter()
        with self.cache.lock:
            result = segment_everything(self.backend, image, settings, progress=False)
        elapsed = time.perf_counter() - start
        overlay = overlay_masks(image, result.masks)
        summary = f"{len(result.masks)} masks in {elapsed:.2f} s"
        if not result.masks:
            summary += " — lower the predicted IoU or stability thresholds to keep more"
        return Result(result.masks, result.fields, overlay, summary)

    def downloads(self, image: np.ndarray, result: Result | None, fmt: str, stem: str) -> tuple[Path, Path]:
        """(masks PNG, COCO JSON) of a result. The PNG of one mask is 0/255; of several, a label image with
        mask i as value i + 1 (0 = background, 16-bit past 255 masks, later masks on top). The JSON holds one
        annotation per mask in ``fmt`` (rle or polygons)."""
        from PIL import Image

        _check_image(image)
        if result is None or not result.masks:
            raise ValueError("no masks to download yet: click on the image or run segment everything first")
        h, w = image.shape[:2]
        label = np.zeros((h, w), dtype=np.uint16 if len(result.masks) > 255 else np.uint8)
        for i, mask in enumerate(result.masks):
            label[mask] = i + 1
        folder = Path(tempfile.mkdtemp(prefix=f"{stem}-", dir=self.out_dir))
        png = folder / f"{stem}_masks.png"
        Image.fromarray(label if len(result.masks) > 1 else (label * 255).astype(np.uint8)).save(png)
        records = [{"id": i + 1, "image_id": 1, "category_id": 1, **mask_annotation(m, fmt, **f)}
                   for i, (m, f) in enumerate(zip(result.masks, result.fields))]
        doc = {"info": {"model": self.backend.description, "backend": self.backend.name, "format": fmt},
               "images": [{"id": 1, "file_name": stem, "height": h, "width": w}],
               "categories": [{"id": 1, "name": "object"}], "annotations": records}
        js = folder / f"{stem}_masks.json"
        js.write_text(json.dumps(doc))
        return png, js


def _marks(clicks: Clicks) -> dict[str, Any]:
    """overlay_masks keyword arguments that draw the clicks (a pending corner as a zero-size box)."""
    boxes = [clicks.box] if clicks.box is not None else []
    if clicks.corner is not None:
        boxes.append((*clicks.corner, *clicks.corner))
    return {"boxes": boxes, "points": list(clicks.points), "point_labels": list(clicks.labels)}


def _check_image(image: np.ndarray | None) -> None:
    if image is None:
        raise ValueError("no image yet: upload one or press 'Use the sample image'")
    if not (isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3):
        raise ValueError(f"expected an HxWx3 uint8 RGB image, got {getattr(image, 'shape', type(image))}")
