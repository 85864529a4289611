"""The training/validation dataset: records -> model-ready tensors with GT prompts, and its collate."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from ..image_io import read_rgb
from .geometry import preprocess_shape, resize_image, resize_pad_masks, scale_coords
from .prompts import jitter_box, mask_to_box, sample_points
from .records import SampleRecord


@dataclass(frozen=True)
class PromptSettings:
    """How prompts are derived from each GT mask."""

    use_box: bool = True
    box_jitter: float = 0.0
    num_pos_points: int = 0
    num_neg_points: int = 0
    # Training only: the fraction of images whose objects are prompted by one foreground point instead
    # (SAM's click prompts; an ambiguous single point trains all three multimask outputs).
    point_prompt_prob: float = 0.0


def file_digest(path) -> str:
    """SHA-1 of a file's bytes (the embedding cache key: renamed copies share it, edits change it)."""
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class SamDataset(Dataset):
    """Images resized for the model with their objects' masks and prompts.

    Each item is a dict:
      image (3, h, w) float32 RGB 0-255, resized so max(h, w) = img_size (the model's `preprocess`
        normalises and pads it; it is never normalised here);
      input_size (h, w); original_size (H, W);
      gt_lowres (N, img_size/4, img_size/4) float {0,1}: masks in the padded frame at the decoder's
        low-resolution output size;
      gt (N, H, W) bool at the original size (for validation metrics);
      boxes (N, 4) XYXY in resized-image pixels, or None;
      point_coords (N, P, 2) in resized-image pixels and point_labels (N, P), or None;
      multimask: True when the prompts are single points (train the 3 multimask outputs, lowest loss kept);
      index, image_path, digest.
    With `load_images` False the image is not read ("image" is None): the trainer sets it while every
    embedding comes from its cache, so cached epochs skip decoding and resizing photos.
    Randomness (object subset, jitter, points, flip) comes from a generator seeded by (seed, epoch,
    index), so an item is the same whichever worker loads it and after a resume.
    """

    def __init__(self, records: list[SampleRecord], img_size: int, prompts: PromptSettings,
                 max_objects: int, train: bool, augment: bool = False, seed: int = 0):
        if img_size % 4:
            raise ValueError(f"img_size must be a multiple of 4, got {img_size}")
        self.records = list(records)
        self.img_size = img_size
        self.prompts = prompts
        self.max_objects = max_objects
        self.train = train
        self.augment = augment and train
        self.seed = seed
        self.epoch = 0
        self.load_images = True
        self._digests: dict[int, str] = {}

    def set_epoch(self, epoch: int) -> None:
        """Change the random draw (call before iterating an epoch)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.records)

    def digest(self, index: int) -> str:
        if index not in self._digests:
            self._digests[index] = file_digest(self.records[index].image_path)
        return self._digests[index]

    def digests(self) -> list[str]:
        """Every image's digest, computed once here so loader workers inherit them."""
        return [self.digest(i) for i in range(len(self))]

    def load_pair(self, rec: SampleRecord, refs: list, gen: torch.Generator) -> tuple[torch.Tensor | None, torch.Tensor]:
        """(image (3, H, W) float 0-255 or None when images are not loaded, masks (N, H, W) bool) of the
        objects `refs`, both flipped horizontally with probability 0.5 when augmenting."""
        masks = torch.from_numpy(np.stack([ref.load() for ref in refs]))
        image = None
        if self.load_images:
            # read_rgb: 16-bit grey keeps its top 8 bits (PIL's convert would clip it to white), CMYK becomes RGB.
            image = torch.from_numpy(read_rgb(rec.image_path)).permute(2, 0, 1).float()
        if self.augment and torch.rand(1, generator=gen).item() < 0.5:
            masks = masks.flip(-1)
            image = None if image is None else image.flip(-1)
        return image, masks

    def generator(self, index: int) -> torch.Generator:
        """The item's random generator, seeded by (seed, epoch, index)."""
        return torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch * 10_007 + index)

    def __getitem__(self, index: int) -> dict:
        rec = self.records[index]
        gen = self.generator(index)
        refs = list(rec.masks)
        if self.train and len(refs) > self.max_objects:
            pick = torch.randperm(len(refs), generator=gen)[: self.max_objects].sort().values
            refs = [refs[int(i)] for i in pick]
        image, masks = self.load_pair(rec, refs, gen)
        height, width = masks.shape[-2:]
        boxes = coords = labels = None
        single_point = (self.train and self.prompts.point_prompt_prob > 0
                        and torch.rand(1, generator=gen).item() < self.prompts.point_prompt_prob)
        if single_point:
            pairs = [sample_points(m, 1, 0, gen) for m in masks]
            coords = scale_coords(torch.stack([p[0] for p in pairs]), (height, width), self.img_size)
            labels = torch.stack([p[1] for p in pairs])
        elif self.prompts.use_box:
            jitter = self.prompts.box_jitter if self.train else 0.0
            boxes = torch.stack([jitter_box(mask_to_box(m), jitter, height, width, gen) for m in masks])
            boxes = scale_coords(boxes.reshape(-1, 2, 2), (height, width), self.img_size).reshape(-1, 4)
        if not single_point and self.prompts.num_pos_points + self.prompts.num_neg_points > 0:
            pairs = [sample_points(m, self.prompts.num_pos_points, self.prompts.num_neg_points, gen) for m in masks]
            coords = scale_coords(torch.stack([p[0] for p in pairs]), (height, width), self.img_size)
            labels = torch.stack([p[1] for p in pairs])
        return {**self.common_fields(index, image, masks), "boxes": boxes, "point_coords": coords,
                "point_labels": labels, "multimask": single_point}

    def common_fields(self, index: int, image: torch.Tensor | None, masks: torch.Tensor) -> dict:
        """The item keys every training task shares (image, sizes, gt_lowres, gt, index, image_path, digest)."""
        height, width = masks.shape[-2:]
        return {
            "image": None if image is None else resize_image(image, self.img_size),
            "input_size": preprocess_shape(height, width, self.img_size),
            "original_size": (height, width),
            "gt_lowres": resize_pad_masks(masks, self.img_size, self.img_size // 4),
            "gt": masks,
            "index": index,
            "image_path": str(self.records[index].image_path),
            "digest": self.digest(index),
        }


def collate_samples(items: list[dict]) -> list[dict]:
    """Keep a batch as a list of per-image dicts: images carry different object counts and sizes,
    so stacking happens in the trainer (images after `preprocess`, objects per image)."""
    return list(items)
