"""Mask-generator helpers (fastsam.utils.amg) on hand-made inputs, and the generator's small-region step."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from pycocotools import mask as mask_utils

from fastsam.automatic_mask_generator import SamAutomaticMaskGenerator
from fastsam.utils.amg import (
    MaskData,
    area_from_rle,
    batch_iterator,
    batched_mask_to_box,
    box_xyxy_to_xywh,
    build_all_layer_point_grids,
    build_point_grid,
    calculate_stability_score,
    coco_encode_rle,
    generate_crop_boxes,
    is_box_near_crop_edge,
    mask_to_rle_pytorch,
    remove_small_regions,
    rle_to_mask,
    uncrop_boxes_xyxy,
    uncrop_masks,
    uncrop_points,
)


def _masks_for_rle() -> np.ndarray:
    gen = np.random.default_rng(0)
    masks = gen.random((5, 7, 9)) > 0.5
    masks[1] = False  # empty
    masks[2] = True  # full
    masks[3, 0, 0] = True  # starts with a set pixel (RLE begins with a zero-length run)
    masks[4, 0, 0] = False
    return masks


def test_rle_round_trip_and_area():
    masks = _masks_for_rle()
    rles = mask_to_rle_pytorch(torch.from_numpy(masks))
    assert len(rles) == len(masks)
    for mask, rle in zip(masks, rles):
        assert rle["size"] == [7, 9]
        assert sum(rle["counts"]) == 7 * 9
        np.testing.assert_array_equal(rle_to_mask(rle), mask)
        assert area_from_rle(rle) == int(mask.sum())
    assert rles[1]["counts"] == [63]
    assert rles[2]["counts"] == [0, 63]
    assert rles[3]["counts"][0] == 0
    assert mask_to_rle_pytorch(torch.zeros(0, 7, 9, dtype=torch.bool)) == []


# pycocotools' decode trips numpy 2's __array__ copy-keyword deprecation; not our code.
def test_coco_rle_equals_pycocotools_encode():
    for mask in _masks_for_rle():
        ours = coco_encode_rle(mask_to_rle_pytorch(torch.from_numpy(mask[None]))[0])
        reference = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
        assert ours["size"] == list(reference["size"])
        assert ours["counts"] == reference["counts"].decode("utf-8")
        np.testing.assert_array_equal(mask_utils.decode(ours).astype(bool), mask)


def test_rle_to_mask_rejects_inconsistent_counts():
    with pytest.raises(ValueError, match="RLE counts sum to 5"):
        rle_to_mask({"size": [2, 3], "counts": [2, 3]})


def test_stability_score_on_hand_made_logits():
    logits = torch.tensor(
        [
            [-3.0, -0.5, 0.5, 1.5],
            [-2.0, 2.0, 0.2, -1.5],
            [-1.0, 1.0, 3.0, -0.9],
        ]
    )
    # > +1: {1.5, 2.0, 3.0} = 3 pixels; > -1: {-0.5, 0.5, 1.5, 2.0, 0.2, 1.0, 3.0, -0.9} = 8 pixels.
    score = calculate_stability_score(logits[None], mask_threshold=0.0, threshold_offset=1.0)
    assert score.shape == (1,)
    assert score.item() == pytest.approx(3 / 8)
    # Offset 0.5 around threshold 0.5: > 1.0 is 3 pixels, > 0.0 is 6 pixels.
    score = calculate_stability_score(logits[None], mask_threshold=0.5, threshold_offset=0.5)
    assert score.item() == pytest.approx(3 / 6)


def test_point_grid_values():
    grid = build_point_grid(2)
    np.testing.assert_allclose(grid, [[0.25, 0.25], [0.75, 0.25], [0.25, 0.75], [0.75, 0.75]])
    grid = build_point_grid(4)
    assert grid.shape == (16, 2)
    np.testing.assert_allclose(np.unique(grid[:, 0]), [0.125, 0.375, 0.625, 0.875])
    assert [len(g) for g in build_all_layer_point_grids(8, 2, 2)] == [64, 16, 4]
    assert [len(g) for g in build_all_layer_point_grids(8, 1, 1)] == [64, 64]


def test_crop_boxes_layer_one():
    boxes, layers = generate_crop_boxes((534, 800), 1, 512 / 1500)
    # overlap = int(512/1500 * 534) = 182; crop w = ceil((182 + 800) / 2) = 491, h = ceil((182 + 534) / 2) = 358.
    assert boxes == [
        [0, 0, 800, 534],
        [0, 0, 491, 358],
        [0, 176, 491, 534],
        [309, 0, 800, 358],
        [309, 176, 800, 534],
    ]
    assert layers == [0, 1, 1, 1, 1]
    boxes, layers = generate_crop_boxes((534, 800), 2, 512 / 1500)
    assert layers.count(2) == 16
    assert all(0 <= x0 < x1 <= 800 and 0 <= y0 < y1 <= 534 for x0, y0, x1, y1 in boxes)


def test_batched_mask_to_box_small_masks_and_empty():
    masks = torch.zeros(2, 3, 5, 6, dtype=torch.bool)
    masks[0, 0, 1, 2] = True
    masks[0, 0, 3, 4] = True
    masks[0, 1, 0, 0] = True
    masks[1, 2] = True
    boxes = batched_mask_to_box(masks)
    assert boxes.shape == (2, 3, 4)
    assert boxes[0, 0].tolist() == [2, 1, 4, 3]
    assert boxes[0, 1].tolist() == [0, 0, 0, 0]
    assert boxes[0, 2].tolist() == [0, 0, 0, 0]  # empty mask
    assert boxes[1, 2].tolist() == [0, 0, 5, 4]
    assert batched_mask_to_box(masks[0, 0]).tolist() == [2, 1, 4, 3]
    assert batched_mask_to_box(torch.zeros(0, 5, 6, dtype=torch.bool)).shape == (0, 4)


def _drawn_mask() -> np.ndarray:
    mask = np.zeros((12, 12), dtype=bool)
    mask[2:8, 2:8] = True
    mask[4, 4] = False  # 1-pixel hole
    mask[10, 10:12] = True  # 2-pixel island
    mask[8, 8] = True  # touches the square only diagonally: same 8-connected component
    return mask


def test_remove_small_regions_holes_and_islands():
    mask = _drawn_mask()
    filled, changed = remove_small_regions(mask, 3, mode="holes")
    assert changed
    expected = mask.copy()
    expected[4, 4] = True
    np.testing.assert_array_equal(filled, expected)

    cleaned, changed = remove_small_regions(mask, 3, mode="islands")
    assert changed
    expected = mask.copy()
    expected[10, 10:12] = False
    np.testing.assert_array_equal(cleaned, expected)
    assert cleaned[8, 8]  # the diagonal pixel belongs to the big region under 8-connectivity

    unchanged, changed = remove_small_regions(mask, 1, mode="holes")
    assert not changed and unchanged is mask


def test_remove_small_regions_keeps_largest_when_all_islands_small():
    mask = np.zeros((6, 6), dtype=bool)
    mask[0, 0] = True
    mask[3:5, 3:5] = True
    cleaned, changed = remove_small_regions(mask, 100, mode="islands")
    assert changed
    expected = np.zeros_like(mask)
    expected[3:5, 3:5] = True
    np.testing.assert_array_equal(cleaned, expected)
    with pytest.raises(ValueError, match="mode must be 'holes' or 'islands'"):
        remove_small_regions(mask, 3, mode="blobs")


def test_uncrop_helpers_and_crop_edge_test():
    crop_box = [10, 20, 30, 35]
    boxes = torch.tensor([[1, 2, 3, 4]])
    assert uncrop_boxes_xyxy(boxes, crop_box).tolist() == [[11, 22, 13, 24]]
    assert uncrop_points(torch.tensor([[1.5, 2.0]]), crop_box).tolist() == [[11.5, 22.0]]
    masks = torch.ones(1, 15, 20, dtype=torch.bool)
    padded = uncrop_masks(masks, crop_box, 40, 50)
    assert padded.shape == (1, 40, 50)
    assert padded.sum().item() == 15 * 20
    assert padded[0, 20:35, 10:30].all()
    assert uncrop_masks(masks, [0, 0, 20, 15], 15, 20) is masks

    # Crop [100, 0, 300, 200] of a 300 x 200 image: its left edge is inside the image.
    crop = [100, 0, 300, 200]
    near = is_box_near_crop_edge(
        torch.tensor([[5, 50, 60, 80], [50, 50, 80, 80], [50, 0, 199, 199]]), crop, [0, 0, 300, 200]
    )
    # Box 0 touches the inner left edge; box 1 is inside; box 2 touches only image edges.
    assert near.tolist() == [True, False, False]


def test_box_xyxy_to_xywh_does_not_modify_input():
    box = torch.tensor([2, 3, 10, 7])
    assert box_xyxy_to_xywh(box).tolist() == [2, 3, 8, 4]
    assert box.tolist() == [2, 3, 10, 7]


def test_batch_iterator_and_mask_data():
    batches = list(batch_iterator(3, np.arange(7), list("abcdefg")))
    assert [len(b[0]) for b in batches] == [3, 3, 1]
    assert batches[2][1] == ["g"]
    with pytest.raises(ValueError, match="same length"):
        list(batch_iterator(3, [1, 2], [1]))
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        list(batch_iterator(0, [1, 2]))

    data = MaskData(scores=torch.tensor([0.1, 0.9, 0.5]), names=["a", "b", "c"], ids=np.array([1, 2, 3]))
    data.cat(MaskData(scores=torch.tensor([0.7]), names=["d"], ids=np.array([4])))
    data.filter(data["scores"] > 0.4)
    assert data["names"] == ["b", "c", "d"]
    assert data["ids"].tolist() == [2, 3, 4]
    data.filter(torch.tensor([2, 0]))
    assert data["names"] == ["d", "b"]
    data.to_numpy()
    assert isinstance(data["scores"], np.ndarray)
    with pytest.raises(TypeError, match="MaskData field 'bad'"):
        MaskData(bad=3)


def test_postprocess_small_regions_updates_kept_masks():
    clean = np.zeros((12, 12), dtype=bool)
    clean[0:4, 0:4] = True
    noisy = _drawn_mask()
    rles = mask_to_rle_pytorch(torch.from_numpy(np.stack([clean, noisy])))
    data = MaskData(
        rles=rles,
        boxes=batched_mask_to_box(torch.from_numpy(np.stack([clean, noisy]))).numpy(),
        iou_preds=np.array([0.9, 0.8], dtype=np.float32),
    )
    out = SamAutomaticMaskGenerator.postprocess_small_regions(data, 3, 0.7)
    # Both survive NMS (boxes barely overlap); the noisy one lost its island and hole.
    assert len(out["rles"]) == 2
    fixed = rle_to_mask(out["rles"][1])
    expected = noisy.copy()
    expected[4, 4] = True
    expected[10, 10:12] = False
    np.testing.assert_array_equal(fixed, expected)
    assert out["boxes"][1].tolist() == [2, 2, 8, 8]
    np.testing.assert_array_equal(rle_to_mask(out["rles"][0]), clean)


def test_generator_output_modes_agree_and_progress_bar(capsys):
    from fastsam import SamPredictor, build_sam

    torch.manual_seed(0)
    model = build_sam("vit_t").eval()
    image = np.random.default_rng(1).integers(0, 256, size=(40, 56, 3), dtype=np.uint8)
    predictor = SamPredictor(model)
    predictor.set_image(image)
    settings = dict(points_per_side=2, pred_iou_thresh=0.0, stability_score_thresh=0.0, box_nms_thresh=1.0)

    results = {
        mode: SamAutomaticMaskGenerator(model, output_mode=mode, predictor=predictor, **settings).generate(
            image, progress=(mode == "coco_rle")
        )
        for mode in ("binary_mask", "uncompressed_rle", "coco_rle")
    }
    assert "mask generation" in capsys.readouterr().err
    binary = results["binary_mask"]
    assert 0 < len(binary) <= 12
    for i, record in enumerate(binary):
        mask = record["segmentation"]
        assert mask.shape == (40, 56) and mask.dtype == np.bool_
        np.testing.assert_array_equal(rle_to_mask(results["uncompressed_rle"][i]["segmentation"]), mask)
        np.testing.assert_array_equal(mask_utils.decode(results["coco_rle"][i]["segmentation"]).astype(bool), mask)
        assert record["area"] == int(mask.sum())
        if record["area"]:
            x, y, w, h = record["bbox"]
            ys, xs = np.nonzero(mask)
            assert [x, y, x + w, y + h] == [xs.min(), ys.min(), xs.max(), ys.max()]
        assert record["crop_box"] == [0, 0, 56, 40]
        assert set(record) == {
            "segmentation", "area", "bbox", "predicted_iou", "point_coords", "stability_score", "crop_box"
        }
    # The supplied predictor's embedding was reused and left in place.
    assert predictor.holds_image(image)
