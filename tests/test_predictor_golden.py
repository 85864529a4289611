"""SamPredictor against the official MobileSAM outputs in predictor.npz (see the fixture's MANIFEST.md).

Every recorded prompt on all three images, multimask on and off. Tolerances (issue 2):
masks <= 0.1% of pixels differ, iou_predictions <= 1e-4, low-res logits <= 1e-3 (compared
on the full array where stored, else on the stored [..., ::4, ::4] sample).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import RECORDED_PROMPTS

IMAGES = (0, 1, 2)
MASK_MISMATCH_FRACTION = 1e-3
IOU_TOL = 1e-4
LOGIT_TOL = 1e-3


def _p5_mask_input(predictor, golden: dict, image_index: int) -> np.ndarray:
    """p5's mask_input: p0 (multimask) low-res logits at the recorded index, official ones where stored."""
    index = int(golden[f"img{image_index}__p5_point_with_mask_input__mask_input_index"])
    full_key = f"img{image_index}__p0_point_fg__mm1__low_res_logits"
    if full_key in golden:
        return golden[full_key][index][None]
    prefix = f"img{image_index}__p0_point_fg__"
    _, _, logits = predictor.predict(
        point_coords=golden[prefix + "point_coords"],
        point_labels=golden[prefix + "point_labels"],
        multimask_output=True,
    )
    return logits[index][None]


def _prompt_kwargs(predictor, golden: dict, image_index: int, prompt: str) -> dict:
    prefix = f"img{image_index}__{prompt}__"
    kwargs = {}
    if prefix + "point_coords" in golden:
        kwargs["point_coords"] = golden[prefix + "point_coords"]
        kwargs["point_labels"] = golden[prefix + "point_labels"]
    if prefix + "box" in golden:
        kwargs["box"] = golden[prefix + "box"]
    if prompt == "p5_point_with_mask_input":
        kwargs["mask_input"] = _p5_mask_input(predictor, golden, image_index)
    assert kwargs, f"no recorded inputs for {prefix}"
    return kwargs


def _assert_outputs_match(golden: dict, key: str, masks, iou_predictions, low_res_logits) -> None:
    expected_masks = golden[key + "masks"]
    assert masks.shape == expected_masks.shape and masks.dtype == np.bool_
    mismatch = int((masks != expected_masks).sum())
    assert mismatch <= MASK_MISMATCH_FRACTION * expected_masks.size, (
        f"{key}masks: {mismatch} of {expected_masks.size} pixels differ"
    )

    expected_iou = golden[key + "iou_predictions"]
    assert iou_predictions.shape == expected_iou.shape
    np.testing.assert_allclose(iou_predictions, expected_iou, rtol=0, atol=IOU_TOL, err_msg=key + "iou_predictions")

    if key + "low_res_logits" in golden:
        expected_logits, actual = golden[key + "low_res_logits"], low_res_logits
    else:
        expected_logits, actual = golden[key + "low_res_logits_s4"], low_res_logits[..., ::4, ::4]
    assert low_res_logits.shape[-2:] == (256, 256)
    assert actual.shape == expected_logits.shape
    np.testing.assert_allclose(actual, expected_logits, rtol=0, atol=LOGIT_TOL, err_msg=key + "low_res_logits")


@pytest.mark.parametrize("image_index", IMAGES, ids=lambda i: f"img{i}")
def test_sizes_and_embedding_match_official(fixture_predictors, predictor_golden, image_index):
    predictor = fixture_predictors[image_index]
    assert predictor.original_size == tuple(predictor_golden[f"img{image_index}__original_size"].tolist())
    assert predictor.input_size == tuple(predictor_golden[f"img{image_index}__input_size"].tolist())
    embedding = predictor.get_image_embedding().numpy()
    full_key = f"img{image_index}__embedding"
    if full_key in predictor_golden:
        np.testing.assert_allclose(embedding, predictor_golden[full_key], rtol=0, atol=1e-4)
    else:
        np.testing.assert_allclose(embedding[..., ::4, ::4], predictor_golden[full_key + "_s4"], rtol=0, atol=1e-4)


@pytest.mark.parametrize("multimask", (True, False), ids=("mm1", "mm0"))
@pytest.mark.parametrize("prompt", RECORDED_PROMPTS)
@pytest.mark.parametrize("image_index", IMAGES, ids=lambda i: f"img{i}")
def test_predict_matches_official(fixture_predictors, predictor_golden, image_index, prompt, multimask):
    predictor = fixture_predictors[image_index]
    kwargs = _prompt_kwargs(predictor, predictor_golden, image_index, prompt)
    masks, iou_predictions, low_res_logits = predictor.predict(multimask_output=multimask, **kwargs)
    assert iou_predictions.dtype == np.float32 and low_res_logits.dtype == np.float32
    key = f"img{image_index}__{prompt}__mm{int(multimask)}__"
    assert masks.shape[0] == (3 if multimask else 1)
    _assert_outputs_match(predictor_golden, key, masks, iou_predictions, low_res_logits)


@pytest.mark.parametrize("image_index", IMAGES, ids=lambda i: f"img{i}")
def test_transformed_prompts_match_official(fixture_predictors, predictor_golden, image_index):
    transform = fixture_predictors[image_index].transform
    original_size = fixture_predictors[image_index].original_size
    for prompt in RECORDED_PROMPTS:
        prefix = f"img{image_index}__{prompt}__"
        if prefix + "point_coords" in predictor_golden:
            np.testing.assert_allclose(
                transform.apply_coords(predictor_golden[prefix + "point_coords"], original_size),
                predictor_golden[prefix + "point_coords_transformed"],
                rtol=0,
                atol=1e-9,
            )
        if prefix + "box" in predictor_golden:
            np.testing.assert_allclose(
                transform.apply_boxes(predictor_golden[prefix + "box"], original_size).reshape(-1),
                predictor_golden[prefix + "box_transformed"],
                rtol=0,
                atol=1e-9,
            )


@pytest.mark.parametrize("multimask", (True, False), ids=("mm1", "mm0"))
@pytest.mark.parametrize("image_index", IMAGES, ids=lambda i: f"img{i}")
def test_predict_torch_batch_of_boxes_matches_official(fixture_predictors, predictor_golden, image_index, multimask):
    predictor = fixture_predictors[image_index]
    prefix = f"img{image_index}__batch4_boxes__"
    boxes = torch.as_tensor(predictor_golden[prefix + "boxes"])
    transformed = predictor.transform.apply_boxes_torch(boxes, predictor.original_size)
    np.testing.assert_allclose(transformed.numpy(), predictor_golden[prefix + "boxes_transformed"], rtol=0, atol=1e-4)
    masks, iou_predictions, low_res_logits = predictor.predict_torch(None, None, boxes=transformed, multimask_output=multimask)
    assert masks.shape[:2] == (4, 3 if multimask else 1)
    _assert_outputs_match(
        predictor_golden,
        f"{prefix}mm{int(multimask)}__",
        masks.numpy(),
        iou_predictions.numpy(),
        low_res_logits.numpy(),
    )
