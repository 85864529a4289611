"""A generated scene for the quick start, so the demo needs no files from outside."""
from __future__ import annotations

import numpy as np

from .data.synthetic import make_scene


def make_demo_image(height: int = 480, width: int = 640, seed: int = 0) -> np.ndarray:
    """A textured background with five overlapping patterned shapes (the domain `sam-train --demo` trains on).

    Returns:
      (height, width, 3) uint8 RGB image.
    """
    if height < 32 or width < 32:
        raise ValueError(f"demo image must be at least 32x32 pixels, got {width}x{height}")
    image, _ = make_scene(np.random.default_rng(seed), height, width, 5, (0.1, 0.25), "patterned")
    return image
