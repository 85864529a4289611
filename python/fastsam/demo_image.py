"""A small generated scene for the quick start, so the demo needs no files from outside."""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw


def make_demo_image(height: int = 480, width: int = 640, seed: int = 0) -> np.ndarray:
    """Draw a textured background with a few overlapping filled shapes.

    Returns:
      (height, width, 3) uint8 RGB image.
    """
    if height < 32 or width < 32:
        raise ValueError(f"demo image must be at least 32x32 pixels, got {width}x{height}")
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = rng.integers(60, 200, size=3).astype(np.float32)
    ramp = (xx / width)[..., None] * rng.uniform(-60, 60, size=3) + (yy / height)[..., None] * rng.uniform(-60, 60, size=3)
    noise = rng.normal(0, 12, size=(height, width, 1))
    background = np.clip(base + ramp + noise, 0, 255).astype(np.uint8)
    img = Image.fromarray(background)
    draw = ImageDraw.Draw(img)
    for _ in range(5):
        cx, cy = rng.uniform(0.15, 0.85) * width, rng.uniform(0.15, 0.85) * height
        r = rng.uniform(0.08, 0.2) * min(height, width)
        color = tuple(int(c) for c in rng.integers(0, 256, size=3))
        kind = rng.integers(3)
        if kind == 0:
            draw.ellipse([cx - r, cy - r * 0.7, cx + r, cy + r * 0.7], fill=color)
        elif kind == 1:
            draw.rectangle([cx - r, cy - r, cx + r * 0.6, cy + r * 0.8], fill=color)
        else:
            angles = np.sort(rng.uniform(0, 2 * np.pi, size=5))
            draw.polygon([(cx + r * np.cos(a), cy + r * np.sin(a)) for a in angles], fill=color)
    return np.asarray(img)
