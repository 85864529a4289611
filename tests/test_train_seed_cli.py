"""sam-train's seed-003 flags: the flag -> config key table, both spellings, config + flags, COCO root discovery,
and a vit_b trained end to end through the flags (random weights, small image size)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from fastsam.cli.seed_flags import SEED_FLAGS, markdown_table
from fastsam.cli.train import main
from fastsam.data.synthetic_coco import write_coco_export
from fastsam.train.config import ConfigError, config_from_dict, load_config


def test_every_flag_names_a_config_key():
    from fastsam.cli.seed_flags import config_default

    for flag in SEED_FLAGS:
        value = True if flag.type is None else config_default(flag.key)
        cfg = load_config(None, values={flag.key: value})  # a key TrainConfig does not know raises
        node = cfg
        for part in flag.key.split("."):
            node = getattr(node, part)
        assert node == value, flag.key
    with pytest.raises(ConfigError, match="unknown config key 'data_rot'"):
        load_config(None, values={"data_rot": "x"})


def test_help_shows_the_dashed_spelling_only():
    out = CliRunner().invoke(main, ["--help"]).output
    assert "--data-root" in out and "--metrics-interval" in out
    assert "--data_root" not in out and "--batch_size" not in out


def test_readme_flag_table_is_the_code_table():
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    assert markdown_table() in readme


def test_flags_win_over_the_config_file_and_set_over_flags(tmp_path):
    from fastsam.cli.seed_flags import seed_values

    config = tmp_path / "c.json"
    config.write_text(json.dumps({"batch_size": 4, "learning_rate": 0.5, "weight_decay": 0.25}))
    values = seed_values({"batch_size": 2, "learning_rate": 1e-3, "freeze_image_encoder": True,
                          "freeze_mask_decoder": False, "steps": None})
    assert values == {"batch_size": 2, "learning_rate": 1e-3, "freeze.image_encoder": True}
    cfg = load_config(config, ["learning_rate=0.01"], values)
    assert (cfg.batch_size, cfg.learning_rate, cfg.weight_decay) == (2, 0.01, 0.25)
    assert cfg.freeze.image_encoder and not cfg.freeze.mask_decoder and cfg.max_steps is None


def test_data_root_fills_the_split_keys_and_accepts_valid(tmp_path):
    (tmp_path / "valid").mkdir()
    cfg = config_from_dict({"data_root": str(tmp_path)})
    assert cfg.train_coco == str(tmp_path / "train/_annotations.coco.json")
    assert cfg.val_img_dir == str(tmp_path / "valid")
    # The saved config (data_root plus the keys it filled) loads again.
    assert config_from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError, match="'data_root' and 'train_coco' disagree"):
        config_from_dict({"data_root": str(tmp_path), "train_coco": "other.json"})


def test_missing_annotation_file_is_one_line_naming_it(tmp_path):
    (tmp_path / "train").mkdir()
    result = CliRunner().invoke(main, ["--data_root", str(tmp_path), "--model_type", "vit_t", "--output-dir",
                                       str(tmp_path / "runs")])
    assert result.exit_code == 1
    assert f"{tmp_path / 'train' / '_annotations.coco.json'}" in result.output
    assert "folder" in result.output and "val" in result.output and "Traceback" not in result.output


def test_no_config_and_no_data_root_is_a_usage_error():
    result = CliRunner().invoke(main, ["--steps", "3"])
    assert result.exit_code == 2 and "--data-root" in result.output


@pytest.mark.slow
def test_vit_b_trains_end_to_end_through_the_seed_flags(tmp_path):
    torch.set_num_threads(1)
    root = write_coco_export(tmp_path / "data", num_train=2, num_val=1, size=64, seed=1)
    # The image encoder is frozen so the test runs it once per image (embedding cache); its training speed is
    # benchmarks/bench_vit_b_train.py's figure.
    args = ["--data_root", str(root), "--model-type", "vit_b", "--image_size", "128", "--steps", "3",
            "--batch-size", "1", "--learning_rate", "1e-4", "--weight-decay", "0.05", "--metrics-interval", "1",
            "--save-top-k", "2", "--output_dir", str(tmp_path / "runs"), "--freeze-image-encoder",
            "--set", "num_val_overlays=0"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    run = tmp_path / "runs/fastsam/run"
    config = json.loads((run / "config.json").read_text())
    assert {k: config[k] for k in ("data_root", "model_type", "img_size", "max_steps", "batch_size",
                                    "learning_rate", "weight_decay", "metrics_interval", "save_top_k")} == {
        "data_root": str(root), "model_type": "vit_b", "img_size": 128, "max_steps": 3, "batch_size": 1,
        "learning_rate": 1e-4, "weight_decay": 0.05, "metrics_interval": 1, "save_top_k": 2}
    assert config["freeze"] == {"image_encoder": True, "prompt_encoder": False, "mask_decoder": False}
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [0, 1, 2, 3]
    assert all(r["train_steps"] == 1 and "val_loss" in r and "lr" in r for r in records[1:])
    kept = sorted(run.glob("*.ckpt"))
    assert len(kept) == 2 and (run / "best_model.pth").is_file() and (run / "latest_model.pth").is_file()
    # A top-k checkpoint exports like best_model.pth: sam-export's model builder takes it as trained.
    from fastsam.export.settings import build_model

    model, settings = build_model(str(kept[0]))
    assert (settings.model_type, settings.image_size) == ("vit_b", 128)
    ckpt = torch.load(kept[0], map_location="cpu", weights_only=True)
    assert torch.equal(model.mask_decoder.mask_tokens.weight, ckpt["model"]["mask_decoder.mask_tokens.weight"])
