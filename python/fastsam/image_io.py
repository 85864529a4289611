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
            rgb = _to_rgb8(img, path)
    except Image.DecompressionBombError as err:
        raise ValueError(f"image {path} is too large to read safely ({err}); downscale it first") from err
    except (UnidentifiedImageError, OSError) as err:
        raise ValueError(f"could not read image {path}: {err}") from err
    if rgb.size == 0:
        raise ValueError(f"image {path} is empty (size {rgb.shape[1]}x{rgb.shape[0]})")
    return rgb


def _to_rgb8(img: Image.Image, path: Path) -> np.ndarray:
    """8-bit RGB of any PIL image. 16-bit grey keeps its top 8 bits, as OpenCV's imread does (PIL's own
    convert("RGB") would clip every value above 255 to white); float and 32-bit images are refused."""
    if img.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        grey = np.asarray(img).astype(np.int64)
        if grey.size and (grey.min() < 0 or grey.max() > 65535):
            raise ValueError(f"image {path} is 32-bit ({img.mode}) with values outside 0..65535; save it as 8- or "
                             "16-bit")
        return np.repeat((grey >> 8).astype(np.uint8)[..., None], 3, axis=2)
    if img.mode == "F":
        raise ValueError(f"image {path} is a floating-point image (mode F); save it as 8- or 16-bit")
    return np.array(img.convert("RGB"))  # writable: torch.from_numpy warns on read-only arrays


def write_png(path: str | Path, image: np.ndarray) -> Path:
    """Write an (H, W, 3) or (H, W) uint8 array as PNG, atomically (temp file then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    Image.fromarray(image).save(tmp, format="PNG")
    tmp.replace(path)
    return path
