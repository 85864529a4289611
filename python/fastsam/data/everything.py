"""The segment-everything dataset: every object of an image, prompted by a regular point grid.

Sources are the same readers as prompt training (data/build.py): the `everything` folder layout
(``image/<id>.jpg`` + ``mask/<id>/object_<k>.png``) and COCO instances JSON. Images without any object are
reported and skipped by the record check before training starts.
"""
from __future__ import annotations

import numpy as np
import torch
from ..utils.amg import build_point_grid
from ..utils.transforms import ResizeLongestSide
from .dataset import PromptSettings, SamDataset
from .records import SampleRecord


def grid_prompts(points_per_side: int, original_size: tuple[int, int], img_size: int) -> torch.Tensor:
    """The generator's point grid for an image of `original_size` (H, W), in model input coordinates.

    Mapped exactly as SamAutomaticMaskGenerator maps its (uncropped) grid: cell centres of [0, 1]^2 scaled
    by (W, H), then ResizeLongestSide.apply_coords.

    Returns:
      (points_per_side**2, 2) float32 XY, x varying fastest.
    """
    height, width = original_size
    points = build_point_grid(points_per_side) * np.array([[width, height]])
    return torch.as_tensor(ResizeLongestSide(img_size).apply_coords(points, original_size), dtype=torch.float32)


class EverythingDataset(SamDataset):
    """Images with all their objects and the grid prompts.

    Each item is a dict:
      image (3, h, w) float32 RGB 0-255 resized so max(h, w) = img_size (None while embeddings are cached);
      input_size (h, w); original_size (H, W);
      gt_lowres (N, img_size/4, img_size/4) float {0,1}: every object at the decoder's low-res output size;
      gt (N, H, W) bool at the original size;
      grid (G, 2) float32 XY prompts in model input coordinates, G = grid_points**2;
      index, image_path, digest.
    Training with `augment` flips image and masks; the grid is symmetric, so it needs no flip.
    """

    def __init__(self, records: list[SampleRecord], img_size: int, grid_points: int, train: bool,
                 augment: bool = False, seed: int = 0):
        super().__init__(records, img_size, PromptSettings(), max_objects=1 << 30, train=train, augment=augment,
                         seed=seed)
        self.grid_points = grid_points

    def __getitem__(self, index: int) -> dict:
        rec = self.records[index]
        image, masks = self.load_pair(rec, list(rec.masks), self.generator(index))
        return {**self.common_fields(index, image, masks),
                "grid": grid_prompts(self.grid_points, tuple(masks.shape[-2:]), self.img_size)}
