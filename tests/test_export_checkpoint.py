"""sam-export on a checkpoint written by the trainer: settings from the checkpoint, scale-aware parity
tolerances that still catch a small real error, and an output directory that only changes on success.

The checkpoint comes from fastsam's trainer (one step, vit_t at 256) with its mask-hypernetwork output
layers scaled by 100, so its mask logits reach tens, as a trained model's do.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from fastsam.cli.export import main as export_main
from fastsam.export import io_spec, manifest, parity
from fastsam.export.output_dir import STAGING_PREFIX
from fastsam.export.settings import resolve_settings

TRAINED_SIZE = 256
TRAINED_THRESHOLD = 0.25
LOGIT_SCALE = 100.0


def _run_cli(args: list[str]):
    return CliRunner().invoke(export_main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def trainer_checkpoint(tmp_path_factory) -> Path:
    from fastsam.data.synthetic import generate_synthetic_dataset
    from fastsam.train.config import config_from_dict
    from fastsam.train.trainer import train

    root = tmp_path_factory.mktemp("trained")
    data = generate_synthetic_dataset(root / "data", num_train=2, num_val=1, size=TRAINED_SIZE, seed=0)
    cfg = config_from_dict(dict(
        output_dir=str(root / "runs"), train_img_dir=str(data / "train/images"),
        train_mask_dir=str(data / "train/masks"), val_img_dir=str(data / "val/images"),
        val_mask_dir=str(data / "val/masks"), img_size=TRAINED_SIZE, mask_threshold=TRAINED_THRESHOLD,
        freeze={"image_encoder": True, "prompt_encoder": True}, batch_size=1, num_epochs=1,
        max_steps_per_epoch=1, num_val_overlays=0, seed=0,
    ))
    train(cfg)
    saved = torch.load(Path(cfg.run_dir) / "best_model.pth", map_location="cpu", weights_only=True)
    assert saved["config"]["img_size"] == TRAINED_SIZE and saved["model_type"] == "vit_t"
    for key in saved["model"]:
        # The last layer of each hypernetwork MLP: the mask logits are linear in it.
        if key.startswith("mask_decoder.output_hypernetworks_mlps.") and ".layers.2." in key:
            saved["model"][key] = saved["model"][key] * LOGIT_SCALE
    path = root / "trained_large_logits.pth"
    torch.save(saved, path)
    return path


@pytest.fixture(scope="module")
def trainer_export(trainer_checkpoint, tmp_path_factory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("trainer_export") / "model"
    result = _run_cli(["--checkpoint", trainer_checkpoint, "--output-dir", out])
    assert result.exit_code == 0, result.output
    return out, result.output


def _trained_model(checkpoint: Path):
    from fastsam.build_sam import sam_model_registry
    from fastsam.checkpoint import read_checkpoint

    state_dict, _ = read_checkpoint(checkpoint)
    model = sam_model_registry["vit_t"](checkpoint=None, image_size=TRAINED_SIZE)
    model.load_state_dict(state_dict)
    model.mask_threshold = TRAINED_THRESHOLD
    return model.eval()


def _snapshot(directory: Path) -> dict[str, tuple[str, int]]:
    return {p.name: (manifest.sha256_file(p), p.stat().st_mtime_ns) for p in sorted(directory.iterdir())}


def _leftover_staging(parent: Path) -> list[str]:
    return [p.name for p in parent.iterdir() if p.name.startswith(STAGING_PREFIX)]


@pytest.mark.slow
def test_trainer_checkpoint_exports_with_its_image_size_and_threshold(trainer_export):
    out, output = trainer_export
    written = manifest.read_manifest(out)
    assert written["image_size"] == TRAINED_SIZE
    assert written["mask_threshold"] == TRAINED_THRESHOLD
    assert written["model_type"] == "vit_t"
    assert written["settings_source"] == {"model_type": "checkpoint", "image_size": "checkpoint",
                                          "mask_threshold": "checkpoint"}
    assert f"image_size {TRAINED_SIZE} (checkpoint)" in output and f"mask_threshold {TRAINED_THRESHOLD} (checkpoint)" in output
    assert all(entry["ok"] for entry in written["parity"].values())
    # The logits really are large: the gate passed by scaling its limit, not because the outputs were small.
    assert written["parity"]["decoder_batched"]["max_reference"]["low_res_masks"] > 10
    assert written["parity"]["decoder"]["masks"]["masks"]["differing_pixels"] == 0
    embedding_side = TRAINED_SIZE // 16
    assert written["models"]["decoder_batched"]["inputs"][0]["shape"] == [1, 256, embedding_side, embedding_side]


@pytest.mark.slow
def test_runtime_reads_image_size_and_threshold_from_the_manifest(trainer_export):
    fastsam_rt = pytest.importorskip("fastsam_rt")
    predictor = fastsam_rt.Predictor(str(trainer_export[0]))
    assert (predictor.image_size, predictor.mask_threshold) == (TRAINED_SIZE, TRAINED_THRESHOLD)
    predictor.set_image(np.zeros((120, 200, 3), dtype=np.uint8))
    masks, _, low_res = predictor.predict(point_coords=np.array([[100.0, 60.0]]), point_labels=np.array([1]))
    assert masks.shape == (3, 120, 200) and low_res.shape == (3, TRAINED_SIZE // 4, TRAINED_SIZE // 4)


@pytest.mark.slow
def test_parity_gate_catches_a_small_real_decoder_error(trainer_checkpoint, trainer_export):
    out, _ = trainer_export
    model = _trained_model(trainer_checkpoint)
    embeddings = {"random": np.random.default_rng(1).normal(size=(1, 256, 16, 16)).astype(np.float32)}
    assert not parity.failures(parity.check_decoder_batched(model, out / "decoder_batched.onnx", embeddings))
    with torch.no_grad():  # 0.1 % on one weight tensor of the decoder's last attention
        model.mask_decoder.transformer.final_attn_token_to_image.out_proj.weight.mul_(1.001)
    failed = parity.failures(parity.check_decoder_batched(model, out / "decoder_batched.onnx", embeddings))
    assert failed and {c.output for c in failed} == {io_spec.LOW_RES_MASKS}
    assert all(c.max_abs > c.limit for c in failed)


@pytest.mark.slow
def test_failed_reexport_leaves_the_earlier_export_untouched(trainer_export, tmp_path, monkeypatch):
    out = tmp_path / "model"
    shutil.copytree(trainer_export[0], out)
    before = _snapshot(out)
    monkeypatch.setitem(parity.TOLERANCES, "fp32", parity.Tolerance(atol=0.0, rtol=0.0))
    result = _run_cli(["--random-weights", "--image-size", 128, "--no-simplify", "--output-dir", out])
    assert result.exit_code == 1 and "parity gate failed" in result.output, result.output
    assert _snapshot(out) == before
    assert not _leftover_staging(tmp_path)


@pytest.mark.slow
def test_failed_export_creates_no_output_dir(tmp_path, monkeypatch):
    monkeypatch.setitem(parity.TOLERANCES, "fp32", parity.Tolerance(atol=0.0, rtol=0.0))
    result = _run_cli(["--random-weights", "--image-size", 128, "--no-simplify", "--output-dir", tmp_path / "new"])
    assert result.exit_code == 1, result.output
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_successful_reexport_replaces_the_earlier_export(trainer_export, tmp_path):
    out = tmp_path / "model"
    shutil.copytree(trainer_export[0], out)
    (out / "notes.txt").write_text("the user's own file")
    old = json.loads((out / manifest.MANIFEST_NAME).read_text())
    # An int8 file of the old export that the new one does not write must not linger.
    (out / "encoder.int8.onnx").write_bytes(b"old")
    old["models"]["encoder_int8"] = dict(old["models"]["encoder"], file="encoder.int8.onnx")
    (out / manifest.MANIFEST_NAME).write_text(json.dumps(old))
    result = _run_cli(["--random-weights", "--image-size", 128, "--no-simplify", "--output-dir", out])
    assert result.exit_code == 0, result.output
    new = manifest.read_manifest(out)
    assert new["image_size"] == 128 and new["checkpoint"] is None
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [manifest.MANIFEST_NAME, "notes.txt", *(io_spec.variant_file(key, "fp32") for key in io_spec.EXPORTED_MODELS)])
    for entry in new["models"].values():
        assert manifest.sha256_file(out / entry["file"]) == entry["sha256"]
    assert not _leftover_staging(tmp_path)


def _assert_one_line_error(result, *fragments):
    assert result.exit_code != 0 and "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert len(errors) == 1, result.output
    for fragment in fragments:
        assert fragment in errors[0], result.output


def test_model_type_contradicting_the_checkpoint_is_one_line_error(trainer_checkpoint, tmp_path):
    result = _run_cli(["--checkpoint", trainer_checkpoint, "--model-type", "vit_b", "--output-dir", tmp_path / "o"])
    _assert_one_line_error(result, "--model-type vit_b", "trained as vit_t", trainer_checkpoint.name)
    assert not (tmp_path / "o").exists()


def test_image_size_must_be_a_multiple_of_16(tmp_path):
    result = _run_cli(["--random-weights", "--image-size", 250, "--output-dir", tmp_path / "o"])
    _assert_one_line_error(result, "--image-size", "multiple of 16")


# ---- settings: checkpoint, command line, defaults ----------------------------------------------------

TRAINER_RECORD = {"model_type": "vit_t", "config": {"model_type": "vit_t", "img_size": 256, "mask_threshold": 0.5}}


def test_settings_come_from_the_trainer_record():
    settings = resolve_settings(TRAINER_RECORD, "best.pth")
    assert (settings.model_type, settings.image_size, settings.mask_threshold) == ("vit_t", 256, 0.5)
    assert set(settings.sources.values()) == {"checkpoint"}


def test_official_checkpoints_keep_the_defaults():
    settings = resolve_settings({}, "mobile_sam.pt", model_type="vit_b")
    assert (settings.model_type, settings.image_size, settings.mask_threshold) == ("vit_b", 1024, 0.0)
    assert settings.sources == {"model_type": "command line", "image_size": "default", "mask_threshold": "default"}


def test_image_size_option_overrides_the_checkpoint_and_says_so():
    settings = resolve_settings(TRAINER_RECORD, "best.pth", model_type="vit_t", image_size=512)
    assert settings.image_size == 512
    assert "512 (command line, the checkpoint was trained at 256)" in settings.describe()


def test_contradicting_model_type_and_bad_stored_values_are_errors():
    with pytest.raises(ValueError, match="--model-type vit_h contradicts checkpoint best.pth, which was trained as vit_t"):
        resolve_settings(TRAINER_RECORD, "best.pth", model_type="vit_h")
    with pytest.raises(ValueError, match="multiple of 16"):
        resolve_settings({"config": {"img_size": 100}}, "best.pth")


# ---- tolerances and mask agreement --------------------------------------------------------------------

def test_tolerance_scales_with_the_reference_magnitude():
    tolerance = parity.Tolerance(atol=1e-4, rtol=2e-5)
    reference = np.linspace(-40, 40, 1000).reshape(1, 1, 10, 100)
    rounding = reference * (1 + 3e-6)  # float rounding-sized, 1.2e-4 absolute at 40
    assert parity.compare("decoder", "c", io_spec.LOW_RES_MASKS, rounding, reference, tolerance).ok
    shifted = reference + 1e-3  # a real offset, small next to 40 but beyond 1e-4 + 2e-5 * 40
    check = parity.compare("decoder", "c", io_spec.LOW_RES_MASKS, shifted, reference, tolerance)
    assert not check.ok and "max|diff| 1.000e-03 > 9.000e-04" in check.failure()
    small = parity.compare("decoder", "c", io_spec.IOU_PREDICTIONS, reference / 400 + 2e-4, reference / 400, tolerance)
    assert not small.ok  # O(0.1) outputs keep (nearly) the absolute bound


def test_mask_agreement_ignores_pixels_at_the_threshold_and_counts_real_flips():
    reference = np.array([[[[-2.0, -0.01, 0.01, 3.0]]]])
    near_flips = np.array([[[[-2.0, 0.01, -0.01, 3.0]]]])  # only pixels within the band change side
    agreement = parity.mask_agreement(near_flips, reference, threshold=0.0, band=0.05)
    assert agreement.differing == 0 and agreement.ambiguous == 2 and agreement.min_iou == pytest.approx(1 / 3)
    real_flip = np.array([[[[2.0, -0.01, 0.01, 3.0]]]])
    assert parity.mask_agreement(real_flip, reference, threshold=0.0, band=0.05).differing == 1
    # At the model's threshold (here 2.5), not at zero: 3.0 -> 2.0 drops below it.
    shifted = parity.mask_agreement(reference - 1.0, reference, threshold=2.5, band=0.05)
    assert shifted.differing == 1 and shifted.min_iou == 0.0


def test_check_fails_on_mask_flips_even_within_the_numeric_limit():
    check = parity.ParityCheck("decoder", "c", io_spec.MASKS, max_abs=1e-5, tolerance=parity.TOLERANCES["fp32"],
                               scale=1.0, mask=parity.MaskAgreement(min_iou=0.9, differing=3, ambiguous=0))
    assert not check.ok and "3 mask pixels" in check.failure()
