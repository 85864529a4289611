"""fastsam_rt helpers against their references: COCO RLE vs pycocotools (byte-identical), the longest-side
resize vs PIL and the golden resized images, and the errors of the runtime's constructors.

Skips when the fastsam_rt extension is not built (pip install . or a CMake build on PYTHONPATH).
"""
from __future__ import annotations

import hashlib
import json
import os

import numpy as np
import pytest

fastsam_rt = pytest.importorskip("fastsam_rt")


def _random_masks():
    rng = np.random.default_rng(0)
    shapes = [(1, 1), (7, 3), (64, 48), (101, 77), (534, 800)]
    for h, w in shapes:
        for density in (0.0, 0.01, 0.5, 0.999, 1.0):
            yield rng.random((h, w)) < density
    # Blobby masks have long runs, exercising multi-character counts and negative deltas.
    yy, xx = np.mgrid[:300, :400]
    yield (yy - 150) ** 2 / 90**2 + (xx - 170) ** 2 / 140**2 < 1.0
    yield ((yy // 37 + xx // 53) % 2).astype(bool)


def test_coco_rle_is_byte_identical_to_pycocotools():
    from pycocotools import mask as mask_utils

    for mask in _random_masks():
        ours = fastsam_rt.encode_coco_rle(mask)
        ref = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
        assert ours["size"] == list(ref["size"])
        assert ours["counts"] == ref["counts"].decode("utf-8")
        assert np.array_equal(fastsam_rt.decode_coco_rle(ours), mask)


def test_decode_coco_rle_rejects_inconsistent_counts():
    with pytest.raises(ValueError, match="add up"):
        fastsam_rt.decode_coco_rle({"size": [3, 3], "counts": "013"})
    with pytest.raises(ValueError, match="'size' and 'counts'"):
        fastsam_rt.decode_coco_rle({"counts": "013"})


def _pil_resize_longest_side(image: np.ndarray, target: int) -> np.ndarray:
    from PIL import Image

    h, w = image.shape[:2]
    scale = target / max(h, w)
    return np.asarray(Image.fromarray(image).resize((int(w * scale + 0.5), int(h * scale + 0.5)), Image.BILINEAR))


def test_resize_longest_side_equals_pil_bilinear():
    rng = np.random.default_rng(1)
    # Upscales, and downscales of wide or square images: bit-identical.
    for h, w, target in [(37, 53, 1024), (200, 300, 128), (64, 64, 64), (5, 900, 256), (1200, 1800, 1024), (240, 250, 100)]:
        image = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
        ours, ref = fastsam_rt.resize_longest_side(image, target), _pil_resize_longest_side(image, target)
        assert ours.shape == ref.shape
        assert np.array_equal(ours, ref), f"{h}x{w}->{target}: max diff {np.abs(ours.astype(int) - ref).max()}"


def test_resize_of_tall_images_is_within_one_level_of_pil():
    # Pillow runs the vertical pass first for some tall downscales; the 8-bit intermediate then rounds
    # differently (on random noise, the worst case, about a quarter of the values differ by one level).
    rng = np.random.default_rng(2)
    for h, w, target in [(1024, 30, 100), (1093, 507, 1024), (900, 300, 256)]:
        image = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
        ours, ref = fastsam_rt.resize_longest_side(image, target), _pil_resize_longest_side(image, target)
        diff = np.abs(ours.astype(int) - ref)
        assert ours.shape == ref.shape and diff.max() <= 1 and (diff == 0).mean() > 0.5


def test_resize_matches_the_golden_resized_images(official_dir, fixture_images):
    meta = json.loads((official_dir / "meta.json").read_text())
    for image, info in zip(fixture_images, meta["images"]):
        resized = fastsam_rt.resize_longest_side(image, 1024)
        assert list(resized.shape) == info["resized_shape"]
        assert hashlib.sha256(np.ascontiguousarray(resized).tobytes()).hexdigest() == info["resized_uint8_sha256"]


def test_image_arguments_are_checked():
    with pytest.raises(TypeError, match="dtype uint8"):
        fastsam_rt.resize_longest_side(np.zeros((4, 4, 3), np.float32), 8)
    with pytest.raises(ValueError, match=r"shape \(H, W, 3\)"):
        fastsam_rt.resize_longest_side(np.zeros((4, 4), np.uint8), 8)


def test_constructor_errors_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="model directory not found"):
        fastsam_rt.Predictor(str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError, match="manifest.json not found"):
        fastsam_rt.Predictor(str(tmp_path))
    with pytest.raises(ValueError, match="provider must be 'cpu', 'cuda' or 'tensorrt'"):
        fastsam_rt.Predictor(str(tmp_path), provider="gpu")
    with pytest.raises(ValueError, match="graph_optimization"):
        fastsam_rt.Predictor(str(tmp_path), graph_optimization="max")
    with pytest.raises(ValueError, match="precision"):
        fastsam_rt.Predictor(str(tmp_path), precision="int4")
    (tmp_path / "manifest.json").write_text('{"models": {"encoder": {"file": "encoder.onnx"}}}')
    with pytest.raises(FileNotFoundError, match="encoder.onnx"):
        fastsam_rt.Predictor(str(tmp_path))
    with pytest.raises(ValueError, match="output_mode"):
        fastsam_rt.AutomaticMaskGenerator(str(tmp_path), output_mode="png")
    with pytest.raises(ValueError, match="Exactly one of points_per_side or point_grid"):
        fastsam_rt.AutomaticMaskGenerator(str(tmp_path), points_per_side=None)


def test_cpu_provider_is_listed():
    assert "CPUExecutionProvider" in fastsam_rt.available_providers()


def test_import_does_not_need_torch():
    import subprocess
    import sys

    code = "import sys, fastsam_rt; assert 'torch' not in sys.modules, 'torch imported'; print('ok')"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr
