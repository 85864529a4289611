"""A small synthetic instance-segmentation set: textured backgrounds and overlapping coloured shapes.

Two styles: "flat" objects (one colour with noise) and "patterned" ones (two-colour stripes or checks, a
different domain: the demo finetunes a model trained on flat shapes to it).

Written in the folder layout the trainer reads: ``<split>/images/<stem>.png`` and
``<split>/masks/<stem>_<k>.png`` (8-bit, 255 = object). Later shapes occlude earlier ones, and each
mask holds only the visible part, so overlaps give genuinely non-convex objects.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ..image_io import write_png


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = rng.uniform(40, 215, size=3)
    ramp = (xx / width)[..., None] * rng.uniform(-50, 50, size=3) + (yy / height)[..., None] * rng.uniform(-50, 50, size=3)
    freq = rng.uniform(0.05, 0.25)
    stripes = 18 * np.sin(freq * (xx * np.cos(rng.uniform(0, np.pi)) + yy * np.sin(rng.uniform(0, np.pi))))[..., None]
    noise = rng.normal(0, 10, size=(height, width, 1))
    return np.clip(base + ramp + stripes + noise, 0, 255).astype(np.uint8)


def _shape_mask(rng: np.random.Generator, height: int, width: int, radius: tuple[float, float]) -> np.ndarray:
    """One random ellipse, rectangle, polygon or ring as an (H, W) bool mask (radius: fraction of the short side)."""
    cx, cy = rng.uniform(0.15, 0.85) * width, rng.uniform(0.15, 0.85) * height
    r = rng.uniform(*radius) * min(height, width)
    canvas = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    kind = int(rng.integers(4))
    if kind == 0:
        draw.ellipse([cx - r, cy - r * rng.uniform(0.5, 1.0), cx + r, cy + r * rng.uniform(0.5, 1.0)], fill=255)
    elif kind == 1:
        draw.rectangle([cx - r, cy - r * rng.uniform(0.4, 1.0), cx + r * rng.uniform(0.4, 1.0), cy + r], fill=255)
    elif kind == 2:
        angles = np.sort(rng.uniform(0, 2 * np.pi, size=int(rng.integers(3, 8))))
        radii = r * rng.uniform(0.6, 1.0, size=angles.size)
        draw.polygon([(cx + q * np.cos(a), cy + q * np.sin(a)) for a, q in zip(angles, radii)], fill=255)
    else:
        # A ring: the hole makes the object non-convex.
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
        draw.ellipse([cx - r * 0.45, cy - r * 0.45, cx + r * 0.45, cy + r * 0.45], fill=0)
    return np.asarray(canvas) > 0


STYLES = ("flat", "patterned")


def _pattern_texture(rng: np.random.Generator, height: int, width: int, color: np.ndarray) -> np.ndarray:
    """Stripes at a random angle or a checkerboard, alternating `color` with a contrasting second colour."""
    other = (color + rng.uniform(70, 185, size=3)) % 256
    period = rng.uniform(5, 12)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    if rng.random() < 0.5:
        angle = rng.uniform(0, np.pi)
        phase = np.floor((xx * np.cos(angle) + yy * np.sin(angle)) / period)
    else:
        phase = np.floor(xx / period) + np.floor(yy / period)
    texture = np.where((phase % 2 == 0)[..., None], color, other)
    return np.clip(texture + rng.normal(0, 8, size=(height, width, 1)), 0, 255).astype(np.uint8)


def make_scene(rng: np.random.Generator, height: int, width: int, num_objects: int,
               radius: tuple[float, float] = (0.08, 0.22), style: str = "flat") -> tuple[np.ndarray, list[np.ndarray]]:
    """Draw one scene (`style` "flat" or "patterned", see the module docstring).

    Returns:
      (image (H, W, 3) uint8 RGB, list of visible-part masks (H, W) bool, one per object, none tiny).
    """
    image = _background(rng, height, width)
    label = np.zeros((height, width), dtype=np.int32)  # per-pixel object id, last drawn wins
    for obj in range(1, num_objects + 1):
        region = _shape_mask(rng, height, width, radius)
        color = rng.integers(0, 256, size=3).astype(np.float32)
        if style == "patterned":
            texture = _pattern_texture(rng, height, width, color)
        else:
            # Noise inside the shape so objects are not flat colour blobs.
            texture = np.clip(color + rng.normal(0, 8, size=(height, width, 1)), 0, 255).astype(np.uint8)
        image[region] = texture[region]
        label[region] = obj
    masks = [label == obj for obj in range(1, num_objects + 1)]
    min_pixels = max(16, height * width // 2000)
    return image, [m for m in masks if m.sum() >= min_pixels]


def generate_synthetic_dataset(out_dir: str | Path, num_train: int = 24, num_val: int = 8, size: int = 256,
                               objects: tuple[int, int] = (2, 5), seed: int = 0,
                               radius: tuple[float, float] = (0.08, 0.22), style: str = "flat") -> Path:
    """Write the synthetic set under `out_dir` (train/ and val/, each with images/ and masks/).

    Arguments:
      size: longer image side; the shorter one is drawn between 0.6 and 1.0 of it.
      objects: inclusive range of shapes drawn per image (fully hidden ones are dropped).
      radius: range of shape radii as fractions of the shorter image side.
      style: "flat" or "patterned" objects.

    Returns:
      `out_dir` as a Path.
    """
    if num_train < 1 or num_val < 1:
        raise ValueError(f"num_train and num_val must be >= 1, got {num_train} and {num_val}")
    if size < 32:
        raise ValueError(f"size must be >= 32 pixels, got {size}")
    if not 0 < radius[0] <= radius[1] <= 0.5:
        raise ValueError(f"radius must be a range (lo, hi) with 0 < lo <= hi <= 0.5, got {radius}")
    if not 1 <= objects[0] <= objects[1]:
        raise ValueError(f"objects must be a range (lo, hi) with 1 <= lo <= hi, got {objects}")
    if style not in STYLES:
        raise ValueError(f"style must be one of {STYLES}, got {style!r}")
    out_dir = Path(out_dir)
    rng = np.random.default_rng(seed)
    for split, count in (("train", num_train), ("val", num_val)):
        for i in range(count):
            short = int(size * rng.uniform(0.6, 1.0))
            height, width = (size, short) if rng.random() < 0.5 else (short, size)
            image, masks = make_scene(rng, height, width, int(rng.integers(objects[0], objects[1] + 1)), radius, style)
            stem = f"{split}_{i:04d}"
            write_png(out_dir / split / "images" / f"{stem}.png", image)
            for k, mask in enumerate(masks):
                write_png(out_dir / split / "masks" / f"{stem}_{k}.png", mask.astype(np.uint8) * 255)
    return out_dir
