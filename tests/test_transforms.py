"""ResizeLongestSide against the official transform's recorded outputs."""
from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

from fastsam.utils.transforms import ResizeLongestSide


@pytest.fixture(scope="module")
def transform():
    return ResizeLongestSide(1024)


def test_resized_images_are_bit_identical_to_official(transform, fixture_images, official_meta, predictor_golden):
    for i, image in enumerate(fixture_images):
        resized = transform.apply_image(image)
        record = official_meta["images"][i]
        assert resized.dtype == np.uint8
        assert list(resized.shape) == record["resized_shape"]
        assert list(resized.shape[:2]) == predictor_golden[f"img{i}__input_size"].tolist()
        assert hashlib.sha256(np.ascontiguousarray(resized).tobytes()).hexdigest() == record["resized_uint8_sha256"]


def _original_size(golden, key):
    return tuple(int(v) for v in golden[key.split("__")[0] + "__original_size"])


def test_point_and_box_transforms_match_official(transform, predictor_golden):
    checked = 0
    for key in predictor_golden:
        size = _original_size(predictor_golden, key)
        if key.endswith("__point_coords_transformed"):
            source = predictor_golden[key.replace("_transformed", "")]
            np.testing.assert_allclose(transform.apply_coords(source, size), predictor_golden[key], rtol=0, atol=1e-9)
        elif key.endswith("__box_transformed"):
            source = predictor_golden[key.replace("_transformed", "")]
            ours = transform.apply_boxes(source[None], size).reshape(-1)
            np.testing.assert_allclose(ours, predictor_golden[key], rtol=0, atol=1e-9)
        elif key.endswith("__boxes_transformed"):
            source = torch.from_numpy(predictor_golden[key.replace("_transformed", "")])
            ours = transform.apply_boxes_torch(source, size).numpy()
            np.testing.assert_allclose(ours, predictor_golden[key], rtol=0, atol=1e-4)
        else:
            continue
        checked += 1
    assert checked >= 3 * 7


def test_torch_coords_agree_with_numpy(transform):
    coords = np.array([[[0.0, 0.0], [1799.5, 1199.25], [10.0, 700.0]]])
    size = (1200, 1800)
    ours = transform.apply_coords_torch(torch.from_numpy(coords), size)
    assert ours.dtype == torch.float32
    np.testing.assert_allclose(ours.numpy(), transform.apply_coords(coords, size), rtol=1e-6)
    boxes = np.array([[5.0, 6.0, 700.0, 800.0]])
    torch_boxes = transform.apply_boxes_torch(torch.from_numpy(boxes), size).numpy()
    np.testing.assert_allclose(torch_boxes, transform.apply_boxes(boxes, size), rtol=1e-6)


def test_apply_image_torch_is_close_to_pil_resize(transform):
    from fastsam.demo_image import make_demo_image

    # Patterned shapes on a textured background: enough fine detail that an unfiltered resize is far off
    # (bilinear without antialiasing: mean difference ~4 here).
    image = make_demo_image(1200, 1800, seed=1)
    expected = transform.apply_image(image).astype(np.float32)
    tensor = torch.from_numpy(np.array(image)).permute(2, 0, 1)[None].float()
    ours = transform.apply_image_torch(tensor)[0].permute(1, 2, 0).numpy()
    assert ours.shape == expected.shape
    # Different (but both antialiased bilinear) kernels: close, not identical.
    assert np.abs(ours - expected).mean() < 1.0


def test_preprocess_shape_rounds_half_up():
    assert ResizeLongestSide.get_preprocess_shape(2, 4, 5) == (3, 5)  # 2.5 -> 3, not banker's 2
    assert ResizeLongestSide.get_preprocess_shape(1200, 1800, 1024) == (683, 1024)
    assert ResizeLongestSide.get_preprocess_shape(770, 769, 1024) == (1024, 1023)


def test_apply_image_rejects_non_uint8_rgb(transform):
    with pytest.raises(ValueError, match="image must be an HxWx3 uint8 numpy array"):
        transform.apply_image(np.zeros((4, 4, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="image must be an HxWx3 uint8"):
        transform.apply_image(np.zeros((4, 4), dtype=np.uint8))


def test_target_length_must_be_positive_int():
    with pytest.raises(ValueError, match="target_length must be a positive int"):
        ResizeLongestSide(0)
