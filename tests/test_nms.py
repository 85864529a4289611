"""NMS with torchvision semantics on hand-made boxes (fastsam.utils.nms)."""
from __future__ import annotations

import pytest
import torch

from fastsam.utils.nms import batched_nms, box_area, box_iou, nms


def _t(values, dtype=torch.float32):
    return torch.tensor(values, dtype=dtype)


def test_box_area_and_iou():
    boxes = _t([[0, 0, 2, 2], [1, 1, 3, 3], [5, 5, 6, 8]])
    assert box_area(boxes).tolist() == [4.0, 4.0, 3.0]
    iou = box_iou(boxes, boxes)
    assert torch.allclose(torch.diagonal(iou), torch.ones(3))
    assert iou[0, 1].item() == pytest.approx(1 / 7)
    assert iou[0, 2].item() == 0.0


def test_nms_suppresses_overlap_and_returns_descending_scores():
    boxes = _t([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 9]])
    scores = _t([0.5, 0.9, 0.3, 0.8])
    # 1 (0.9) suppresses 0 (IoU 0.68) and 3 (IoU 0.61); 2 is disjoint.
    assert nms(boxes, scores, 0.5).tolist() == [1, 2]
    # At a higher threshold nothing overlaps enough; order is by score.
    assert nms(boxes, scores, 0.7).tolist() == [1, 3, 2]


def test_nms_suppression_is_strictly_greater_than_threshold():
    boxes = _t([[0, 0, 2, 1], [0, 0, 1, 1]])
    scores = _t([0.9, 0.8])
    # IoU is exactly 0.5: kept at threshold 0.5, suppressed just below it.
    assert nms(boxes, scores, 0.5).tolist() == [0, 1]
    assert nms(boxes, scores, 0.4999).tolist() == [0]


def test_nms_compares_float32_iou_against_double_threshold():
    # IoU 1/3 rounds up in float32 (0.33333334 > 1/3 in double), so, like torchvision's
    # C++ kernel, the second box is suppressed at threshold 1/3.
    boxes = _t([[0, 0, 2, 1], [1, 0, 3, 1]])
    scores = _t([0.9, 0.8])
    assert nms(boxes, scores, 1 / 3).tolist() == [0]
    assert nms(boxes, scores, 0.34).tolist() == [0, 1]


def test_nms_ties_keep_input_order():
    boxes = _t([[0, 0, 10, 10], [0, 0, 10, 10], [50, 50, 60, 60], [50, 50, 60, 60]])
    scores = _t([0.5, 0.5, 0.5, 0.5])
    # Stable sort: among equal scores the earlier box is visited first and suppresses the later.
    assert nms(boxes, scores, 0.5).tolist() == [0, 2]
    scores = _t([0.5, 0.7, 0.7, 0.5])
    assert nms(boxes, scores, 0.5).tolist() == [1, 2]


def test_nms_empty_and_zero_area_boxes():
    empty = nms(torch.zeros(0, 4), torch.zeros(0), 0.5)
    assert empty.dtype == torch.int64 and empty.numel() == 0
    # Two identical zero-area boxes have IoU nan, which never suppresses.
    boxes = _t([[1, 1, 1, 1], [1, 1, 1, 1]])
    assert nms(boxes, _t([0.2, 0.1]), 0.5).tolist() == [0, 1]


def test_batched_nms_categories_do_not_suppress_each_other():
    boxes = _t([[0, 0, 10, 10], [1, 1, 11, 11], [0, 0, 10, 10], [1, 1, 10, 10]])
    scores = _t([0.9, 0.8, 0.7, 0.95])
    idxs = torch.tensor([0, 0, 1, 1])
    # Category 0: 0 suppresses 1. Category 1: 3 suppresses 2. Output sorted by score.
    assert batched_nms(boxes, scores, idxs, 0.5).tolist() == [3, 0]
    assert batched_nms(boxes, scores, torch.zeros(4, dtype=torch.int64), 0.5).tolist() == [3]
    assert batched_nms(torch.zeros(0, 4), torch.zeros(0), torch.zeros(0), 0.5).numel() == 0


def _reference_batched_nms(boxes, scores, idxs, threshold):
    """Plain per-category greedy NMS on a double-precision IoU matrix, sorted by score."""
    iou = box_iou(boxes.double(), boxes.double()).numpy()
    score_list = scores.tolist()
    kept = []
    for category in sorted(set(idxs.tolist())):
        members = sorted((i for i in range(len(score_list)) if idxs[i] == category), key=lambda i: -score_list[i])
        alive = []
        for i in members:
            if all(iou[i, j] <= threshold for j in alive):
                alive.append(i)
        kept.extend(alive)
    return sorted(kept, key=lambda i: -score_list[i])


@pytest.mark.parametrize("num_boxes", [200, 1200], ids=["offset_trick", "per_category_loop"])
def test_batched_nms_matches_plain_greedy_reference(num_boxes):
    # 1200 boxes (4800 coordinates) take torchvision's per-category path, 200 the offset trick.
    gen = torch.Generator().manual_seed(0)
    xy = torch.rand(num_boxes, 2, generator=gen) * 100
    wh = torch.rand(num_boxes, 2, generator=gen) * 30 + 1
    boxes = torch.cat([xy, xy + wh], dim=1)
    scores = torch.rand(num_boxes, generator=gen)
    idxs = torch.randint(0, 3, (num_boxes,), generator=gen)
    result = batched_nms(boxes, scores, idxs, 0.4).tolist()
    assert 0 < len(result) < num_boxes
    assert result == _reference_batched_nms(boxes, scores, idxs, 0.4)


def test_nms_bad_input_errors():
    with pytest.raises(ValueError, match=r"boxes must have shape \(N, 4\)"):
        nms(torch.zeros(3, 5), torch.zeros(3), 0.5)
    with pytest.raises(ValueError, match=r"scores must have shape \(3,\)"):
        nms(torch.zeros(3, 4), torch.zeros(2), 0.5)
    with pytest.raises(TypeError, match="same dtype as boxes"):
        nms(torch.zeros(3, 4), torch.zeros(3, dtype=torch.float64), 0.5)
    with pytest.raises(TypeError, match="boxes must be a torch.Tensor"):
        nms([[0, 0, 1, 1]], torch.zeros(1), 0.5)
    with pytest.raises(ValueError, match=r"idxs must have shape \(3,\)"):
        batched_nms(torch.zeros(3, 4), torch.zeros(3), torch.zeros(4), 0.5)
