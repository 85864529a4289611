"""Box non-maximum suppression with torchvision's semantics, without torchvision.

torchvision does not install beside the CPU torch used here, so the two operations the
mask generator needs are re-implemented to give the same keep-lists:

* ``nms``: boxes visited in descending score order (a *stable* sort, so equal scores keep
  input order, as in torchvision's CPU kernel); a box suppresses every later box whose IoU
  with it is strictly greater than the threshold. IoU arithmetic stays in the boxes' dtype.
* ``batched_nms``: NMS independently per category, returned in descending score order.
  Like torchvision it uses the coordinate-offset trick for small inputs and a per-category
  loop for large ones (more than 4000 box coordinates on CPU).

Boxes are XYXY (x0, y0, x1, y1) with x1 >= x0 and y1 >= y0.
"""
from __future__ import annotations

import numpy as np
import torch

# torchvision switches from the offset trick to a per-category loop above this many
# box coordinates on CPU; keeping the same switch keeps float rounding identical.
_VANILLA_BATCHED_NMS_MIN_NUMEL_CPU = 4000


def _check_boxes(boxes: torch.Tensor, name: str = "boxes") -> None:
    if not isinstance(boxes, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (N, 4), got {type(boxes).__name__}")
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"{name} must have shape (N, 4) (XYXY), got {tuple(boxes.shape)}")


def _check_scores(scores: torch.Tensor, num_boxes: int, name: str = "scores") -> None:
    if not isinstance(scores, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (N,), got {type(scores).__name__}")
    if scores.ndim != 1 or scores.shape[0] != num_boxes:
        raise ValueError(f"{name} must have shape ({num_boxes},) to match boxes, got {tuple(scores.shape)}")


def box_area(boxes: torch.Tensor) -> torch.Tensor:
    """Area of XYXY boxes.

    Arguments:
      boxes (torch.Tensor): (N, 4) boxes as (x0, y0, x1, y1).

    Returns:
      (torch.Tensor): (N,) areas ``(x1 - x0) * (y1 - y0)`` in the boxes' dtype.
    """
    _check_boxes(boxes)
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def box_iou(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    """Pairwise IoU of two sets of XYXY boxes.

    Arguments:
      boxes1 (torch.Tensor): (N, 4) boxes.
      boxes2 (torch.Tensor): (M, 4) boxes.

    Returns:
      (torch.Tensor): (N, M) IoU values (nan where both boxes have zero area).
    """
    _check_boxes(boxes1, "boxes1")
    _check_boxes(boxes2, "boxes2")
    area1 = box_area(boxes1)
    area2 = box_area(boxes2)
    top_left = torch.maximum(boxes1[:, None, :2], boxes2[None, :, :2])
    bottom_right = torch.minimum(boxes1[:, None, 2:], boxes2[None, :, 2:])
    wh = (bottom_right - top_left).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    return inter / (area1[:, None] + area2[None, :] - inter)


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy non-maximum suppression (torchvision.ops.nms semantics).

    Arguments:
      boxes (torch.Tensor): (N, 4) float XYXY boxes.
      scores (torch.Tensor): (N,) scores, same dtype as boxes.
      iou_threshold (float): a box is dropped when its IoU with a kept, higher-scoring box
        is strictly greater than this.

    Returns:
      (torch.Tensor): int64 indices of the kept boxes, in descending score order (ties in
        input order).
    """
    _check_boxes(boxes)
    _check_scores(scores, boxes.shape[0])
    if not boxes.is_floating_point():
        raise TypeError(f"boxes must be a floating point tensor, got dtype {boxes.dtype}")
    if scores.dtype != boxes.dtype:
        raise TypeError(f"scores must have the same dtype as boxes ({boxes.dtype}), got {scores.dtype}")
    if boxes.shape[0] == 0:
        return torch.empty((0,), dtype=torch.int64, device=boxes.device)

    order = torch.sort(scores, dim=0, descending=True, stable=True).indices
    # The greedy loop runs in numpy: far less per-step overhead than torch for small
    # vectors, and float32 arithmetic stays float32 so rounding matches the C++ kernel.
    sorted_boxes = boxes[order].detach().cpu().numpy()
    x0, y0, x1, y1 = (np.ascontiguousarray(sorted_boxes[:, k]) for k in range(4))
    areas = (x1 - x0) * (y1 - y0)
    num = sorted_boxes.shape[0]
    suppressed = np.zeros(num, dtype=bool)
    keep = []
    for i in range(num):
        if suppressed[i]:
            continue
        keep.append(i)
        later = slice(i + 1, num)
        width = np.maximum(np.minimum(x1[i], x1[later]) - np.maximum(x0[i], x0[later]), 0)
        height = np.maximum(np.minimum(y1[i], y1[later]) - np.maximum(y0[i], y0[later]), 0)
        inter = width * height
        with np.errstate(divide="ignore", invalid="ignore"):
            overlap = inter / (areas[i] + areas[later] - inter)
        # The reference compares the box-dtype IoU against a double threshold.
        suppressed[later] |= overlap.astype(np.float64) > iou_threshold
    return order[torch.as_tensor(keep, dtype=torch.int64, device=boxes.device)]


def batched_nms(
    boxes: torch.Tensor, scores: torch.Tensor, idxs: torch.Tensor, iou_threshold: float
) -> torch.Tensor:
    """Non-maximum suppression applied independently per category (torchvision semantics).

    Arguments:
      boxes (torch.Tensor): (N, 4) float XYXY boxes.
      scores (torch.Tensor): (N,) scores, same dtype as boxes.
      idxs (torch.Tensor): (N,) integer category of each box; boxes of different
        categories never suppress each other.
      iou_threshold (float): suppression happens when IoU > iou_threshold.

    Returns:
      (torch.Tensor): int64 indices of the kept boxes in descending score order.
    """
    _check_boxes(boxes)
    _check_scores(scores, boxes.shape[0])
    _check_scores(idxs, boxes.shape[0], "idxs")
    if boxes.numel() > _VANILLA_BATCHED_NMS_MIN_NUMEL_CPU:
        return _batched_nms_per_category(boxes, scores, idxs, iou_threshold)
    return _batched_nms_coordinate_offset(boxes, scores, idxs, iou_threshold)


def _batched_nms_coordinate_offset(
    boxes: torch.Tensor, scores: torch.Tensor, idxs: torch.Tensor, iou_threshold: float
) -> torch.Tensor:
    if boxes.numel() == 0:
        return torch.empty((0,), dtype=torch.int64, device=boxes.device)
    # Shifting each category to its own disjoint region makes one NMS call equal to
    # one call per category.
    max_coordinate = boxes.max()
    offsets = idxs.to(boxes) * (max_coordinate + torch.tensor(1).to(boxes))
    return nms(boxes + offsets[:, None], scores, iou_threshold)


def _batched_nms_per_category(
    boxes: torch.Tensor, scores: torch.Tensor, idxs: torch.Tensor, iou_threshold: float
) -> torch.Tensor:
    keep_mask = torch.zeros_like(scores, dtype=torch.bool)
    for category in torch.unique(idxs):
        members = torch.where(idxs == category)[0]
        kept = nms(boxes[members], scores[members], iou_threshold)
        keep_mask[members[kept]] = True
    keep_indices = torch.where(keep_mask)[0]
    order = torch.sort(scores[keep_indices], descending=True, stable=True).indices
    return keep_indices[order]
