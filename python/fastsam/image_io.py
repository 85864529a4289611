"""Reading and writing images with clear errors (PIL only; no OpenCV dependency)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError


def read_rgb(path: str | Path) -> np.ndarray:
    """Read an image file as RGB.

    Arguments:
      path: an image file PIL can decode (PNG, JPEG, BMP, TIFF, ...).

    Returns:
      (H, W, 3) uint8 array, RGB.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image file not found: {path}")
    try:
        with Image.open(path) as img:
            rgb = np.asarray(img.convert("RGB"))
    except (UnidentifiedImageError, OSError) as err:
        raise ValueError(f"could not read image {path}: {err}") from err
    if rgb.size == 0:
        raise ValueError(f"image {path} is empty (size {rgb.shape[1]}x{rgb.shape[0]})")
    return rgb


def write_png(path: str | Path, image: np.ndarray) -> Path:
    """Write an (H, W, 3) or (H, W) uint8 array as PNG, atomically (temp file then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    Image.fromarray(image).save(tmp, format="PNG")
    tmp.replace(path)
    return path
