"""Images for int8 calibration, held-out accuracy checks and the parity gate.

Without ``--calib-dir`` the export generates its own varied synthetic scenes (smooth and
textured backgrounds, overlapping shapes with their own textures, several aspect ratios and
exposures), so quantisation needs no data set. Real photos calibrate better: pass a folder.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
_ASPECTS = ((3, 4), (4, 3), (1, 1), (9, 16), (16, 9), (2, 3))


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Low-frequency colour field plus one of: nothing, stripes, checker, fine grain."""
    coarse = rng.uniform(0, 255, size=(rng.integers(2, 7), rng.integers(2, 7), 3)).astype(np.uint8)
    field = np.asarray(Image.fromarray(coarse).resize((width, height), Image.BICUBIC), dtype=np.float32)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    texture = rng.integers(4)
    if texture == 1:
        angle, period = rng.uniform(0, np.pi), rng.uniform(6, 60)
        field += 40 * np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * 2 * np.pi / period)[..., None]
    elif texture == 2:
        cell = int(rng.integers(8, 64))
        field += np.where(((xx // cell + yy // cell) % 2) == 0, 30.0, -30.0)[..., None]
    elif texture == 3:
        field += rng.normal(0, rng.uniform(5, 30), size=(height, width, 1))
    return field


def _draw_shapes(rng: np.random.Generator, image: Image.Image) -> None:
    draw = ImageDraw.Draw(image)
    width, height = image.size
    for _ in range(int(rng.integers(3, 12))):
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        rx = rng.uniform(0.03, 0.3) * width
        ry = rx * rng.uniform(0.4, 1.6)
        color = tuple(int(c) for c in rng.integers(0, 256, size=3))
        outline = tuple(int(c) for c in rng.integers(0, 256, size=3)) if rng.random() < 0.5 else None
        kind = rng.integers(4)
        box = [cx - rx, cy - ry, cx + rx, cy + ry]
        if kind == 0:
            draw.ellipse(box, fill=color, outline=outline, width=int(rng.integers(1, 6)))
        elif kind == 1:
            draw.rectangle(box, fill=color, outline=outline, width=int(rng.integers(1, 6)))
        elif kind == 2:
            count = int(rng.integers(3, 9))
            angles = np.sort(rng.uniform(0, 2 * np.pi, size=count))
            radii = rng.uniform(0.5, 1.0, size=count)
            draw.polygon([(cx + rx * r * np.cos(a), cy + ry * r * np.sin(a)) for a, r in zip(angles, radii)], fill=color)
        else:
            points = [(rng.uniform(0, width), rng.uniform(0, height)) for _ in range(int(rng.integers(2, 6)))]
            draw.line(points, fill=color, width=int(rng.integers(2, 20)))


def generate_image(seed: int, long_side: int = 1024) -> np.ndarray:
    """One synthetic scene; same seed, same image.

    Arguments:
      seed: random seed.
      long_side: length of the longer side in pixels (>= 64).
    Returns:
      (H, W, 3) uint8 RGB with max(H, W) == long_side.
    """
    if long_side < 64:
        raise ValueError(f"long_side must be >= 64, got {long_side}")
    rng = np.random.default_rng(seed)
    aspect_h, aspect_w = _ASPECTS[int(rng.integers(len(_ASPECTS)))]
    scale = long_side / max(aspect_h, aspect_w)
    height, width = max(32, round(aspect_h * scale)), max(32, round(aspect_w * scale))
    background = np.clip(_background(rng, height, width), 0, 255).astype(np.uint8)
    image = Image.fromarray(background)
    _draw_shapes(rng, image)
    if rng.random() < 0.4:
        image = image.filter(ImageFilter.GaussianBlur(radius=float(rng.uniform(0.5, 3.0))))
    # Exposure/contrast so the encoder sees dark, bright and flat images too.
    gain, offset = rng.uniform(0.5, 1.3), rng.uniform(-40, 40)
    pixels = np.asarray(image, dtype=np.float32) * gain + offset
    return np.clip(pixels, 0, 255).astype(np.uint8)


def generate_images(count: int, seed: int = 0, long_side: int = 1024) -> list[np.ndarray]:
    """``count`` synthetic scenes with seeds ``seed .. seed+count-1`` (see ``generate_image``)."""
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    return [generate_image(seed + i, long_side) for i in range(count)]


def list_image_files(calib_dir: Path) -> list[Path]:
    """Image files (by suffix) directly inside ``calib_dir``, sorted by name.

    Raises:
      FileNotFoundError: ``calib_dir`` does not exist or is not a directory.
      ValueError: it holds no image files.
    """
    calib_dir = Path(calib_dir)
    if not calib_dir.is_dir():
        raise FileNotFoundError(f"calibration directory {calib_dir} not found (or not a directory)")
    files = sorted(p for p in calib_dir.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(
            f"calibration directory {calib_dir} contains no images (looked for {', '.join(IMAGE_SUFFIXES)})"
        )
    return files


def read_image(path: Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB of an image file."""
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def encoder_input(image: np.ndarray, image_size: int = 1024) -> np.ndarray:
    """The encoder.onnx input for an RGB image: resized longest side, float32 (1,3,h,w), 0..255.

    Arguments:
      image: (H, W, 3) uint8 RGB.
      image_size: the model's input size (1024 for SAM).
    """
    from ..utils.transforms import ResizeLongestSide

    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be (H, W, 3) uint8 RGB, got {image.shape} {image.dtype}")
    resized = ResizeLongestSide(image_size).apply_image(image)
    return np.ascontiguousarray(resized.transpose(2, 0, 1)[None].astype(np.float32))
