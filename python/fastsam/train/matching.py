"""One-to-one matching of predicted masks to ground-truth objects (segment-everything training and validation).

Matching needs no gradient: it works on binarised masks and returns indices.
"""
from __future__ import annotations

import torch
from scipy.optimize import linear_sum_assignment


@torch.no_grad()
def mask_iou_matrix(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """IoU of every predicted mask with every ground-truth mask.

    Arguments:
      pred: (P, H, W) bool; gt: (N, H, W) bool or {0, 1} float, same H, W.
    Returns:
      (P, N) float32; 0 where both masks are empty.
    """
    if pred.shape[-2:] != gt.shape[-2:]:
        raise ValueError(f"mask_iou_matrix: predictions {tuple(pred.shape)} and targets {tuple(gt.shape)} differ in size")
    p = pred.flatten(1).float()
    g = (gt > 0.5).flatten(1).float() if gt.is_floating_point() else gt.flatten(1).float()
    inter = p @ g.T
    union = p.sum(1)[:, None] + g.sum(1)[None, :] - inter
    return inter / union.clamp(min=1)


def hungarian(iou: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The one-to-one pairing of rows (predictions) and columns (objects) with the largest total IoU.

    Returns:
      (row indices, column indices), int64, min(P, N) pairs sorted by row.
    """
    rows, cols = linear_sum_assignment(iou.detach().cpu().double().numpy(), maximize=True)
    return torch.as_tensor(rows, dtype=torch.int64), torch.as_tensor(cols, dtype=torch.int64)


def match(iou: torch.Tensor, min_iou: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Hungarian pairs whose IoU is at least `min_iou` (the foreground candidates and their objects)."""
    rows, cols = hungarian(iou)
    keep = iou.detach().cpu()[rows, cols] >= min_iou
    return rows[keep], cols[keep]
