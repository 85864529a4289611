"""SamAutomaticMaskGenerator against the official outputs (amg_*.json, groceries.jpg = image 1).

For every recorded setting: the same number of masks, in the same order; each official mask
matched by ours with mask IoU >= 0.99; predicted_iou and stability_score within 1e-3; bbox
within 1 px; identical prompt point and crop box. The groceries embedding of the session
predictor is reused for the whole-image crop, so only extra crops run the encoder.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from fastsam import SamAutomaticMaskGenerator

SETTINGS_FILES = ("amg_default.json", "amg_relaxed_pps16.json", "amg_crop1_relaxed_pps8.json", "amg_relaxed_pps2_nonms.json")
GROCERIES = 1
MIN_MASK_IOU = 0.99
SCORE_TOL = 1e-3
BBOX_TOL_PX = 1.0

pytestmark = pytest.mark.slow


def _decode(segmentation: dict) -> np.ndarray:
    return mask_utils.decode(segmentation).astype(bool)


def _mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


@pytest.mark.parametrize("settings_file", SETTINGS_FILES, ids=lambda name: name[len("amg_") : -len(".json")])
def test_generator_matches_official(official_dir, fixture_model, fixture_predictors, fixture_images, settings_file):
    golden = json.loads((official_dir / settings_file).read_text())
    assert golden["image"] == "groceries.jpg"
    image = fixture_images[GROCERIES]
    assert list(image.shape[:2]) == golden["image_size_hw"]

    generator = SamAutomaticMaskGenerator(fixture_model, predictor=fixture_predictors[GROCERIES], **golden["settings"])
    ours = generator.generate(image)
    official = golden["annotations"]
    assert len(ours) == golden["num_masks"] == len(official)

    our_masks = [_decode(record["segmentation"]) for record in ours]
    for index, expected in enumerate(official):
        expected_mask = _decode(expected["segmentation"])
        ious = [_mask_iou(expected_mask, mask) for mask in our_masks]
        best = int(np.argmax(ious))
        assert ious[best] >= MIN_MASK_IOU, f"official mask {index}: best IoU {ious[best]:.4f}"
        assert best == index, f"official mask {index} matched our mask {best}: order differs"
        got = ours[best]
        assert got["area"] == int(our_masks[best].sum())
        assert abs(got["predicted_iou"] - expected["predicted_iou"]) <= SCORE_TOL
        assert abs(got["stability_score"] - expected["stability_score"]) <= SCORE_TOL
        np.testing.assert_allclose(got["bbox"], expected["bbox"], rtol=0, atol=BBOX_TOL_PX)
        np.testing.assert_allclose(got["point_coords"], expected["point_coords"], rtol=0, atol=1e-6)
        assert got["crop_box"] == [int(v) for v in expected["crop_box"]]

    # The session predictor still holds the groceries embedding for the other tests.
    assert fixture_predictors[GROCERIES].holds_image(image)
