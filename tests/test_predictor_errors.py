"""Bad input to SamPredictor and SamAutomaticMaskGenerator: error type and a message naming the argument.

Uses a randomly initialised vit_t (no golden files needed); the encoder runs once per module.
"""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from fastsam import SamAutomaticMaskGenerator, SamPredictor, build_sam


@pytest.fixture(scope="module")
def random_model():
    torch.manual_seed(0)
    return build_sam("vit_t").eval()


@pytest.fixture(scope="module")
def small_image() -> np.ndarray:
    gen = np.random.default_rng(0)
    return gen.integers(0, 256, size=(48, 64, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def ready_predictor(random_model, small_image) -> SamPredictor:
    predictor = SamPredictor(random_model)
    predictor.set_image(small_image)
    return predictor


# ---- set_image / set_torch_image -------------------------------------------------------


@pytest.mark.parametrize(
    "image, error, message",
    [
        ([[[0, 0, 0]]], TypeError, r"image must be a numpy.ndarray of shape \(H, W, 3\) and dtype uint8, got list"),
        (np.zeros((8, 8, 3), dtype=np.float32), TypeError, "image must have dtype uint8.*got float32"),
        (np.zeros((8, 8), dtype=np.uint8), ValueError, r"image must have shape \(H, W, 3\).*got \(8, 8\)"),
        (np.zeros((8, 8, 4), dtype=np.uint8), ValueError, r"image must have shape \(H, W, 3\).*got \(8, 8, 4\)"),
        (np.zeros((0, 8, 3), dtype=np.uint8), ValueError, r"image must not be empty.*\(0, 8, 3\)"),
    ],
    ids=["not_ndarray", "float_dtype", "grayscale", "four_channels", "empty"],
)
def test_set_image_rejects_bad_images(random_model, image, error, message):
    predictor = SamPredictor(random_model)
    with pytest.raises(error, match=message):
        predictor.set_image(image)
    assert not predictor.is_image_set


def test_set_image_rejects_unknown_format(random_model, small_image):
    with pytest.raises(ValueError, match=r"image_format must be one of \('RGB', 'BGR'\), got 'RGBA'"):
        SamPredictor(random_model).set_image(small_image, image_format="RGBA")


def test_set_torch_image_checks_shape_type_and_size(random_model):
    predictor = SamPredictor(random_model)
    with pytest.raises(TypeError, match="transformed_image must be a torch.Tensor"):
        predictor.set_torch_image(np.zeros((1, 3, 1024, 1024)), (10, 10))
    with pytest.raises(ValueError, match=r"transformed_image must have shape \(1, 3, H, W\) with max\(H, W\) == 1024"):
        predictor.set_torch_image(torch.zeros(1, 3, 512, 512), (10, 10))
    with pytest.raises(ValueError, match=r"transformed_image must have shape.*got \(3, 1024, 1024\)"):
        predictor.set_torch_image(torch.zeros(3, 1024, 1024), (10, 10))
    with pytest.raises(ValueError, match="original_image_size must be \\(H, W\\) with two positive integers"):
        predictor.set_torch_image(torch.zeros(1, 3, 1024, 768), (0, 10))


def test_sam_predictor_needs_a_sam_model():
    with pytest.raises(TypeError, match="sam_model must be a Sam model"):
        SamPredictor(torch.nn.Linear(2, 2))


# ---- call order ------------------------------------------------------------------------


def test_calls_before_set_image_raise_runtime_error(random_model):
    predictor = SamPredictor(random_model)
    with pytest.raises(RuntimeError, match=r"image must be set with .set_image"):
        predictor.predict(point_coords=np.array([[1.0, 1.0]]), point_labels=np.array([1]))
    with pytest.raises(RuntimeError, match=r"image must be set with .set_image.*embedding"):
        predictor.get_image_embedding()
    with pytest.raises(RuntimeError, match=r"image must be set with .set_image"):
        predictor.predict_torch(None, None, boxes=torch.zeros(1, 4))


def test_reset_image_forgets_the_embedding(ready_predictor, small_image):
    predictor = copy.copy(ready_predictor)  # shares the embedding; reset only touches the copy
    assert predictor.holds_image(small_image)
    assert not predictor.holds_image(small_image, image_format="BGR")
    assert not predictor.holds_image(small_image[::-1].copy())
    predictor.reset_image()
    assert not predictor.is_image_set and predictor.features is None and predictor.original_size is None
    assert not predictor.holds_image(small_image)
    with pytest.raises(RuntimeError, match="image must be set"):
        predictor.predict(box=np.array([0, 0, 5, 5]))


# ---- predict prompts -------------------------------------------------------------------


def test_predict_output_shapes_and_dtypes(ready_predictor, small_image):
    masks, scores, logits = ready_predictor.predict(
        point_coords=np.array([[10.0, 20.0]]), point_labels=np.array([1]), box=np.array([5, 5, 40, 30])
    )
    assert masks.shape == (3, 48, 64) and masks.dtype == np.bool_
    assert scores.shape == (3,) and scores.dtype == np.float32
    assert logits.shape == (3, 256, 256) and logits.dtype == np.float32
    raw, _, _ = ready_predictor.predict(box=np.array([5, 5, 40, 30]), multimask_output=False, return_logits=True)
    assert raw.shape == (1, 48, 64) and raw.dtype == np.float32
    assert ready_predictor.get_image_embedding().shape == (1, 256, 64, 64)
    assert ready_predictor.original_size == (48, 64) and ready_predictor.input_size == (768, 1024)


def test_predict_accepts_prompts_on_the_image_border(ready_predictor):
    masks, _, _ = ready_predictor.predict(point_coords=np.array([[0, 0], [64, 48]]), point_labels=np.array([1, 0]),
                                          box=np.array([0, 0, 64, 48]), multimask_output=False)
    assert masks.shape == (1, 48, 64)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"point_coords": np.array([1.0, 2.0]), "point_labels": np.array([1])}, ValueError,
         r"point_coords must have shape \(N, 2\).*got \(2,\)"),
        ({"point_coords": np.zeros((2, 3)), "point_labels": np.array([1, 1])}, ValueError,
         r"point_coords must have shape \(N, 2\).*got \(2, 3\)"),
        ({"point_coords": np.array([["a", "b"]]), "point_labels": np.array([1])}, TypeError,
         r"point_coords must be a numeric array of shape \(N, 2\)"),
        ({"point_coords": np.array([[np.nan, 2.0]]), "point_labels": np.array([1])}, ValueError,
         "point_coords must be finite"),
        ({"point_coords": np.zeros((2, 2))}, ValueError,
         r"point_coords was given without point_labels.*shape \(N,\)"),
        ({"point_labels": np.array([1])}, ValueError, "point_labels was given without point_coords"),
        ({"point_coords": np.zeros((2, 2)), "point_labels": np.array([[1, 0]])}, ValueError,
         r"point_labels must have shape \(N,\) = \(2,\), got \(1, 2\)"),
        ({"point_coords": np.zeros((2, 2)), "point_labels": np.array([1])}, ValueError,
         r"point_labels must have one label per point: expected shape \(2,\)"),
        ({"point_coords": np.zeros((2, 2)), "point_labels": np.array([1, 2])}, ValueError,
         r"point_labels must contain only 0 \(background\) or 1 \(foreground\), got \[2\]"),
        ({"box": np.array([1, 2, 3])}, ValueError, r"box must be 4 numbers \(x0, y0, x1, y1\).*got shape \(3,\)"),
        ({"box": np.array([30, 5, 10, 20])}, ValueError, "box must be .* with x1 >= x0 and y1 >= y0, got \\[30"),
        ({"box": np.array([5, 30, 10, 20])}, ValueError, "box must be .* with x1 >= x0 and y1 >= y0"),
        ({"box": np.array([0, 0, np.inf, 5])}, ValueError, "box must be finite"),
        ({"mask_input": np.zeros((256, 256))}, ValueError, r"mask_input must have shape \(1, 256, 256\).*got \(256, 256\)"),
        ({"mask_input": np.zeros((1, 64, 64))}, ValueError, r"mask_input must have shape \(1, 256, 256\)"),
        ({"point_coords": np.array([[10, 20], [64.5, 3]]), "point_labels": np.array([1, 0])}, ValueError,
         r"point_coords\[1\] = \(64.5, 3\) is outside the 64x48 image: x must be in \[0, 64\] and y in \[0, 48\]"),
        ({"point_coords": np.array([[10, -1]]), "point_labels": np.array([1])}, ValueError,
         r"point_coords\[0\] = \(10, -1\) is outside the 64x48 image"),
        ({"box": np.array([5, 5, 40, 49])}, ValueError,
         r"box \(5, 5, 40, 49\) is outside the 64x48 image: x must be in \[0, 64\] and y in \[0, 48\]"),
    ],
    ids=[
        "coords_1d", "coords_three_columns", "coords_not_numeric", "coords_nan", "coords_without_labels",
        "labels_without_coords", "labels_2d", "labels_count_mismatch", "labels_not_binary", "box_three_numbers",
        "box_x1_lt_x0", "box_y1_lt_y0", "box_inf", "mask_input_2d", "mask_input_wrong_size", "point_right_of_image",
        "point_above_image", "box_below_image",
    ],
)
def test_predict_rejects_bad_prompts(ready_predictor, kwargs, error, message):
    with pytest.raises(error, match=message):
        ready_predictor.predict(**kwargs)


@pytest.mark.parametrize(
    "args, error, message",
    [
        ((np.zeros((1, 1, 2)), np.ones((1, 1))), TypeError, "point_coords must be a torch.Tensor or None, got ndarray"),
        ((torch.zeros(1, 2), torch.ones(1, 1)), ValueError, r"point_coords must have shape \(B, N, 2\), got \(1, 2\)"),
        ((torch.zeros(2, 3, 2), torch.ones(2, 2)), ValueError,
         r"point_labels must have shape \(B, N\) = \(2, 3\) to match point_coords, got \(2, 2\)"),
        ((torch.zeros(1, 1, 2), torch.full((1, 1), 5)), ValueError,
         r"point_labels must contain only 1 \(foreground\), 0 \(background\) or -1 \(padding\), got \[5\]"),
        ((torch.zeros(1, 1, 2), None), ValueError, "point_coords was given without point_labels"),
        ((None, None, torch.zeros(4)), ValueError, r"boxes must have shape \(B, 4\) \(XYXY\), got \(4,\)"),
        ((torch.zeros(2, 1, 2), torch.ones(2, 1), torch.zeros(3, 4)), ValueError,
         "prompts must share the batch size B"),
        ((None, None, torch.zeros(1, 4), torch.zeros(1, 256, 256)), ValueError,
         r"mask_input must have shape \(B, 1, 256, 256\), got \(1, 256, 256\)"),
    ],
    ids=["numpy_coords", "coords_2d", "labels_shape", "labels_values", "coords_without_labels", "boxes_1d",
         "batch_mismatch", "mask_input_3d"],
)
def test_predict_torch_rejects_bad_shapes(ready_predictor, args, error, message):
    with pytest.raises(error, match=message):
        ready_predictor.predict_torch(*args)


# ---- mask generator arguments ----------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"points_per_side": None}, "exactly one of points_per_side and point_grids"),
        ({"point_grids": [np.zeros((4, 2))]}, "exactly one of points_per_side and point_grids.*points_per_side=None"),
        ({"points_per_side": None, "point_grids": [np.zeros((4, 3))]}, r"point_grids\[0\] must have shape \(N, 2\)"),
        ({"points_per_side": None, "point_grids": [np.full((4, 2), 2.0)]}, r"point_grids\[0\] must hold normalised"),
        ({"points_per_side": None, "point_grids": [np.zeros((4, 2))], "crop_n_layers": 1},
         r"one \(N, 2\) grid per crop layer, i.e. crop_n_layers \+ 1 = 2 grids"),
        ({"points_per_side": 0}, "points_per_side must be an integer >= 1, got 0"),
        ({"points_per_batch": 2.5}, "points_per_batch must be an integer >= 1, got 2.5"),
        ({"output_mode": "png"}, r"output_mode must be one of \('binary_mask', 'uncompressed_rle', 'coco_rle'\)"),
        ({"pred_iou_thresh": 1.5}, r"pred_iou_thresh must be a number in \[0, 1\], got 1.5"),
        ({"stability_score_thresh": -0.1}, r"stability_score_thresh must be a number in \[0, 1\]"),
        ({"box_nms_thresh": 2}, r"box_nms_thresh must be a number in \[0, 1\]"),
        ({"crop_nms_thresh": "0.7"}, r"crop_nms_thresh must be a number in \[0, 1\]"),
        ({"crop_overlap_ratio": 1.0}, r"crop_overlap_ratio must be a number in \[0, 1\)"),
        ({"stability_score_offset": 0}, "stability_score_offset must be a positive number"),
        ({"crop_n_layers": -1}, "crop_n_layers must be an integer >= 0"),
        ({"crop_n_points_downscale_factor": 0}, "crop_n_points_downscale_factor must be an integer >= 1"),
        ({"min_mask_region_area": -5}, "min_mask_region_area must be an integer >= 0"),
    ],
    ids=[
        "no_grid", "both_grids", "grid_shape", "grid_range", "grid_count", "points_per_side_zero",
        "points_per_batch_float", "output_mode", "pred_iou_thresh", "stability_thresh", "box_nms", "crop_nms_str",
        "overlap", "offset", "crop_layers", "downscale", "min_area",
    ],
)
def test_generator_rejects_bad_arguments(random_model, kwargs, message):
    with pytest.raises(ValueError, match=message):
        SamAutomaticMaskGenerator(random_model, **kwargs)


def test_generator_predictor_must_wrap_the_model(random_model):
    other = build_sam("vit_t")
    with pytest.raises(ValueError, match="predictor must wrap the same model"):
        SamAutomaticMaskGenerator(random_model, predictor=SamPredictor(other))
    with pytest.raises(TypeError, match="predictor must be a SamPredictor"):
        SamAutomaticMaskGenerator(random_model, predictor=object())


def test_generate_rejects_bad_image(random_model):
    with pytest.raises(TypeError, match="image must have dtype uint8"):
        SamAutomaticMaskGenerator(random_model).generate(np.zeros((8, 8, 3), dtype=np.float64))
