"""Prompts derived from ground-truth masks: the tight box (optionally jittered) and sampled points."""
from __future__ import annotations

import torch


def mask_to_box(mask: torch.Tensor) -> torch.Tensor:
    """Tight XYXY box of a (H, W) mask in pixel indices, as SAM's box prompts and amg boxes use.

    Returns:
      (4,) float32 [x_min, y_min, x_max, y_max] of the object pixels (inclusive).
    """
    ys, xs = torch.nonzero(mask, as_tuple=True)
    if xs.numel() == 0:
        raise ValueError("mask_to_box: the mask is empty")
    return torch.stack([xs.min(), ys.min(), xs.max(), ys.max()]).float()


def jitter_box(box: torch.Tensor, fraction: float, height: int, width: int, generator: torch.Generator) -> torch.Tensor:
    """Move each box side by up to `fraction` of the box's width/height, keeping it inside the image.

    Arguments:
      box: (4,) XYXY in pixels.
      fraction: 0 disables jitter.
      generator: torch RNG so data loading is reproducible.

    Returns:
      (4,) XYXY float32 inside [0, width-1] x [0, height-1], never inverted.
    """
    if fraction <= 0:
        return box.clone()
    bw, bh = box[2] - box[0] + 1, box[3] - box[1] + 1
    span = torch.stack([bw, bh, bw, bh]) * fraction
    shift = (torch.rand(4, generator=generator) * 2 - 1) * span
    out = box + shift
    out[0::2] = out[0::2].clamp(0, width - 1)
    out[1::2] = out[1::2].clamp(0, height - 1)
    # Jitter must never invert a box.
    out[2] = torch.maximum(out[2], out[0])
    out[3] = torch.maximum(out[3], out[1])
    return out


def sample_points(mask: torch.Tensor, num_pos: int, num_neg: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample foreground points inside and background points outside a (H, W) mask.

    Returns:
      coords (num_pos + num_neg, 2) float32 XY pixel indices (the prompt encoder adds the half-pixel shift), labels (num_pos + num_neg,) int64
      (1 = inside, 0 = outside). A mask covering the whole image yields negatives as padding points
      (label -1) so shapes stay fixed.
    """
    coords, labels = [], []
    for want, region, label in ((num_pos, mask, 1), (num_neg, ~mask, 0)):
        if want == 0:
            continue
        ys, xs = torch.nonzero(region, as_tuple=True)
        if xs.numel() == 0:
            coords.append(torch.zeros(want, 2))
            labels.append(torch.full((want,), -1, dtype=torch.int64))
            continue
        pick = torch.randint(xs.numel(), (want,), generator=generator)
        coords.append(torch.stack([xs[pick], ys[pick]], dim=1).float())
        labels.append(torch.full((want,), label, dtype=torch.int64))
    if not coords:
        return torch.zeros(0, 2), torch.zeros(0, dtype=torch.int64)
    return torch.cat(coords), torch.cat(labels)
