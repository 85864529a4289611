"""Resize-longest-side geometry shared by images, masks, boxes and points.

The model sees the image resized so its longer side is `long_side` (aspect kept); the model's own
`preprocess` pads it to a square. Masks follow the same resize and are padded at the bottom/right,
which is where `preprocess` pads the image, so mask pixel (x, y) stays aligned with image pixel (x, y).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def preprocess_shape(height: int, width: int, long_side: int) -> tuple[int, int]:
    """(new_height, new_width) with the longer side equal to `long_side` (same rounding as segment-anything)."""
    if height < 1 or width < 1:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    scale = long_side / max(height, width)
    return int(height * scale + 0.5), int(width * scale + 0.5)


def resize_image(image: torch.Tensor, long_side: int) -> torch.Tensor:
    """Resize a (3, H, W) float image (0-255 RGB) so its longer side is `long_side`.

    Returns:
      (3, h, w) float32, values 0-255 (bilinear with antialias, like PIL's resize used by the predictor).
    """
    h, w = preprocess_shape(image.shape[-2], image.shape[-1], long_side)
    out = F.interpolate(image[None].float(), size=(h, w), mode="bilinear", align_corners=False, antialias=True)
    return out[0].clamp(0, 255)


def resize_pad_masks(masks: torch.Tensor, long_side: int, out_size: int) -> torch.Tensor:
    """Resize (N, H, W) binary masks like the image, pad to (long_side, long_side), then scale to `out_size`.

    Returns:
      (N, out_size, out_size) float32 in {0, 1}: a pixel is object when more than half of it was.
    """
    h, w = preprocess_shape(masks.shape[-2], masks.shape[-1], long_side)
    resized = F.interpolate(masks[:, None].float(), size=(h, w), mode="bilinear", align_corners=False, antialias=True)
    padded = F.pad(resized, (0, long_side - w, 0, long_side - h))
    if out_size != long_side:
        padded = F.interpolate(padded, size=(out_size, out_size), mode="area")
    return (padded[:, 0] > 0.5).float()


def scale_coords(coords: torch.Tensor, original_hw: tuple[int, int], long_side: int) -> torch.Tensor:
    """Map (..., 2) XY pixel coordinates from the original image to the resized one."""
    h, w = preprocess_shape(original_hw[0], original_hw[1], long_side)
    scale = torch.tensor([w / original_hw[1], h / original_hw[0]], dtype=torch.float32)
    return coords.float() * scale
