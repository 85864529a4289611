"""Config loading: example configs, unknown keys, wrong types, overrides, missing paths."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from fastsam.train.config import (
    ConfigError,
    TrainConfig,
    check_paths,
    config_from_dict,
    load_config,
    save_config,
)

CONFIG_DIR = Path(__file__).resolve().parents[1] / "models" / "configs"
EXAMPLES = ["mobilesam.json", "mobilesam_decoder_only.json", "distill_then_finetune.json",
            "finetune_then_distill.json", "sam_vit_b_coco.json"]


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_configs_load(name):
    cfg = load_config(CONFIG_DIR / name)
    raw = json.loads((CONFIG_DIR / name).read_text())
    assert cfg.model_type == raw["model_type"]
    assert cfg.run_dir == Path(raw["output_dir"]) / raw["project_name"] / raw["run_name"]


def test_stage_schedule_parsed_into_dataclasses():
    cfg = load_config(CONFIG_DIR / "distill_then_finetune.json")
    assert [(s.start_epoch, s.end_epoch, s.distillation) for s in cfg.stage_schedule] == [(0, 6, True), (6, 12, False)]
    assert cfg.stage_schedule[1].loss_weights.focal == 20.0
    assert cfg.stage_schedule[1].loss_weights.dice is None


def test_defaults_are_documented_values():
    cfg = config_from_dict({})
    assert (cfg.loss_weights.focal, cfg.loss_weights.dice, cfg.loss_weights.iou) == (1.0, 1.0, 1.0)
    assert cfg.freeze.image_encoder is False and cfg.amp == "off"


def test_unknown_key_names_nearest_valid_key():
    with pytest.raises(ConfigError, match=r"unknown config key 'learning_rat'.*did you mean 'learning_rate'"):
        config_from_dict({"learning_rat": 1e-3})


def test_unknown_nested_key_names_nearest_valid_key():
    with pytest.raises(ConfigError, match=r"'freeze.image_encode'.*did you mean 'freeze.image_encoder'"):
        config_from_dict({"freeze": {"image_encode": True}})


@pytest.mark.parametrize(
    "data, pattern",
    [
        ({"batch_size": "4"}, r"'batch_size': expected int"),
        ({"batch_size": 2.5}, r"'batch_size': expected int"),
        ({"learning_rate": True}, r"'learning_rate': expected float"),
        ({"amp": "fp8"}, r"'amp': expected one of 'off' \| 'bf16' \| 'fp16'"),
        ({"freeze": {"mask_decoder": "yes"}}, r"'freeze.mask_decoder': expected bool"),
        ({"stage_schedule": [{"start_epoch": 0, "end_epoch": "3"}]}, r"'stage_schedule\[0\].end_epoch': expected int"),
        ({"checkpoint": 3}, r"'checkpoint': expected str or null"),
    ],
)
def test_wrong_type_names_key_and_expected_type(data, pattern):
    with pytest.raises(ConfigError, match=pattern):
        config_from_dict(data)


def test_int_is_accepted_for_float_fields():
    assert config_from_dict({"learning_rate": 1}).learning_rate == 1.0


@pytest.mark.parametrize("value", [-0.1, 1.5])
def test_point_prompt_prob_out_of_range_is_rejected(value):
    with pytest.raises(ConfigError, match=r"'point_prompt_prob' must be in \[0, 1\]"):
        config_from_dict({"point_prompt_prob": value})


def test_overlapping_stages_rejected():
    stages = [{"start_epoch": 0, "end_epoch": 4}, {"start_epoch": 3, "end_epoch": 6}]
    with pytest.raises(ConfigError, match=r"stage_schedule\[1\]"):
        config_from_dict({"stage_schedule": stages})


def test_set_overrides_dotted_and_json_values(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"batch_size": 2}))
    cfg = load_config(path, ["batch_size=8", "freeze.image_encoder=true", "run_name=exp1", "scheduler.end_lr=1e-6"])
    assert cfg.batch_size == 8 and cfg.freeze.image_encoder is True and cfg.run_name == "exp1"
    assert cfg.scheduler.end_lr == 1e-6


def test_set_override_with_unknown_key_is_reported(tmp_path):
    path = tmp_path / "c.json"
    path.write_text("{}")
    with pytest.raises(ConfigError, match=r"'num_epoch'.*did you mean 'num_epochs'"):
        load_config(path, ["num_epoch=3"])
    with pytest.raises(ConfigError, match=r"key=value"):
        load_config(path, ["num_epochs"])


def test_missing_paths_reported_all_at_once(tmp_path):
    (tmp_path / "imgs").mkdir()
    cfg = config_from_dict({
        "checkpoint": str(tmp_path / "nope.pth"),
        "train_img_dir": str(tmp_path / "imgs"),
        "train_mask_dir": str(tmp_path / "masks"),
        "val_img_dir": str(tmp_path / "vimgs"),
        "val_mask_dir": str(tmp_path / "vmasks"),
    })
    with pytest.raises(FileNotFoundError) as info:
        check_paths(cfg)
    message = str(info.value)
    for key in ("checkpoint", "train_mask_dir", "val_img_dir", "val_mask_dir"):
        assert f"{key}:" in message
    assert "train_img_dir:" not in message


def test_missing_config_file_and_bad_json(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere.json"):
        load_config(tmp_path / "nothere.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{batch_size: 2}")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_config(bad)


def test_saved_config_round_trips(tmp_path):
    cfg = load_config(CONFIG_DIR / "distill_then_finetune.json")
    save_config(cfg, tmp_path / "resolved.json")
    assert load_config(tmp_path / "resolved.json") == cfg
    assert isinstance(cfg, TrainConfig)
