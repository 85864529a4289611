"""Training losses: focal + dice (+ optional BCE) on mask logits, IoU-head MSE, multimask min-loss, feature distillation.

Per-mask functions take logits/targets shaped (..., H, W) and return one value per mask (...), so
the multimask selection and the weighting stay visible in `mask_losses`.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


def sigmoid_focal_loss(logits: torch.Tensor, targets: torch.Tensor, alpha: float = 0.25, gamma: float = 2.0) -> torch.Tensor:
    """Focal loss (Lin et al. 2017) averaged over pixels.

    Arguments:
      logits, targets: (..., H, W) float; targets in {0, 1}.
      alpha: weight of the positive class (negatives get 1 - alpha); a negative value disables it.
    Returns:
      (...) per-mask loss.
    """
    prob = torch.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = prob * targets + (1 - prob) * (1 - targets)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    return loss.flatten(-2).mean(-1)


def dice_loss(logits: torch.Tensor, targets: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """Soft Dice loss 1 - (2*sum(p*t) + smooth) / (sum(p) + sum(t) + smooth) with p = sigmoid(logits).

    Returns:
      (...) per-mask loss.
    """
    prob = torch.sigmoid(logits).flatten(-2)
    t = targets.flatten(-2)
    return 1 - (2 * (prob * t).sum(-1) + smooth) / (prob.sum(-1) + t.sum(-1) + smooth)


def bce_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy with logits averaged over pixels.

    Returns:
      (...) per-mask loss.
    """
    return F.binary_cross_entropy_with_logits(logits, targets, reduction="none").flatten(-2).mean(-1)


def mask_iou(logits: torch.Tensor, targets: torch.Tensor, threshold: float = 0.0) -> torch.Tensor:
    """IoU of the binarised prediction (logits > threshold) with the target; 1.0 when both are empty.

    Returns:
      (...) float IoU, no gradient.
    """
    with torch.no_grad():
        pred = (logits > threshold).flatten(-2)
        gt = targets.flatten(-2) > 0.5
        inter = (pred & gt).sum(-1).float()
        union = (pred | gt).sum(-1).float()
        return torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))


@dataclass
class MaskLossTerms:
    """Scalar (mean over prompts) loss terms and the index of the mask kept per prompt."""

    focal: torch.Tensor
    dice: torch.Tensor
    iou: torch.Tensor
    bce: torch.Tensor
    total: torch.Tensor
    chosen: torch.Tensor


def mask_losses(logits: torch.Tensor, iou_pred: torch.Tensor, targets: torch.Tensor, w_focal: float, w_dice: float,
                w_iou: float, threshold: float = 0.0, w_bce: float = 0.0) -> MaskLossTerms:
    """Losses of M candidate masks per prompt, keeping the lowest-loss candidate (SAM's multimask rule).

    Arguments:
      logits: (N, M, H, W) mask logits for N prompts (M = 3 multimask or 1).
      iou_pred: (N, M) predicted IoU.
      targets: (N, H, W) GT masks in {0, 1} at the logits' resolution.
      w_focal, w_dice, w_iou, w_bce: loss weights.
      threshold: logit threshold for the actual IoU the IoU head regresses.
    Returns:
      MaskLossTerms; focal/dice/bce are those of the chosen mask; the IoU MSE covers every candidate,
      since every predicted score has a true IoU to match.
    """
    if logits.ndim != 4 or targets.shape != (logits.shape[0], *logits.shape[-2:]):
        raise ValueError(f"mask_losses: logits (N, M, H, W) and targets (N, H, W) needed, "
                         f"got {tuple(logits.shape)} and {tuple(targets.shape)}")
    expanded = targets[:, None].expand_as(logits)
    focal = sigmoid_focal_loss(logits, expanded)
    dice = dice_loss(logits, expanded)
    bce = bce_loss(logits, expanded)
    chosen = (w_focal * focal + w_dice * dice + w_bce * bce).argmin(dim=1)
    rows = torch.arange(logits.shape[0])
    iou_target = mask_iou(logits, expanded, threshold)
    iou = F.mse_loss(iou_pred, iou_target)
    focal_c, dice_c, bce_c = focal[rows, chosen].mean(), dice[rows, chosen].mean(), bce[rows, chosen].mean()
    total = w_focal * focal_c + w_dice * dice_c + w_bce * bce_c + w_iou * iou
    return MaskLossTerms(focal=focal_c, dice=dice_c, iou=iou, bce=bce_c, total=total, chosen=chosen)


def distillation_loss(student: torch.Tensor, teacher: torch.Tensor, kind: str) -> torch.Tensor:
    """Feature distillation between (B, C, H, W) maps of equal shape.

    kind: "mse" (mean squared error), "l1" (mean absolute error) or "cosine" (mean over positions of
    1 - cosine similarity along channels).
    """
    if student.shape != teacher.shape:
        raise ValueError(f"distillation_loss: student {tuple(student.shape)} and teacher {tuple(teacher.shape)} differ")
    if kind == "mse":
        return F.mse_loss(student, teacher)
    if kind == "l1":
        return F.l1_loss(student, teacher)
    if kind == "cosine":
        return (1 - F.cosine_similarity(student, teacher, dim=1)).mean()
    raise ValueError(f"distill_loss_type must be 'mse', 'l1' or 'cosine', got {kind!r}")
