"""Overlay drawing for masks (filled and outlined), boxes, points, titles and legends (used by sam-segment, the
trainer's validation overlays and the demo)."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont


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


def _erode(mask: np.ndarray) -> np.ndarray:
    """One step of 4-neighbour erosion (pixels outside the image count as background)."""
    p = np.pad(mask, 1)
    return p[1:-1, 1:-1] & p[:-2, 1:-1] & p[2:, 1:-1] & p[1:-1, :-2] & p[1:-1, 2:]


def mask_outline(mask: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """The mask's inner border `width` px wide, and the 1 px ring just outside it (both (H, W) bool)."""
    inner = mask
    for _ in range(width):
        inner = _erode(inner)
    ring = ~_erode(~mask) & ~mask
    return mask & ~inner, ring


def _font(size: int) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _text_strip(lines: Sequence[tuple[str, tuple[int, int, int] | None]], width: int, size: int) -> Image.Image:
    """A white strip holding one line per entry; an entry with a colour gets a swatch of it before its text."""
    font = _font(size)
    pad, line_h = max(2, size // 4), size + max(2, size // 4)
    strip = Image.new("RGB", (width, pad + line_h * len(lines)), (255, 255, 255))
    draw = ImageDraw.Draw(strip)
    for k, (text, color) in enumerate(lines):
        y, x = pad + k * line_h, pad
        if color is not None:
            draw.rectangle([x, y + 1, x + size - 2, y + size - 1], fill=color, outline=(0, 0, 0))
            x += size + pad
        draw.text((x, y), text, fill=(0, 0, 0), font=font)
    return strip


def overlay_masks(
    image: np.ndarray,
    masks: Sequence[np.ndarray],
    boxes: Sequence[Sequence[float]] = (),
    points: Sequence[Sequence[float]] = (),
    point_labels: Sequence[int] = (),
    alpha: float = 0.5,
    *,
    title: str | None = None,
    labels: Sequence[str] | None = None,
    outline: bool = True,
    colors: np.ndarray | None = None,
    point_radius: int | None = None,
) -> np.ndarray:
    """Blend masks onto an image, outline them and draw prompts; optionally add a title and a legend.

    Arguments:
      image: (H, W, 3) uint8 RGB.
      masks: boolean (H, W) masks; larger masks are drawn first so small ones stay visible.
      boxes: XYXY boxes in image pixels, drawn as green rectangles.
      points: (x, y) points in image pixels; label 1 green, 0 red.
      alpha: mask opacity.
      title: a line of text above the image.
      labels: one legend text per mask (e.g. "mask 0: IoU 0.93"), listed below the image next to its colour.
      outline: draw each mask's border in its colour at full strength with a white ring outside, so a mask on
        a solid shape of similar colour stays visible.
      colors: (len(masks), 3) uint8 colours; default `mask_colors(len(masks))`.
      point_radius: dot radius in pixels; default three line widths (a dense grid wants smaller dots).

    Returns:
      (H', W, 3) uint8 RGB: H' = H without title and labels, taller by the title and legend strips with them.
    """
    out = image.astype(np.float32).copy()
    colors = mask_colors(len(masks)) if colors is None else np.asarray(colors, dtype=np.uint8)
    order = sorted(range(len(masks)), key=lambda i: -int(np.count_nonzero(masks[i])))
    line = max(2, round(max(image.shape[:2]) / 300))
    for i in order:
        m = np.asarray(masks[i], dtype=bool)
        out[m] = (1 - alpha) * out[m] + alpha * colors[i].astype(np.float32)
        if outline:
            border, ring = mask_outline(m, line)
            out[ring] = 255.0
            out[border] = colors[i] * 0.75  # darker than the fill, so the edge reads against it
    pil = Image.fromarray(out.round().clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(pil)
    for box in boxes:
        draw.rectangle([float(c) for c in box], outline=(0, 255, 0), width=line)
    point_kinds = list(point_labels) or [1] * len(points)
    radius = line * 3 if point_radius is None else point_radius
    for (x, y), label in zip(points, point_kinds):
        color = (0, 220, 0) if int(label) == 1 else (230, 0, 0)
        draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=color, outline=(255, 255, 255))
    parts = [np.asarray(pil)]
    text_size = max(10, min(24, image.shape[1] // 24))
    if title:
        parts.insert(0, np.asarray(_text_strip([(title, None)], image.shape[1], text_size)))
    if labels:
        entries = [(text, tuple(int(c) for c in colors[i])) for i, text in enumerate(labels)]
        parts.append(np.asarray(_text_strip(entries, image.shape[1], text_size)))
    return np.concatenate(parts, axis=0)


def overlay_masks_on_image(image: np.ndarray, masks: Sequence[np.ndarray], points: Sequence[Sequence[float]] = (),
                           *, title: str | None = None, labels: Sequence[str] | None = None) -> np.ndarray:
    """Segment-everything picture: each mask in its own colour, and the prompt grid as small dots.

    Arguments:
      image: (H, W, 3) uint8 RGB; masks: boolean (H, W); points: (x, y) grid points in image pixels.
    Returns:
      (H', W, 3) uint8 RGB as `overlay_masks`.
    """
    dot = max(1, round(max(image.shape[:2]) / 300))
    return overlay_masks(image, masks, points=points, title=title, labels=labels, point_radius=dot)


def side_by_side(panels: Sequence[np.ndarray], legend: str | None = None, gap: int = 8) -> np.ndarray:
    """Figures (e.g. titled overlays) left to right on white, bottoms padded to one height, with an optional
    legend line under them.

    Returns:
      (H, W, 3) uint8 RGB.
    """
    if not panels:
        raise ValueError("side_by_side needs at least one panel")
    height = max(p.shape[0] for p in panels)
    white = lambda h, w: np.full((h, w, 3), 255, dtype=np.uint8)  # noqa: E731
    row = [white(height, gap)]
    for p in panels:
        row += [np.concatenate([p, white(height - p.shape[0], p.shape[1])]), white(height, gap)]
    out = np.concatenate(row, axis=1)
    if legend:
        out = np.concatenate([out, np.asarray(_text_strip([(legend, None)], out.shape[1], 16))])
    return out


def upscale(image: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour enlargement (small images, so titles stay legible and mask edges stay sharp)."""
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)
