"""fastsam_rt (C++ runtime over the exported vit_t fixture) against the official MobileSAM outputs recorded in
the golden fixtures (which fastsam.SamPredictor / SamAutomaticMaskGenerator reproduce, see
test_predictor_golden.py): embeddings, predictor masks/scores/logits for every recorded prompt, the batched
box call, and the automatic mask generator; also the runtime's check of the model files against the
manifest's sha256.

Tolerances: embeddings and low-res logits 1e-3 abs (ORT vs torch float32 round-off), iou predictions 1e-3,
mean mask IoU >= 0.99; generator: mask count within 2 %, >= 95 % of masks matched at IoU >= 0.95.

The model is exported once per module with `sam-export` (or taken from $FASTSAM_RT_MODEL_DIR).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

fastsam_rt = pytest.importorskip("fastsam_rt")

PROMPTS = ("p0_point_fg", "p1_point_fg_fractional", "p2_points_fg_bg", "p3_box", "p4_box_point_bg")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, fixture_checkpoint) -> Path:
    if os.environ.get("FASTSAM_RT_MODEL_DIR"):
        return Path(os.environ["FASTSAM_RT_MODEL_DIR"])
    from click.testing import CliRunner

    from fastsam.cli.export import main as export_main

    out = tmp_path_factory.mktemp("fastsam_rt_model")
    result = CliRunner().invoke(export_main, ["--checkpoint", str(fixture_checkpoint), "--output-dir", str(out)])
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def runtime_predictors(model_dir, fixture_images):
    predictors = []
    for image in fixture_images:
        predictor = fastsam_rt.Predictor(str(model_dir), intra_op_threads=2)
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


def test_return_logits_thresholds_to_the_masks(runtime_predictors, predictor_golden):
    predictor = runtime_predictors[1]
    kwargs = _prompt_kwargs(predictor_golden, "img1__p3_box")
    masks, scores, _ = predictor.predict(**kwargs)
    logits, scores_again, _ = predictor.predict(**kwargs, return_logits=True)
    assert logits.dtype == np.float32
    assert np.array_equal(logits > predictor.mask_threshold, masks)
    assert np.array_equal(scores, scores_again)


def test_call_order_and_prompt_errors(model_dir, fixture_images):
    predictor = fastsam_rt.Predictor(str(model_dir))
    with pytest.raises(RuntimeError, match="set_image"):
        predictor.predict(point_coords=[[10, 10]], point_labels=[1])
    with pytest.raises(RuntimeError, match="set_image"):
        predictor.get_image_embedding()
    small = np.ascontiguousarray(fixture_images[1][:64, :96])
    predictor.set_image(small)
    with pytest.raises(ValueError, match="point_labels must be supplied together"):
        predictor.predict(point_coords=[[10, 10]])
    with pytest.raises(ValueError, match=r"point_labels must have shape \(N,\)"):
        predictor.predict(point_coords=[[10, 10]], point_labels=[1, 0])
    with pytest.raises(ValueError, match=r"0 \(background\) or 1 \(foreground\)"):
        predictor.predict(point_coords=[[10, 10]], point_labels=[2])
    with pytest.raises(ValueError, match=r"mask_input must have shape \(1, 256, 256\)"):
        predictor.predict(point_coords=[[10, 10]], point_labels=[1], mask_input=np.zeros((256, 256)))
    with pytest.raises(ValueError, match="XYXY"):
        predictor.predict(box=[50, 50, 10, 10])
    with pytest.raises(ValueError, match="image_format"):
        predictor.set_image(small, image_format="RGBA")
    predictor.reset_image()
    assert not predictor.is_image_set


def test_inference_releases_the_gil(model_dir, fixture_images):
    import threading

    predictor = fastsam_rt.Predictor(str(model_dir), intra_op_threads=1)
    worker = threading.Thread(target=predictor.set_image, args=(fixture_images[2],))
    ticks = 0
    worker.start()
    while worker.is_alive():  # the encoder takes seconds; Python keeps running only if the GIL is released
        ticks += 1
        worker.join(timeout=0.01)
    assert predictor.is_image_set
    assert ticks > 10


def test_bgr_input_equals_rgb_input(model_dir, fixture_images):
    small = np.ascontiguousarray(fixture_images[0][::8, ::8])
    rgb = fastsam_rt.Predictor(str(model_dir))
    rgb.set_image(small)
    bgr = fastsam_rt.Predictor(str(model_dir))
    bgr.set_image(np.ascontiguousarray(small[..., ::-1]), image_format="BGR")
    assert np.array_equal(rgb.get_image_embedding(), bgr.get_image_embedding())


@pytest.mark.parametrize("provider", ["cuda", "tensorrt"])
def test_unavailable_gpu_provider_is_a_clear_error(model_dir, provider):
    ort_name = {"cuda": "CUDAExecutionProvider", "tensorrt": "TensorrtExecutionProvider"}[provider]
    if ort_name in fastsam_rt.available_providers():
        pytest.skip(f"{ort_name} is available here; exercised by the GPU run instead")
    with pytest.raises(RuntimeError, match=f"'{provider}'.*not available"):
        fastsam_rt.Predictor(str(model_dir), provider=provider)


def _copy_export(model_dir: Path, destination: Path) -> tuple[Path, dict]:
    shutil.copytree(model_dir, destination)
    return destination, json.loads((destination / "manifest.json").read_text())


def test_model_file_changed_after_export_is_rejected_unless_verification_is_off(model_dir, tmp_path):
    copy, manifest = _copy_export(model_dir, tmp_path / "export")
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


def test_manifest_without_sha256_still_loads(model_dir, tmp_path):
    copy, manifest = _copy_export(model_dir, tmp_path / "export")
    for entry in manifest["models"].values():
        del entry["sha256"]
    (copy / "manifest.json").write_text(json.dumps(manifest))
    assert fastsam_rt.Predictor(str(copy), intra_op_threads=1).model_type == "vit_t"


def test_generator_upscales_only_kept_prompts_with_identical_output(model_dir, tmp_path, fixture_images):
    """The split decoder skips the upscaling of prompts whose masks all fail pred_iou_thresh; the result must be
    exactly what decoding every prompt gives (an export without decoder_head/decoder_masks)."""
    manifest = json.loads((model_dir / "manifest.json").read_text())
    for key in ("decoder_head", "decoder_masks"):
        del manifest["models"][key]
    for entry in manifest["models"].values():
        entry["file"] = str((model_dir / entry["file"]).resolve())
    unsplit = tmp_path / "unsplit"
    unsplit.mkdir()
    (unsplit / "manifest.json").write_text(json.dumps(manifest))
    image = np.ascontiguousarray(fixture_images[1][::2, ::2])
    settings = dict(points_per_side=6, stability_score_thresh=0.0, box_nms_thresh=1.0, output_mode="coco_rle",
                    intra_op_threads=2)
    everything = fastsam_rt.AutomaticMaskGenerator(str(unsplit), pred_iou_thresh=0.0, **settings).generate(image)
    assert len(everything) == 3 * 36
    scores = sorted(m["predicted_iou"] for m in everything)
    positive = [score for score in scores if score > 0]  # pred_iou_thresh <= 0 turns the filter off
    assert len(positive) >= 10
    # Thresholds keeping half, a few and none of the masks.
    for thresh in (positive[len(positive) // 2], positive[-4], positive[-1] + 1e-3):
        split = fastsam_rt.AutomaticMaskGenerator(str(model_dir), pred_iou_thresh=thresh, **settings)
        plain = fastsam_rt.AutomaticMaskGenerator(str(unsplit), pred_iou_thresh=thresh, **settings)
        assert split.uses_split_decoder and not plain.uses_split_decoder
        ours, reference = split.generate(image), plain.generate(image)
        assert len(ours) == sum(score > thresh for score in scores)
        assert ours == reference


def _match_generator_outputs(ours: list[dict], golden: list[dict]) -> float:
    """Fraction of golden masks with a runtime mask at IoU >= 0.95 (greedy, one-to-one)."""
    decode = fastsam_rt.decode_coco_rle
    ours_masks = [decode(m["segmentation"]) for m in ours]
    used, matched = set(), 0
    for g in golden:
        gm = decode(g["segmentation"])
        best, best_j = 0.0, None
        for j, om in enumerate(ours_masks):
            if j not in used:
                iou = float(_mask_ious(om, gm))
                if iou > best:
                    best, best_j = iou, j
        if best >= 0.95:
            used.add(best_j)
            matched += 1
    return matched / max(len(golden), 1)


@pytest.mark.slow
@pytest.mark.parametrize("golden_file", ["amg_relaxed_pps2_nonms.json", "amg_crop1_relaxed_pps8.json"])
def test_generator_matches_the_official_generator(model_dir, official_dir, fixture_images, golden_file):
    golden = json.loads((official_dir / golden_file).read_text())
    settings = golden["settings"]
    generator = fastsam_rt.AutomaticMaskGenerator(str(model_dir), **settings, intra_op_threads=2)
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
