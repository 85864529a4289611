"""Overlay drawing for masks, boxes and points (used by the CLI and the trainer's previews)."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw


def mask_colors(count: int, seed: int = 0) -> np.ndarray:
    """`count` distinct, bright RGB colours as a (count, 3) uint8 array (deterministic for a seed)."""
    rng = np.random.default_rng(seed)
    hues = (np.arange(count) * 0.618033988749895 + rng.random()) % 1.0
    # HSV -> RGB with full value and 0.75 saturation, vectorised.
    h6 = hues * 6.0
    sector = np.floor(h6).astype(int) % 6
    frac = h6 - np.floor(h6)
    s, v = 0.75, 1.0
    p, q, t = v * (1 - s), v * (1 - s * frac), v * (1 - s * (1 - frac))
    table = np.stack(
        [
            np.stack([np.full_like(t, v), t, np.full_like(t, p)], 1),
            np.stack([q, np.full_like(t, v), np.full_like(t, p)], 1),
            np.stack([np.full_like(t, p), np.full_like(t, v), t], 1),
            np.stack([np.full_like(t, p), q, np.full_like(t, v)], 1),
            np.stack([t, np.full_like(t, p), np.full_like(t, v)], 1),
            np.stack([np.full_like(t, v), np.full_like(t, p), q], 1),
        ],
        0,
    )
    rgb = table[sector, np.arange(count)]
    return (rgb * 255).round().astype(np.uint8)


def overlay_masks(
    image: np.ndarray,
    masks: Sequence[np.ndarray],
    boxes: Sequence[Sequence[float]] = (),
    points: Sequence[Sequence[float]] = (),
    point_labels: Sequence[int] = (),
    alpha: float = 0.5,
) -> np.ndarray:
    """Blend masks onto an image and draw prompts.

    Arguments:
      image: (H, W, 3) uint8 RGB.
      masks: boolean (H, W) masks; larger masks are drawn first so small ones stay visible.
      boxes: XYXY boxes in image pixels, drawn as green rectangles.
      points: (x, y) points in image pixels; label 1 green, 0 red.
      alpha: mask opacity.

    Returns:
      (H, W, 3) uint8 RGB overlay.
    """
    out = image.astype(np.float32).copy()
    colors = mask_colors(len(masks)).astype(np.float32)
    order = sorted(range(len(masks)), key=lambda i: -int(np.count_nonzero(masks[i])))
    for i in order:
        m = np.asarray(masks[i], dtype=bool)
        out[m] = (1 - alpha) * out[m] + alpha * colors[i]
    pil = Image.fromarray(out.round().clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(pil)
    width = max(2, round(max(image.shape[:2]) / 300))
    for box in boxes:
        draw.rectangle([float(c) for c in box], outline=(0, 255, 0), width=width)
    labels = list(point_labels) or [1] * len(points)
    radius = width * 3
    for (x, y), label in zip(points, labels):
        color = (0, 220, 0) if int(label) == 1 else (230, 0, 0)
        draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=color, outline=(255, 255, 255))
    return np.asarray(pil)
