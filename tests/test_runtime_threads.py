"""fastsam_rt under threads, per the documented contract (predictor.hpp): each thread owns its Predictor /
AutomaticMaskGenerator; concurrent calls (the GIL is released during inference) give exactly what the same
calls give one after the other."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

fastsam_rt = pytest.importorskip("fastsam_rt")

THREADS = 4
# Model hashing is tested elsewhere; skipping it here keeps the 16 model loads quick.


def _image(seed: int) -> np.ndarray:
    gen = np.random.default_rng(seed)
    image = gen.integers(0, 256, size=(96 + 8 * seed, 128, 3), dtype=np.uint8)
    image[20:60, 30:80] = (200, 40 + 30 * seed, 30)  # one flat object, different per thread
    return image


def _predictor_work(model_dir, seed: int) -> list[np.ndarray]:
    """set_image, then point, box and batched prompts: every output array, in order."""
    predictor = fastsam_rt.Predictor(str(model_dir), intra_op_threads=1, verify_model_files=False)
    image = _image(seed)
    predictor.set_image(image)
    h, w = image.shape[:2]
    outputs = []
    outputs += predictor.predict(point_coords=np.array([[50.0, 40.0]]), point_labels=np.array([1]))
    outputs += predictor.predict(box=np.array([30.0, 20.0, 80.0, 60.0]), multimask_output=False, return_logits=True)
    outputs += predictor.predict_boxes(np.array([[0, 0, w - 1, h - 1], [10, 10, 40, 50]], dtype=np.float32))
    outputs.append(predictor.get_image_embedding())
    return outputs


def _generator_work(model_dir, seed: int) -> list:
    generator = fastsam_rt.AutomaticMaskGenerator(str(model_dir), points_per_side=2, pred_iou_thresh=0.0,
                                                  stability_score_thresh=0.0, output_mode="coco_rle",
                                                  intra_op_threads=1, verify_model_files=False)
    return [(r["segmentation"]["counts"], r["bbox"], r["predicted_iou"]) for r in generator.generate(_image(seed))]


def _run_both(work, model_dir):
    serial = [work(model_dir, seed) for seed in range(THREADS)]
    with ThreadPoolExecutor(THREADS) as pool:
        threaded = list(pool.map(lambda seed: work(model_dir, seed), range(THREADS)))
    return serial, threaded


def test_predictors_in_threads_match_serial(standalone_dir):
    serial, threaded = _run_both(_predictor_work, standalone_dir)
    for seed, (expected, actual) in enumerate(zip(serial, threaded)):
        assert len(expected) == len(actual)
        for a, b in zip(expected, actual):
            assert a.dtype == b.dtype and np.array_equal(a, b), f"thread {seed} differs from the serial run"
    # The images differ per thread, so a mix-up between threads would not go unnoticed.
    assert not np.array_equal(serial[0][-1], serial[1][-1])


def test_generators_in_threads_match_serial(standalone_dir):
    serial, threaded = _run_both(_generator_work, standalone_dir)
    assert all(records for records in serial)
    assert threaded == serial
