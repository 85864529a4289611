"""Feature distillation: teacher feature extraction + manifest, settings checks, a distillation step."""
from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner

from fastsam.data.synthetic import generate_synthetic_dataset
from fastsam.train.config import config_from_dict
from fastsam.train.distill import DistillProjection, check_manifest, to_feature_map


def test_feature_map_layouts_and_projection():
    vit = torch.arange(24.0).view(1, 2, 3, 4)  # (B, h, w, C)
    assert torch.equal(to_feature_map(vit)[0, :, 1, 2], vit[0, 1, 2])
    tokens = torch.arange(32.0).view(1, 4, 8)  # (B, h*w, C), 2x2 grid
    assert torch.equal(to_feature_map(tokens)[0, :, 1, 0], tokens[0, 2])
    with pytest.raises(ValueError, match="square"):
        to_feature_map(torch.zeros(1, 3, 8))
    proj = DistillProjection(8, 16)
    assert proj(torch.zeros(2, 8, 4, 4), (2, 2)).shape == (2, 16, 2, 2)
    assert isinstance(DistillProjection(8, 8).proj, torch.nn.Identity)


@pytest.fixture(scope="module")
def distill_setup(tmp_path_factory):
    from fastsam.cli.extract_features import main

    tmp = tmp_path_factory.mktemp("distill")
    root = generate_synthetic_dataset(tmp / "data", num_train=2, num_val=1, size=64, objects=(2, 2), seed=11)
    raw = dict(output_dir=str(tmp / "runs"), train_img_dir=str(root / "train/images"),
               train_mask_dir=str(root / "train/masks"), val_img_dir=str(root / "val/images"),
               val_mask_dir=str(root / "val/masks"), img_size=64, batch_size=2, num_epochs=1,
               freeze={"prompt_encoder": True}, teacher_model_type="vit_b", use_distill=True,
               distill_feature_level=-1, distill_student_feature_level=-1, lambda_coef=0.5,
               train_img_dir_teacher_features=str(tmp / "feats"), num_val_overlays=0)
    cfg_path = tmp / "cfg.json"
    import json

    cfg_path.write_text(json.dumps(raw))
    result = CliRunner().invoke(main, ["--config", str(cfg_path), "--image-dir", raw["train_img_dir"],
                                       "--output-dir", str(tmp / "feats")])
    assert result.exit_code == 0, result.output
    return raw, tmp / "feats"


@pytest.mark.slow
def test_extracted_manifest_and_settings_checks(distill_setup):
    raw, feats = distill_setup
    manifest = check_manifest(feats, "vit_b", -1, 64)
    assert manifest["feature_level"] == 11 and manifest["shape"] == [768, 4, 4] and len(manifest["images"]) == 2
    assert torch.load(feats / "train_0000.pt", weights_only=True).dtype == torch.float16
    with pytest.raises(ValueError, match="teacher_model_type 'vit_b'"):
        check_manifest(feats, "vit_h", -1, 64)
    with pytest.raises(ValueError, match="feature_level 11"):
        check_manifest(feats, "vit_b", 3, 64)
    with pytest.raises(ValueError, match="img_size 64"):
        check_manifest(feats, "vit_b", -1, 128)
    # Extracted with a random teacher (no checkpoint): features refused for a run that names real teacher weights.
    assert manifest["teacher_checkpoint"] is None and manifest["teacher_checkpoint_sha256"] is None
    weights = feats.parent / "teacher.pth"
    weights.write_bytes(b"teacher weights")
    with pytest.raises(ValueError, match="a teacher with RANDOM weights"):
        check_manifest(feats, "vit_b", -1, 64, str(weights))
    assert check_manifest(feats, "vit_b", -1, 64, None) == manifest


@pytest.mark.slow
def test_distillation_step_trains_projection_and_encoder(distill_setup, monkeypatch):
    import fastsam.train.trainer as trainer

    raw, feats = distill_setup
    cfg = config_from_dict(raw)
    teacher_files = {p.name: p.read_bytes() for p in feats.iterdir()}
    start = {}
    real = trainer.make_distiller

    def recording(cfg, sam, device):  # the weights as training starts (random init, freshly made projection)
        distiller, projection = real(cfg, sam, device)
        start.update({"encoder": {k: v.clone() for k, v in sam.image_encoder.state_dict().items()},
                      "projection": {k: v.clone() for k, v in projection.state_dict().items()}})
        return distiller, projection

    monkeypatch.setattr(trainer, "make_distiller", recording)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        record = trainer.train(cfg)
    finally:
        torch.set_num_threads(before)
    assert record["train_distill"] > 0
    ckpt = torch.load(cfg.run_dir / "latest_model.pth", map_location="cpu", weights_only=True)
    assert ckpt["distill_projection"]["proj.weight"].shape == (768, 320, 1, 1)
    # The projection learns only from the distillation term: a change proves its gradient flowed.
    for key, value in start["projection"].items():
        assert not torch.equal(value, ckpt["distill_projection"][key]), key
    # The student's encoder block the features are taken from (the last TinyViT stage) trained too.
    last = max(int(k.split(".")[1]) for k in start["encoder"] if k.startswith("layers."))
    changed = [k for k in start["encoder"] if k.startswith(f"layers.{last}.") and start["encoder"][k].is_floating_point()
               and not torch.equal(start["encoder"][k], ckpt["model"][f"image_encoder.{k}"])]
    assert changed, "no weight of the hooked encoder stage changed"
    # The teacher (its stored features and manifest) is read, never written.
    assert {p.name: p.read_bytes() for p in feats.iterdir()} == teacher_files


def test_distillation_refuses_frozen_encoder(tmp_path):
    from fastsam.train.trainer import train

    root = generate_synthetic_dataset(tmp_path / "d", num_train=1, num_val=1, size=32, objects=(1, 1), seed=0)
    cfg = config_from_dict(dict(train_img_dir=str(root / "train/images"), train_mask_dir=str(root / "train/masks"),
                                use_distill=True, freeze={"image_encoder": True},
                                train_img_dir_teacher_features=str(tmp_path)))
    with pytest.raises(ValueError, match="freeze.image_encoder=false"):
        train(cfg)


def test_extract_features_reports_every_missing_input_at_once(tmp_path):
    import json

    from fastsam.cli.extract_features import main

    cfg_path = tmp_path / "cfg.json"
    cfg_path.write_text(json.dumps({"teacher_checkpoint": str(tmp_path / "teacher.pth"), "teacher_model_type": "vit_b"}))
    result = CliRunner().invoke(main, ["--config", str(cfg_path), "--image-dir", str(tmp_path / "nope"),
                                       "--output-dir", str(tmp_path / "feats")])
    assert result.exit_code == 1, result.output
    assert "teacher_checkpoint: " in result.output and "teacher.pth" in result.output
    assert "--image-dir: " in result.output and "nope" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "feats").exists()
