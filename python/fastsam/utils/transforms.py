"""Resize images so the longest side has a target length, and map prompts accordingly."""
from __future__ import annotations

from copy import deepcopy

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image


class ResizeLongestSide:
    """Resize to a longest side of ``target_length`` and transform coordinates to match.

    Coordinates are (x, y) in pixels; boxes are XYXY. Methods take the original (H, W).
    """

    def __init__(self, target_length: int) -> None:
        if not isinstance(target_length, int) or target_length <= 0:
            raise ValueError(f"target_length must be a positive int, got {target_length!r}")
        self.target_length = target_length

    def apply_image(self, image: np.ndarray) -> np.ndarray:
        """Arguments: image (H, W, 3) uint8. Returns: resized (H', W', 3) uint8.

        Uses PIL's bilinear filter (antialiased when shrinking), which is what the official
        torchvision-on-PIL resize does, so the output is bit-identical.
        """
        if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(
                f"image must be an HxWx3 uint8 numpy array, got "
                f"{type(image).__name__} {getattr(image, 'shape', '')} {getattr(image, 'dtype', '')}"
            )
        new_h, new_w = self.get_preprocess_shape(image.shape[0], image.shape[1], self.target_length)
        return np.array(Image.fromarray(image).resize((new_w, new_h), Image.BILINEAR))

    def apply_coords(self, coords: np.ndarray, original_size: tuple[int, ...]) -> np.ndarray:
        """Arguments: coords (..., 2) XY in the original image of size (H, W).

        Returns: float64 coords in the resized frame.
        """
        old_h, old_w = original_size
        new_h, new_w = self.get_preprocess_shape(old_h, old_w, self.target_length)
        coords = deepcopy(coords).astype(float)
        coords[..., 0] = coords[..., 0] * (new_w / old_w)
        coords[..., 1] = coords[..., 1] * (new_h / old_h)
        return coords

    def apply_boxes(self, boxes: np.ndarray, original_size: tuple[int, ...]) -> np.ndarray:
        """Arguments: boxes (B, 4) XYXY in the original image. Returns: (B, 4) float64 in the resized frame."""
        return self.apply_coords(boxes.reshape(-1, 2, 2), original_size).reshape(-1, 4)

    def apply_image_torch(self, image: torch.Tensor) -> torch.Tensor:
        """Arguments: image (B, C, H, W) float. Returns: (B, C, H', W') float (bilinear, antialiased)."""
        target_size = self.get_preprocess_shape(image.shape[2], image.shape[3], self.target_length)
        return F.interpolate(image, target_size, mode="bilinear", align_corners=False, antialias=True)

    def apply_coords_torch(self, coords: torch.Tensor, original_size: tuple[int, ...]) -> torch.Tensor:
        """Arguments: coords (..., 2) XY tensor in the original image. Returns: float32 coords in the resized frame."""
        old_h, old_w = original_size
        new_h, new_w = self.get_preprocess_shape(old_h, old_w, self.target_length)
        coords = deepcopy(coords).to(torch.float)
        coords[..., 0] = coords[..., 0] * (new_w / old_w)
        coords[..., 1] = coords[..., 1] * (new_h / old_h)
        return coords

    def apply_boxes_torch(self, boxes: torch.Tensor, original_size: tuple[int, ...]) -> torch.Tensor:
        """Arguments: boxes (B, 4) XYXY tensor in the original image. Returns: (B, 4) float32 in the resized frame."""
        return self.apply_coords_torch(boxes.reshape(-1, 2, 2), original_size).reshape(-1, 4)

    @staticmethod
    def get_preprocess_shape(oldh: int, oldw: int, long_side_length: int) -> tuple[int, int]:
        """Output (H', W') for an input of (oldh, oldw) so that max(H', W') == long_side_length (rounded half up)."""
        scale = long_side_length * 1.0 / max(oldh, oldw)
        newh, neww = oldh * scale, oldw * scale
        return int(newh + 0.5), int(neww + 0.5)
