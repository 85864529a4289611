"""fastsam_rt (the C++ runtime) checked two ways.

Against the official MobileSAM outputs recorded in the golden fixtures, on the exported vit_t fixture (these skip
without ../shared): embeddings, predictor masks/scores/logits for every recorded prompt, the batched box call, and
the automatic mask generator. Tolerances: embeddings and low-res logits 1e-3 abs (ORT vs torch float32
round-off), iou predictions 1e-3, mean mask IoU >= 0.99; generator: mask count within 2 %, >= 95 % of masks
matched at IoU >= 0.95.

Everything else runs on the standalone model the test run exports itself (tests/standalone_model.py: seeded
random weights, image size 256), so it needs no ../shared: fastsam_rt's Predictor and AutomaticMaskGenerator
against fastsam's SamPredictor / SamAutomaticMaskGenerator with the same weights on generated scenes, call order
and prompt errors, GIL release, BGR input, GPU provider errors, and the check of the model files against the
manifest's sha256. Tolerances there: embeddings and low-res logits 1e-3 of the reference's largest magnitude
(the random model's logits are ~0.3), iou predictions 1e-3 abs, mask IoU >= 0.99 per mask; generator: the same
number of masks, >= 95 % matched at IoU >= 0.95.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

fastsam_rt = pytest.importorskip("fastsam_rt")

PROMPTS = ("p0_point_fg", "p1_point_fg_fractional", "p2_points_fg_bg", "p3_box", "p4_box_point_bg")


@pytest.fixture(scope="module")
def runtime_predictors(fixture_export_dir, fixture_images):
    predictors = []
    for image in fixture_images:
        predictor = fastsam_rt.Predictor(str(fixture_export_dir), intra_op_threads=2)
        predictor.set_image(image)
        predictors.append(predictor)
    return predictors


def _mask_ious(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    axes = tuple(range(a.ndim - 2, a.ndim))
    inter = np.logical_and(a, b).sum(axes)
    union = np.logical_or(a, b).sum(axes)
    return np.where(union > 0, inter / np.maximum(union, 1), 1.0)


def _logits_close(ours: np.ndarray, golden: dict, key: str) -> None:
    if key in golden:
        np.testing.assert_allclose(ours, golden[key], atol=1e-3, rtol=0)
    else:
        np.testing.assert_allclose(ours[..., ::4, ::4], golden[key + "_s4"], atol=1e-3, rtol=0)


def _prompt_kwargs(golden: dict, prefix: str) -> dict:
    kwargs = {}
    if prefix + "__point_coords" in golden:
        kwargs["point_coords"] = golden[prefix + "__point_coords"]
        kwargs["point_labels"] = golden[prefix + "__point_labels"]
    if prefix + "__box" in golden:
        kwargs["box"] = golden[prefix + "__box"]
    return kwargs


def test_sizes_and_embeddings_match_golden(runtime_predictors, predictor_golden):
    for i, predictor in enumerate(runtime_predictors):
        assert predictor.original_size == tuple(predictor_golden[f"img{i}__original_size"])
        assert predictor.input_size == tuple(predictor_golden[f"img{i}__input_size"])
        _logits_close(predictor.get_image_embedding(), predictor_golden, f"img{i}__embedding")


@pytest.mark.parametrize("multimask", [True, False])
def test_predict_matches_golden_for_every_prompt(runtime_predictors, predictor_golden, multimask):
    mm = "mm1" if multimask else "mm0"
    ious = []
    for i, predictor in enumerate(runtime_predictors):
        for prompt in PROMPTS:
            prefix = f"img{i}__{prompt}"
            masks, scores, logits = predictor.predict(**_prompt_kwargs(predictor_golden, prefix), multimask_output=multimask)
            golden_masks = predictor_golden[f"{prefix}__{mm}__masks"]
            assert masks.dtype == bool and masks.shape == golden_masks.shape
            assert scores.dtype == np.float32 and logits.shape == (masks.shape[0], 256, 256)
            np.testing.assert_allclose(scores, predictor_golden[f"{prefix}__{mm}__iou_predictions"], atol=1e-3, rtol=0)
            _logits_close(logits, predictor_golden, f"{prefix}__{mm}__low_res_logits")
            ious.extend(_mask_ious(masks, golden_masks).tolist())
    assert np.mean(ious) >= 0.99, f"mean IoU {np.mean(ious):.4f}"
    assert min(ious) >= 0.95, f"worst IoU {min(ious):.4f}"


def test_predict_with_mask_input_matches_golden(runtime_predictors, predictor_golden):
    for i, predictor in enumerate(runtime_predictors):
        prefix = f"img{i}__p5_point_with_mask_input"
        # As recorded: the low-res logits of p0 (multimask) at the best score feed the next call.
        _, scores, logits = predictor.predict(**_prompt_kwargs(predictor_golden, f"img{i}__p0_point_fg"))
        mask_input = logits[np.argmax(scores)][None]
        for mm, multimask in (("mm1", True), ("mm0", False)):
            masks, scores, _ = predictor.predict(
                **_prompt_kwargs(predictor_golden, prefix), mask_input=mask_input, multimask_output=multimask
            )
            np.testing.assert_allclose(scores, predictor_golden[f"{prefix}__{mm}__iou_predictions"], atol=1e-3, rtol=0)
            assert _mask_ious(masks, predictor_golden[f"{prefix}__{mm}__masks"]).min() >= 0.99


def test_predict_boxes_matches_the_golden_batched_call(runtime_predictors, predictor_golden):
    for i, predictor in enumerate(runtime_predictors):
        prefix = f"img{i}__batch4_boxes"
        for mm, multimask in (("mm1", True), ("mm0", False)):
            masks, scores, logits = predictor.predict_boxes(predictor_golden[f"{prefix}__boxes"], multimask_output=multimask)
            golden_masks = predictor_golden[f"{prefix}__{mm}__masks"]
            assert masks.shape == golden_masks.shape and logits.shape[:2] == golden_masks.shape[:2]
            np.testing.assert_allclose(scores, predictor_golden[f"{prefix}__{mm}__iou_predictions"], atol=1e-3, rtol=0)
            assert _mask_ious(masks, golden_masks).mean() >= 0.99


def _match_generator_outputs(ours: list[dict], expected: list[dict]) -> float:
    """Fraction of the expected masks with a runtime mask at IoU >= 0.95 (greedy, one-to-one)."""
    decode = fastsam_rt.decode_coco_rle
    ours_masks = [decode(m["segmentation"]) for m in ours]
    used, matched = set(), 0
    for e in expected:
        em = decode(e["segmentation"])
        best, best_j = 0.0, None
        for j, om in enumerate(ours_masks):
            if j not in used:
                iou = float(_mask_ious(om, em))
                if iou > best:
                    best, best_j = iou, j
        if best >= 0.95:
            used.add(best_j)
            matched += 1
    return matched / max(len(expected), 1)


@pytest.mark.slow
@pytest.mark.parametrize("golden_file", ["amg_relaxed_pps2_nonms.json", "amg_crop1_relaxed_pps8.json"])
def test_generator_matches_the_official_generator(fixture_export_dir, official_dir, fixture_images, golden_file):
    golden = json.loads((official_dir / golden_file).read_text())
    settings = golden["settings"]
    generator = fastsam_rt.AutomaticMaskGenerator(str(fixture_export_dir), **settings, intra_op_threads=2)
    ours = generator.generate(fixture_images[1])
    expected = golden["annotations"]
    assert abs(len(ours) - len(expected)) <= 0.02 * len(expected)
    assert _match_generator_outputs(ours, expected) >= 0.95
    for key in ("segmentation", "area", "bbox", "predicted_iou", "point_coords", "stability_score", "crop_box"):
        assert all(key in m for m in ours)
    by_point = {tuple(m["point_coords"][0]): m for m in expected}
    for m in ours:
        ref = by_point.get(tuple(m["point_coords"][0]))
        if ref is not None and m["segmentation"]["counts"] == ref["segmentation"]["counts"]:
            assert m["area"] == ref["area"] and m["bbox"] == ref["bbox"] and m["crop_box"] == ref["crop_box"]
            assert abs(m["predicted_iou"] - ref["predicted_iou"]) < 1e-3


# ---- on the standalone model: no ../shared needed ---------------------------------------------------------------

# Landscape and portrait scenes (seed, height, width): both resize paths of the preprocessing.
SCENES = ((3, 180, 240), (4, 200, 150))
# The random model's masks each cover most of the image, so any box NMS below 1.0 keeps a single mask: NMS is off.
# Its logits are ~0.3, so the stability offset is lowered; the IoU and stability filters drop about 2 of 3 masks.
GENERATOR_SETTINGS = dict(points_per_side=4, pred_iou_thresh=0.05, stability_score_thresh=0.2,
                          stability_score_offset=0.05, box_nms_thresh=1.0, output_mode="coco_rle")


@pytest.fixture(scope="module")
def scenes() -> list[np.ndarray]:
    from fastsam.data.synthetic import make_scene

    return [make_scene(np.random.default_rng(seed), height, width, num_objects=3)[0] for seed, height, width in SCENES]


@pytest.fixture(scope="module")
def predictor_pairs(standalone_dir, standalone_sam, scenes) -> list[tuple]:
    """(fastsam_rt.Predictor, fastsam.SamPredictor) per scene: the same weights, set_image already run."""
    from fastsam import SamPredictor

    pairs = []
    for image in scenes:
        ours = fastsam_rt.Predictor(str(standalone_dir), intra_op_threads=2)
        ours.set_image(image)
        reference = SamPredictor(standalone_sam)
        reference.set_image(image)
        pairs.append((ours, reference))
    return pairs


def _assert_close_to_magnitude(ours: np.ndarray, reference: np.ndarray, what: str) -> None:
    bound = 1e-3 * float(np.abs(reference).max())
    worst = float(np.abs(ours - reference).max())
    assert worst <= bound, f"{what}: max|diff| {worst:.3e} > {bound:.3e} (1e-3 of the reference's magnitude)"


def _assert_same_prediction(ours: tuple, reference: tuple, what: str) -> None:
    masks, scores, logits = ours
    ref_masks, ref_scores, ref_logits = reference
    assert masks.dtype == bool and masks.shape == ref_masks.shape, what
    assert scores.dtype == np.float32 and logits.shape == ref_logits.shape, what
    np.testing.assert_allclose(scores, ref_scores, atol=1e-3, rtol=0, err_msg=what)
    _assert_close_to_magnitude(logits, ref_logits, what)
    worst = _mask_ious(masks, ref_masks).min()
    assert worst >= 0.99, f"{what}: worst mask IoU {worst:.4f}"


def _prompts(height: int, width: int) -> dict[str, dict]:
    """Single-image prompts in pixels of a height x width scene, all inside the image."""
    point = np.array([[width * 0.5, height * 0.45]])
    box = np.array([width * 0.2, height * 0.15, width * 0.75, height * 0.8])
    return {
        "point": dict(point_coords=point, point_labels=np.array([1])),
        "points_fg_bg": dict(point_coords=np.vstack([point, [[width * 0.1, height * 0.9]]]), point_labels=np.array([1, 0])),
        "box": dict(box=box),
        "box_point": dict(box=box, point_coords=np.array([[width * 0.3, height * 0.3]]), point_labels=np.array([0])),
    }


def test_standalone_sizes_and_embedding_match_pytorch(predictor_pairs, scenes):
    for (ours, reference), image in zip(predictor_pairs, scenes):
        assert ours.image_size == 256
        assert ours.original_size == reference.original_size == image.shape[:2]
        assert ours.input_size == tuple(reference.input_size)
        _assert_close_to_magnitude(ours.get_image_embedding(), reference.get_image_embedding().numpy(), "embedding")


@pytest.mark.parametrize("multimask", [True, False])
def test_standalone_predict_matches_pytorch(predictor_pairs, scenes, multimask):
    for (ours, reference), image in zip(predictor_pairs, scenes):
        outputs = {}
        for name, kwargs in _prompts(*image.shape[:2]).items():
            outputs[name] = reference.predict(**kwargs, multimask_output=multimask)
            _assert_same_prediction(ours.predict(**kwargs, multimask_output=multimask), outputs[name],
                                    f"{name}, multimask={multimask}")
        # The prompts lead to different logits, so a runtime ignoring part of a prompt would fail above.
        assert np.abs(outputs["box"][2] - outputs["box_point"][2]).max() > 1e-2
        assert np.abs(outputs["point"][2] - outputs["points_fg_bg"][2]).max() > 1e-2


def test_standalone_predict_with_mask_input_matches_pytorch(predictor_pairs, scenes):
    for (ours, reference), image in zip(predictor_pairs, scenes):
        point = _prompts(*image.shape[:2])["point"]
        _, scores, logits = reference.predict(**point)
        mask_input = logits[np.argmax(scores)][None]  # the refinement loop: the best previous logits fed back
        for multimask in (True, False):
            kwargs = dict(point, mask_input=mask_input, multimask_output=multimask)
            with_mask = reference.predict(**kwargs)
            _assert_same_prediction(ours.predict(**kwargs), with_mask, f"mask input, multimask={multimask}")
            without = reference.predict(**point, multimask_output=multimask)
            assert np.abs(with_mask[2] - without[2]).max() > 1e-2  # the mask input changes the result


def test_standalone_predict_boxes_matches_pytorch(predictor_pairs, scenes):
    import torch

    for (ours, reference), image in zip(predictor_pairs, scenes):
        h, w = image.shape[:2]
        boxes = np.array([[0.1 * w, 0.1 * h, 0.5 * w, 0.6 * h], [0.4 * w, 0.3 * h, 0.95 * w, 0.9 * h],
                          [0.2 * w, 0.2 * h, 0.8 * w, 0.8 * h]], dtype=np.float32)
        transformed = reference.transform.apply_boxes_torch(torch.as_tensor(boxes), reference.original_size)
        for multimask in (True, False):
            expected = [t.numpy() for t in reference.predict_torch(None, None, transformed, multimask_output=multimask)]
            _assert_same_prediction(ours.predict_boxes(boxes, multimask_output=multimask), expected,
                                    f"batched boxes, multimask={multimask}")
            assert np.abs(expected[2][0] - expected[2][1]).max() > 1e-2  # one result per box, not one repeated


def test_return_logits_thresholds_to_the_masks(predictor_pairs, scenes):
    predictor = predictor_pairs[0][0]
    box = _prompts(*scenes[0].shape[:2])["box"]
    masks, scores, _ = predictor.predict(**box)
    logits, scores_again, _ = predictor.predict(**box, return_logits=True)
    assert logits.dtype == np.float32
    assert np.array_equal(logits > predictor.mask_threshold, masks)
    assert np.array_equal(scores, scores_again)


def test_standalone_generator_matches_pytorch(standalone_dir, standalone_sam, scenes):
    from fastsam import SamAutomaticMaskGenerator

    image = scenes[0]
    ours = fastsam_rt.AutomaticMaskGenerator(str(standalone_dir), **GENERATOR_SETTINGS, intra_op_threads=2)
    masks = ours.generate(image)
    expected = SamAutomaticMaskGenerator(standalone_sam, **GENERATOR_SETTINGS).generate(image)
    # Masks were produced, and the filters removed some of the 3 x 16.
    assert 5 <= len(expected) < 3 * 16, len(expected)
    assert len(masks) == len(expected)
    assert _match_generator_outputs(masks, expected) >= 0.95
    for key in ("segmentation", "area", "bbox", "predicted_iou", "point_coords", "stability_score", "crop_box"):
        assert all(key in m for m in masks)


def test_call_order_and_prompt_errors(standalone_dir, scenes):
    predictor = fastsam_rt.Predictor(str(standalone_dir))
    with pytest.raises(RuntimeError, match="set_image"):
        predictor.predict(point_coords=[[10, 10]], point_labels=[1])
    with pytest.raises(RuntimeError, match="set_image"):
        predictor.get_image_embedding()
    small = np.ascontiguousarray(scenes[0][:64, :96])
    predictor.set_image(small)
    with pytest.raises(ValueError, match="point_labels must be supplied together"):
        predictor.predict(point_coords=[[10, 10]])
    with pytest.raises(ValueError, match=r"point_labels must have shape \(N,\)"):
        predictor.predict(point_coords=[[10, 10]], point_labels=[1, 0])
    with pytest.raises(ValueError, match=r"0 \(background\) or 1 \(foreground\)"):
        predictor.predict(point_coords=[[10, 10]], point_labels=[2])
    # The low-res size is image_size / 4 (64 here); the 1024-pixel models' 256 x 256 is refused by name.
    with pytest.raises(ValueError, match=r"mask_input must have shape \(1, 64, 64\)"):
        predictor.predict(point_coords=[[10, 10]], point_labels=[1], mask_input=np.zeros((1, 256, 256)))
    with pytest.raises(ValueError, match="XYXY"):
        predictor.predict(box=[50, 50, 10, 10])
    with pytest.raises(ValueError, match="image_format"):
        predictor.set_image(small, image_format="RGBA")
    # Prompts outside the 96 x 64 image (swapped XY, another image's coordinates) are refused, not decoded.
    with pytest.raises(ValueError, match=r"is outside the 96x64 image"):
        predictor.predict(point_coords=[[10, 80]], point_labels=[1])
    with pytest.raises(ValueError, match=r"is outside the 96x64 image"):
        predictor.predict(box=[10, 10, 120, 40])
    with pytest.raises(ValueError, match=r"must hold finite numbers"):
        predictor.predict(point_coords=[[float("nan"), 10]], point_labels=[1])
    assert predictor.predict(point_coords=[[96, 64]], point_labels=[1])[0].shape == (3, 64, 96)  # edges are inside
    predictor.reset_image()
    assert not predictor.is_image_set


def test_inference_releases_the_gil(standalone_dir, scenes):
    import threading

    predictor = fastsam_rt.Predictor(str(standalone_dir), intra_op_threads=1)

    def encode_three_times():  # ~0.2 s each here
        for _ in range(3):
            predictor.set_image(scenes[1])

    worker = threading.Thread(target=encode_three_times)
    ticks = 0
    worker.start()
    while worker.is_alive():  # Python keeps running during the encoder only if the GIL is released
        ticks += 1
        worker.join(timeout=0.01)
    assert predictor.is_image_set
    # Holding the GIL would allow about one tick between calls (~3); releasing it gives ~60.
    assert ticks > 20, ticks


def test_bgr_input_equals_rgb_input(standalone_dir, scenes):
    rgb = fastsam_rt.Predictor(str(standalone_dir))
    rgb.set_image(scenes[0])
    bgr = fastsam_rt.Predictor(str(standalone_dir))
    bgr.set_image(np.ascontiguousarray(scenes[0][..., ::-1]), image_format="BGR")
    assert np.array_equal(rgb.get_image_embedding(), bgr.get_image_embedding())
    swapped = fastsam_rt.Predictor(str(standalone_dir))
    swapped.set_image(np.ascontiguousarray(scenes[0][..., ::-1]))  # the same bytes read as RGB: a different image
    assert not np.array_equal(rgb.get_image_embedding(), swapped.get_image_embedding())


@pytest.mark.parametrize("provider", ["cuda", "tensorrt"])
def test_unavailable_gpu_provider_is_a_clear_error(standalone_dir, provider):
    ort_name = {"cuda": "CUDAExecutionProvider", "tensorrt": "TensorrtExecutionProvider"}[provider]
    if ort_name in fastsam_rt.available_providers():
        pytest.skip(f"{ort_name} is available here; exercised by the GPU run instead")
    for make in (fastsam_rt.Predictor, fastsam_rt.AutomaticMaskGenerator):
        with pytest.raises(RuntimeError, match=f"'{provider}'.*not available") as err:
            make(str(standalone_dir), provider=provider)
        message = str(err.value)  # one line naming the provider and what to install
        assert "\n" not in message and ort_name in message and "onnxruntime-gpu" in message, message


def _copy_export(model_dir: Path, destination: Path) -> tuple[Path, dict]:
    shutil.copytree(model_dir, destination)
    return destination, json.loads((destination / "manifest.json").read_text())


def test_model_file_changed_after_export_is_rejected_unless_verification_is_off(standalone_dir, tmp_path):
    copy, manifest = _copy_export(standalone_dir, tmp_path / "export")
    decoder = copy / manifest["models"]["decoder_batched"]["file"]
    data = bytearray(decoder.read_bytes())
    data[len(data) // 2] ^= 0xFF  # inside the weights: ONNX Runtime still loads the file
    decoder.write_bytes(bytes(data))
    expected = manifest["models"]["decoder_batched"]["sha256"]
    actual = hashlib.sha256(data).hexdigest()
    for construct in (fastsam_rt.Predictor, fastsam_rt.AutomaticMaskGenerator):
        with pytest.raises(RuntimeError, match="decoder_batched.onnx") as error:
            construct(str(copy), intra_op_threads=1)
        message = str(error.value)
        assert "sha256" in message and expected in message and actual in message and "sam-export" in message
    assert fastsam_rt.Predictor(str(copy), intra_op_threads=1, verify_model_files=False).model_type == "vit_t"


def test_manifest_without_sha256_still_loads(standalone_dir, tmp_path):
    copy, manifest = _copy_export(standalone_dir, tmp_path / "export")
    for entry in manifest["models"].values():
        del entry["sha256"]
    (copy / "manifest.json").write_text(json.dumps(manifest))
    assert fastsam_rt.Predictor(str(copy), intra_op_threads=1).model_type == "vit_t"


def test_generator_upscales_only_kept_prompts_with_identical_output(standalone_dir, tmp_path, scenes):
    """The split decoder skips the upscaling of prompts whose masks all fail pred_iou_thresh; the result must be
    exactly what decoding every prompt gives (an export without decoder_head/decoder_masks)."""
    manifest = json.loads((standalone_dir / "manifest.json").read_text())
    for key in ("decoder_head", "decoder_masks"):
        del manifest["models"][key]
        for roles in manifest.get("variants", {}).values():
            roles.pop(key, None)
    for entry in manifest["models"].values():
        entry["file"] = str((standalone_dir / entry["file"]).resolve())
    unsplit = tmp_path / "unsplit"
    unsplit.mkdir()
    (unsplit / "manifest.json").write_text(json.dumps(manifest))
    image = scenes[0]
    settings = dict(points_per_side=6, stability_score_thresh=0.0, box_nms_thresh=1.0, output_mode="coco_rle",
                    intra_op_threads=2)
    everything = fastsam_rt.AutomaticMaskGenerator(str(unsplit), pred_iou_thresh=0.0, **settings).generate(image)
    assert len(everything) == 3 * 36
    scores = sorted(m["predicted_iou"] for m in everything)
    positive = [score for score in scores if score > 0]  # pred_iou_thresh <= 0 turns the filter off
    assert len(positive) >= 10
    # Thresholds keeping half, a few and none of the masks.
    for thresh in (positive[len(positive) // 2], positive[-4], positive[-1] + 1e-3):
        split = fastsam_rt.AutomaticMaskGenerator(str(standalone_dir), pred_iou_thresh=thresh, **settings)
        plain = fastsam_rt.AutomaticMaskGenerator(str(unsplit), pred_iou_thresh=thresh, **settings)
        assert split.uses_split_decoder and not plain.uses_split_decoder
        ours, reference = split.generate(image), plain.generate(image)
        assert len(ours) == sum(score > thresh for score in scores)
        assert ours == reference
