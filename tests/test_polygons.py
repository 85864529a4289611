"""Masks <-> COCO polygons: exact at tolerance 0, IoU >= 0.95 simplified, holes kept or filled."""
from __future__ import annotations

import numpy as np
import pytest

from fastsam.coco_results import mask_annotation, segmentation_to_mask
from fastsam.data.synthetic import make_scene
from fastsam.utils.polygons import mask_to_polygons, polygons_to_mask


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))


def _ring_mask() -> np.ndarray:
    """A square with two holes, a part touching the border and a single pixel."""
    mask = np.zeros((60, 80), dtype=bool)
    mask[0:40, 5:70] = True
    mask[10:20, 20:30] = False
    mask[25:35, 40:60] = False
    mask[50:60, 70:80] = True
    mask[45, 3] = True
    return mask


def test_tolerance_zero_reproduces_the_mask_exactly_with_holes():
    mask = _ring_mask()
    polygons = mask_to_polygons(mask, tolerance=0)
    assert len(polygons) == 3  # one ring per connected part, holes joined into theirs
    assert np.array_equal(polygons_to_mask(polygons, 60, 80), mask)


def test_dropping_holes_fills_them():
    mask = _ring_mask()
    filled = polygons_to_mask(mask_to_polygons(mask, tolerance=0, keep_holes=False), 60, 80)
    assert filled[10:20, 20:30].all() and filled[25:35, 40:60].all()
    assert (filled & ~mask).sum() == 10 * 10 + 10 * 20


@pytest.mark.parametrize("seed", range(4))
def test_simplified_polygons_round_trip_at_iou_095(seed):
    _, masks = make_scene(np.random.default_rng(seed), 240, 320, 5, (0.08, 0.25), "patterned")
    for mask in masks:
        polygons = mask_to_polygons(mask, tolerance=1.0)
        restored = polygons_to_mask(polygons, 240, 320)
        assert _iou(restored, mask) >= 0.95
        traced = sum(len(p) for p in mask_to_polygons(mask, tolerance=0))
        assert sum(len(p) for p in polygons) < traced / 2  # simplification removes most vertices
        assert all(len(p) >= 6 and len(p) % 2 == 0 for p in polygons)


def test_annotation_records_in_both_formats_decode_to_the_mask():
    mask = _ring_mask()
    rle = mask_annotation(mask, "rle", predicted_iou=0.5)
    poly = mask_annotation(mask, "polygons", tolerance=0)
    assert np.array_equal(segmentation_to_mask(rle["segmentation"], 60, 80), mask)
    assert np.array_equal(segmentation_to_mask(poly["segmentation"], 60, 80), mask)
    assert rle["area"] == poly["area"] == int(mask.sum()) and rle["predicted_iou"] == 0.5
    with pytest.raises(ValueError, match="mask format must be one of"):
        mask_annotation(mask, "png")


def test_bad_arguments():
    with pytest.raises(ValueError, match=r"mask must be \(H, W\)"):
        mask_to_polygons(np.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match="tolerance must be >= 0"):
        mask_to_polygons(np.zeros((4, 4)), tolerance=-1)
    assert mask_to_polygons(np.zeros((4, 4), dtype=bool)) == []
