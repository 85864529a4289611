"""The bad-input matrix for the trainer's entry points (docs/bad_inputs.md): sam-train and sam-extract-features.

Each bad input ends in one `Error:` line naming the input and what to do, a non-zero exit and no traceback, and
nothing in the output folder that could pass for a run (inputs are checked before the run folder is made).
Awkward but usable inputs (greyscale, 16-bit, CMYK images; masks with values other than 0/255) are converted and
trained on. Everything runs vit_t at 64 px with the image encoder frozen, so no case trains for long.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from fastsam.data.synthetic import generate_synthetic_dataset

UNWRITABLE = Path("/proc/fastsam_bad_inputs/out")  # procfs refuses new entries, even for root


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    return generate_synthetic_dataset(tmp_path_factory.mktemp("data"), num_train=3, num_val=1, size=64,
                                      objects=(1, 2), seed=5)


@pytest.fixture()
def data(data_root, tmp_path) -> Path:
    """A private copy of the tiny dataset, for cases that damage it."""
    return Path(shutil.copytree(data_root, tmp_path / "data"))


def _config(tmp_path: Path, data: Path, **extra) -> Path:
    cfg = dict(output_dir=str(tmp_path / "runs"), train_img_dir=str(data / "train/images"),
               train_mask_dir=str(data / "train/masks"), val_img_dir=str(data / "val/images"),
               val_mask_dir=str(data / "val/masks"), img_size=64, batch_size=2, num_epochs=1, max_steps_per_epoch=1,
               freeze={"image_encoder": True, "prompt_encoder": True}, num_val_overlays=0, on_bad_sample="error")
    cfg.update(extra)
    path = tmp_path / f"config{len(list(tmp_path.glob('config*.json')))}.json"  # one file per call
    path.write_text(json.dumps(cfg))
    return path


def _train(config: Path, *args: str):
    from fastsam.cli.train import main

    return CliRunner().invoke(main, ["--config", str(config), *args])


def _error(result, *fragments: str) -> str:
    """The one Error: line of a failed command; fails on success, a traceback or a missing fragment."""
    assert result.exit_code != 0, result.output
    assert isinstance(result.exception, SystemExit), f"uncaught {result.exception!r}"
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert errors, result.output
    for fragment in fragments:
        assert fragment in result.output, result.output
    return errors[0]


def _no_run_folder(tmp_path: Path) -> None:
    assert not (tmp_path / "runs").exists(), sorted(p.name for p in (tmp_path / "runs").rglob("*"))


# ---- training folders ------------------------------------------------------------------------------------

def _damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "corrupt":
        path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(200)))
    elif how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "zero-size":
        path.write_bytes(b"")
    elif how == "float":
        Image.fromarray(np.zeros((40, 60), np.float32)).save(path.with_suffix(".tif"))
        path.unlink()


@pytest.mark.parametrize("how, fragment", [
    ("corrupt", "cannot identify image file"),
    ("truncated", "could not read image"),
    ("zero-size", "cannot identify image file"),
    ("float", "floating-point image (mode F)"),
])
def test_train_refuses_unreadable_images_before_the_run_folder(data, tmp_path, how, fragment):
    _damage(data / "train/images/train_0001.png", how)
    result = _train(_config(tmp_path, data))
    _error(result, "bad train sample(s)", "train_0001", fragment, "on_bad_sample='skip'")
    _no_run_folder(tmp_path)


def test_train_refuses_a_missing_image_folder(data, tmp_path):
    shutil.rmtree(data / "train/images")
    _error(_train(_config(tmp_path, data)), "input paths that do not exist", "train_img_dir:")
    _no_run_folder(tmp_path)


def test_train_refuses_a_mask_of_another_size_and_an_empty_mask(data, tmp_path):
    Image.fromarray(np.full((10, 10), 255, np.uint8)).save(data / "train/masks/train_0000_0.png")
    mask = data / "train/masks/train_0001_0.png"
    Image.fromarray(np.zeros(np.array(Image.open(mask)).shape, np.uint8)).save(mask)
    result = _train(_config(tmp_path, data))
    _error(result, "train_0000_0.png is 10x10 but its image", "train_0001_0.png (image", "is empty")
    _no_run_folder(tmp_path)


def test_binary_masks_take_every_non_zero_pixel_and_ignore_alpha(tmp_path):
    from fastsam.data.records import read_binary_mask

    values = np.array([[0, 1, 128], [255, 0, 7]], np.uint8)
    Image.fromarray(values).save(tmp_path / "grey.png")
    assert (read_binary_mask(tmp_path / "grey.png") == (values > 0)).all()
    rgba = np.zeros((2, 3, 4), np.uint8)
    rgba[..., 3] = 255  # opaque everywhere: only the colour says object
    rgba[0, 2, 0] = 200
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    assert read_binary_mask(tmp_path / "rgba.png").tolist() == [[False, False, True], [False, False, False]]
    Image.fromarray((values.astype(np.uint16) * 257)).save(tmp_path / "grey16.png")
    assert (read_binary_mask(tmp_path / "grey16.png") == (values > 0)).all()


def test_grey_16bit_and_cmyk_images_are_trained_and_bad_samples_skipped_when_asked(data, tmp_path):
    from fastsam.data.dataset import PromptSettings, SamDataset
    from fastsam.data.folder import folder_records

    images = sorted((data / "train/images").iterdir())
    rgb = [np.array(Image.open(p).convert("RGB")) for p in images]
    Image.fromarray(rgb[0][..., 0]).save(images[0])  # 8-bit grey
    Image.fromarray(np.full(rgb[1].shape[:2], 0x1234, np.uint16)).save(images[1])  # 16-bit grey, top byte 0x12
    Image.fromarray(rgb[2]).convert("CMYK").save(images[2].with_suffix(".jpg"))
    images[2].unlink()
    shutil.copy(data / "train/masks/train_0000_0.png", data / "train/masks/train_0009_0.png")
    (data / "train/images/train_0009.png").write_bytes(images[0].read_bytes()[:100])  # truncated: skipped
    records, _ = folder_records(data / "train/images", data / "train/masks")
    item = SamDataset(records, 64, PromptSettings(), max_objects=8, train=False)[1]
    assert torch.all(item["image"][:, :item["input_size"][0], :item["input_size"][1]] == 0x12)  # not clipped to 255

    result = _train(_config(tmp_path, data, max_steps_per_epoch=2, on_bad_sample="skip"))
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in (tmp_path / "runs/fastsam/run/metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["epoch"] == 1 and rows[-1]["step"] == 2 and np.isfinite(rows[-1]["train_loss"])
    log = (tmp_path / "runs/fastsam/run/training_log.txt").read_text()
    assert "train: 3 images" in log  # grey, 16-bit and CMYK kept
    assert "WARNING train data: could not read image" in log and "train_0009.png: image file is truncated" in log


# ---- configs and checkpoints -----------------------------------------------------------------------------

@pytest.mark.parametrize("extra, fragments", [
    ({"batch_sise": 2}, ["unknown config key 'batch_sise'", "did you mean 'batch_size'"]),
    ({"batch_size": "four"}, ["config key 'batch_size': expected int, got 'four'"]),
    ({"freeze": True}, ["config key 'freeze': expected object (FreezeConfig)"]),
    ({"learning_rate": -1}, ["'learning_rate' must be > 0"]),
    ({"loss_weights": {"dice": -1}}, ["'loss_weights.dice' must be >= 0"]),
    ({"stage_schedule": [{"start_epoch": 0, "end_epoch": 1, "lambda_coef": 1.5}]},
     ["'stage_schedule[0].lambda_coef' must be in [0, 1], got 1.5"]),
    ({"stage_schedule": [{"start_epoch": 0, "end_epoch": 1, "loss_weights": {"focal": -0.5}}]},
     ["'stage_schedule[0].loss_weights.focal' must be >= 0"]),
    ({"on_nonfinite": "ignore"}, ["config key 'on_nonfinite': expected one of 'skip' | 'stop'"]),
    ({"max_nonfinite_in_a_row": 0}, ["'max_nonfinite_in_a_row' must be >= 1"]),
    ({"use_distill": True}, ["'use_distill' is true but 'train_img_dir_teacher_features' is not set",
                             "sam-extract-features"]),
    ({"stage_schedule": [{"start_epoch": 0, "end_epoch": 1, "distillation": True}]},
     ["'stage_schedule[0].distillation' is true but 'train_img_dir_teacher_features' is not set"]),
])
def test_train_refuses_bad_configs_before_the_run_folder(data_root, tmp_path, extra, fragments):
    _error(_train(_config(tmp_path, data_root, **extra)), *fragments)
    _no_run_folder(tmp_path)


def test_train_refuses_a_config_that_is_not_json(tmp_path):
    path = tmp_path / "config.json"
    path.write_text('{"num_epochs": 1,')
    _error(_train(path), "config.json is not valid JSON")


@pytest.fixture(scope="module")
def vit_t_checkpoint(tmp_path_factory) -> Path:
    from fastsam.build_sam import build_sam_vit_t

    path = tmp_path_factory.mktemp("ckpt") / "vit_t_64.pth"
    torch.save(build_sam_vit_t(image_size=64).state_dict(), path)
    return path


def test_train_refuses_damaged_and_foreign_student_checkpoints(data_root, tmp_path, vit_t_checkpoint):
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(vit_t_checkpoint.read_bytes()[:50_000])
    _error(_train(_config(tmp_path, data_root, checkpoint=str(truncated))),
           "config key 'checkpoint': could not read checkpoint", "truncated.pth")
    _no_run_folder(tmp_path)
    # A checkpoint of another model type (a vit_b's signature: 768-wide patch embedding, 12 blocks).
    vit_b = tmp_path / "vit_b.pth"
    torch.save({"image_encoder.patch_embed.proj.weight": torch.zeros(768, 3, 16, 16),
                "image_encoder.blocks.11.norm1.weight": torch.zeros(768)}, vit_b)
    _error(_train(_config(tmp_path, data_root, checkpoint=str(vit_b))),
           "vit_b.pth does not match model type 'vit_t'", "it looks like a 'vit_b' checkpoint")
    _no_run_folder(tmp_path)


def test_train_refuses_damaged_and_foreign_resume_checkpoints(data_root, tmp_path, vit_t_checkpoint):
    truncated = tmp_path / "latest_model.pth"
    truncated.write_bytes(vit_t_checkpoint.read_bytes()[:50_000])
    config = _config(tmp_path, data_root)
    _error(_train(config, "--resume", str(truncated)), "could not read --resume checkpoint", "latest_model.pth")
    _error(_train(config, "--resume", str(vit_t_checkpoint)),
           "vit_t_64.pth is not a sam-train checkpoint", "--resume needs latest_model.pth or best_model.pth")
    _error(_train(config, "--resume", str(tmp_path / "nope.pth")), "--resume checkpoint not found")


def test_train_refuses_an_unwritable_output_dir(data_root, tmp_path):
    _error(_train(_config(tmp_path, data_root, output_dir=str(UNWRITABLE))),
           f"run folder {UNWRITABLE}/fastsam/run is not writable", "set output_dir")


def test_train_on_a_full_disk_names_the_file_and_keeps_the_earlier_checkpoint(data_root, tmp_path, monkeypatch):
    import errno

    from fastsam.train import checkpointing

    real_save, calls = torch.save, []

    def save_until_the_disk_fills(obj, path):
        calls.append(Path(path))
        if len(calls) == 1:  # the starting weights' best_model.pth still fits
            return real_save(obj, path)
        Path(path).write_bytes(b"half a checkpoint")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpointing.torch, "save", save_until_the_disk_fills)
    line = _error(_train(_config(tmp_path, data_root)), "No space left on device", "is unchanged",
                  "then --resume from latest_model.pth")
    run = tmp_path / "runs" / "fastsam" / "run"
    assert "could not write" in line and str(run) in line
    assert torch.load(run / "best_model.pth", weights_only=False)["step"] == 0  # the earlier file still loads
    assert not list(run.glob(".*.tmp*"))  # the half-written temporary file is gone


# ---- teacher features --------------------------------------------------------------------------------------

def _features_manifest(folder: Path, **fields) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    manifest = {"teacher_model_type": "vit_h", "teacher_checkpoint": None, "teacher_checkpoint_sha256": None,
                "feature_level": 31, "num_blocks": 32, "img_size": 64, "shape": [8, 4, 4], "images": {}, **fields}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def test_train_refuses_features_from_another_teacher_checkpoint(data_root, tmp_path):
    from fastsam.export.manifest import sha256_file

    made_with, configured = tmp_path / "teacher_a.pth", tmp_path / "teacher_b.pth"
    made_with.write_bytes(b"weights a")
    configured.write_bytes(b"weights b")
    features = _features_manifest(tmp_path / "features", teacher_checkpoint=str(made_with),
                                  teacher_checkpoint_sha256=sha256_file(made_with))
    config = _config(tmp_path, data_root, use_distill=True, train_img_dir_teacher_features=str(features),
                     teacher_checkpoint=str(configured), freeze={})
    _error(_train(config), "extracted with other settings", "teacher checkpoint", "teacher_a.pth",
           "teacher_b.pth", "Re-run sam-extract-features")
    _no_run_folder(tmp_path)
    # Same name, other content (a re-downloaded or edited file): the sha256 tells them apart.
    made_with.write_bytes(b"weights a, edited")
    config = _config(tmp_path, data_root, use_distill=True, train_img_dir_teacher_features=str(features),
                     teacher_checkpoint=str(made_with), freeze={})
    _error(_train(config), "teacher checkpoint", "sha256")
    _no_run_folder(tmp_path)


def test_train_refuses_a_damaged_features_manifest(data_root, tmp_path):
    features = _features_manifest(tmp_path / "features")
    (features / "manifest.json").write_text('{"teacher_model_type": "vit_h"')
    config = _config(tmp_path, data_root, use_distill=True, train_img_dir_teacher_features=str(features), freeze={})
    _error(_train(config), "manifest.json is damaged", "re-run sam-extract-features")
    _no_run_folder(tmp_path)


def _extract(config: Path, image_dir: Path, out: Path, *args: str):
    from fastsam.cli.extract_features import main

    return CliRunner().invoke(main, ["--config", str(config), "--image-dir", str(image_dir),
                                     "--output-dir", str(out), *args])


def test_extract_features_refuses_unreadable_images_before_writing(data, tmp_path):
    _damage(data / "train/images/train_0002.png", "zero-size")
    out = tmp_path / "features"
    _error(_extract(_config(tmp_path, data), data / "train/images", out), "image(s) in --image-dir cannot be read",
           "train_0002.png")
    assert not out.exists()


def test_extract_features_refuses_missing_inputs_and_an_unwritable_output(data_root, tmp_path):
    config = _config(tmp_path, data_root)
    _error(_extract(config, tmp_path / "nope", tmp_path / "f"), "--image-dir:", "nope")
    _error(_extract(_config(tmp_path, data_root, teacher_checkpoint=str(tmp_path / "t.pth")), data_root / "val/images",
                    tmp_path / "f"), "teacher_checkpoint:", "t.pth")
    _error(_extract(config, data_root / "val/images", UNWRITABLE), f"--output-dir {UNWRITABLE} is not writable")


def test_extract_features_refuses_a_truncated_teacher_checkpoint(data_root, tmp_path):
    teacher = tmp_path / "teacher.pth"
    teacher.write_bytes(b"PK\x03\x04 not a whole checkpoint")
    config = _config(tmp_path, data_root, teacher_checkpoint=str(teacher), teacher_model_type="vit_b")
    out = tmp_path / "features"
    _error(_extract(config, data_root / "val/images", out), "teacher checkpoint: could not read checkpoint",
           "teacher.pth")
    assert not (out / "manifest.json").exists()
