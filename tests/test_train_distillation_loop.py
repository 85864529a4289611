"""The distillation block in sam-train: config keys and checks, how lambda combines with the task loss,
every term logged by name, dynamic lambda restored on --resume, teacher embeddings from sam-extract-features."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from fastsam.data.synthetic import generate_synthetic_dataset
from fastsam.train.config import ConfigError, config_from_dict


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """One thread: on the shared 2-core CI machine the tiny models run several times faster than with two."""
    before, _ = torch.get_num_threads(), torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return generate_synthetic_dataset(tmp_path_factory.mktemp("dist"), num_train=2, num_val=1, size=64,
                                      objects=(1, 2), seed=5)


def _raw(root, out, **extra) -> dict:
    data = dict(output_dir=str(out), train_img_dir=str(root / "train/images"), train_mask_dir=str(root / "train/masks"),
                val_img_dir=str(root / "val/images"), val_mask_dir=str(root / "val/masks"), img_size=64,
                freeze={"prompt_encoder": True}, batch_size=2, num_epochs=2, learning_rate=1e-3,
                num_val_overlays=0, seed=0,
                distillation={"enable": True, "lambda_coef": 0.5, "teacher": {"model_type": "vit_t"},
                              "dense_mask_logits": {"enable": True}, "rkd": {"num_tokens": 8}})
    data.update(extra)
    return data


def test_config_block_keys_and_checks(root, tmp_path):
    cfg = config_from_dict(_raw(root, tmp_path))
    assert cfg.distillation.enable and cfg.distillation.teacher.model_type == "vit_t"
    assert cfg.distillation.dense_mask_logits.enable and not config_from_dict({}).distillation.dense_mask_logits.enable
    errors = {
        "did you mean 'distillation.rkd.w_angle'": {"rkd": {"w_angel": 1.0}},
        "'distillation.attention.w_kl' must be >= 0": {"attention": {"w_kl": -1}},
        "'distillation.lambda_coef' must be >= 0": {"lambda_coef": -0.1},
    }
    for message, block in errors.items():
        with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
            config_from_dict({"distillation": block})
    with pytest.raises(ConfigError, match="'use_distill' and 'distillation.enable' are both true"):
        config_from_dict(_raw(root, tmp_path, use_distill=True))
    with pytest.raises(ConfigError, match=r"'stage_schedule\[0\].lambda_coef' is set while distillation.dynamic_lambda"):
        config_from_dict({"distillation": {"enable": True, "dynamic_lambda": {"enable": True}},
                          "stage_schedule": [{"start_epoch": 0, "end_epoch": 1, "distillation": True, "lambda_coef": 2.0}]})
    # With the block, lambda may exceed 1 (it is added, not mixed); the flat keys keep [0, 1].
    assert config_from_dict({"distillation": {"enable": True, "lambda_coef": 3.0}}).distillation.lambda_coef == 3.0
    with pytest.raises(ConfigError, match=r"'stage_schedule\[0\].lambda_coef' must be in \[0, 1\]"):
        config_from_dict({"stage_schedule": [{"start_epoch": 0, "end_epoch": 1, "lambda_coef": 2.0}]})
    with pytest.raises(ConfigError, match=r"'stage_schedule\[0\].loss_weights.dice' must be >= 0"):
        config_from_dict({"stage_schedule": [{"start_epoch": 0, "end_epoch": 1, "loss_weights": {"dice": -1}}]})
    with pytest.raises(ConfigError, match="unflipped"):
        config_from_dict(_raw(root, tmp_path, augment=True, distillation={"enable": True, "teacher": {
            "model_type": "vit_t", "embeddings_dir": str(tmp_path)}}))


def _loss_modules(cfg):
    """(loss module with the stack, loss module without it, the stack, two training items, epoch 1's stage)."""
    from fastsam.data.build import load_records
    from fastsam.train.distillation.stack import build_stack
    from fastsam.train.loss_module import SegmentationLoss
    from fastsam.train.model_setup import build_student
    from fastsam.train.schedule import stage_for_epoch
    from fastsam.train.tasks import make_task

    torch.manual_seed(0)
    sam = build_student(cfg)
    stack = build_stack(cfg.distillation, sam, img_size=64, device=torch.device("cpu"))
    task = make_task(cfg)
    records, _ = load_records(cfg.train_img_dir, cfg.train_mask_dir, None, "skip", "train")
    train_ds, _ = task.datasets(records, records)
    items = [train_ds[0], train_ds[1]]
    return (SegmentationLoss(sam, task, cfg, stack=stack), SegmentationLoss(sam, task, cfg), stack, items,
            stage_for_epoch(cfg, 0))


def _check_lambda_is_added(with_stack, plain, stack, items, stage) -> dict:
    cpu = torch.device("cpu")
    loss, stats = with_stack(items, None, stage, cpu)
    task_loss, task_stats = plain(items, None, stage, cpu)
    assert loss.item() == pytest.approx(task_loss.item() + stage.lambda_coef * stats["distill"], rel=1e-5)
    assert stats["distill"] > 0 and task_stats["distill"] == 0
    terms = with_stack.task.loss_terms
    assert {k: stats[k] for k in terms} == pytest.approx({k: task_stats[k] for k in terms})
    assert {f"distill_{name}" for name in stack.term_names} <= set(stats)
    return stats


def test_lambda_is_added_to_the_task_loss(root, tmp_path):
    with_stack, plain, stack, items, stage = _loss_modules(config_from_dict(_raw(root, tmp_path)))
    assert stage.distillation and stage.lambda_coef == 0.5
    _check_lambda_is_added(with_stack, plain, stack, items, stage)


def test_everything_mode_is_distilled_chunk_by_chunk(root, tmp_path):
    # 4 x 4 grid points decoded 8 at a time: two decoder passes per image, each distilled.
    cfg = config_from_dict(_raw(root, tmp_path, dataset={"mode": "everything", "grid_points": 4},
                                prediction_batch_size=8))
    with_stack, plain, stack, items, stage = _loss_modules(cfg)
    decoded = []
    teacher_decode = stack.teacher.decode

    def counting_decode(call, embedding):
        decoded.append(call.points[0].shape[0])
        return teacher_decode(call, embedding)

    stack.teacher.decode = counting_decode
    stats = _check_lambda_is_added(with_stack, plain, stack, items, stage)
    assert decoded == [8, 8, 8, 8]
    assert stats["distill_dense_mask_logits_kl"] > 0 and stats["distill_attention_kl"] > 0


def test_two_teachers_are_logged_by_name_and_weighted(root, tmp_path):
    raw = _raw(root, tmp_path)
    block = {k: v for k, v in raw["distillation"].items() if k != "teacher"}
    raw["distillation"] = {**block, "teachers": [{"model_type": "vit_t", "name": "a", "weight": 0.75},
                                                 {"model_type": "vit_t", "name": "b", "weight": 0.25}]}
    with_stack, plain, stack, items, stage = _loss_modules(config_from_dict(raw))
    assert [(t.name, t.weight) for t in stack.teachers] == [("a", 0.75), ("b", 0.25)]
    stats = _check_lambda_is_added(with_stack, plain, stack, items, stage)
    # distill = sum over teachers of weight x (its weighted terms): rebuilt from the logged terms by hand.
    cfg = stack.cfg
    from fastsam.train.distillation.stack import TERM_WEIGHTS
    hand = sum({"a": 0.75, "b": 0.25}[t] * getattr(getattr(cfg, TERM_WEIGHTS[term][0]), TERM_WEIGHTS[term][1])
               * stats[f"distill_{t}/{term}"] for t in "ab" for term in TERM_WEIGHTS)
    assert stats["distill"] == pytest.approx(hand, rel=1e-5)
    assert stats["distill_a/attention_kl"] != stats["distill_b/attention_kl"]  # two different teachers


@pytest.mark.slow
def test_training_logs_every_term_and_resume_restores_dynamic_lambda(root, tmp_path):
    from fastsam.train.trainer import train

    raw = _raw(root, tmp_path)
    raw["distillation"]["dynamic_lambda"] = {"enable": True, "patience": 1, "factor": 0.5}
    cfg = config_from_dict(raw)
    train(cfg, stop_after_epoch=1)
    run = cfg.run_dir
    latest = run / "latest_model.pth"
    ckpt = torch.load(latest, map_location="cpu", weights_only=True)
    assert ckpt["distillation"]["lambda"]["best"] is not None
    # Pretend the schedule had already dropped lambda twice: the resumed epoch must train with that value.
    ckpt["distillation"]["lambda"]["value"] = 0.125
    torch.save(ckpt, latest)
    train(cfg, resume=latest)
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [0, 1, 2]
    assert records[1]["distill_lambda"] == 0.5 and records[2]["distill_lambda"] == 0.125
    names = ["encoder_patch_l2", "encoder_patch_cos", "rkd_dist", "rkd_angle", "prompt_embed_mse", "prompt_embed_cos",
             "decoder_mask_token_kl", "dense_mask_logits_kl", "dense_mask_logits_focal", "attention_kl"]
    for r in records[1:]:
        assert r["train_distill"] > 0 and all(r[f"train_distill_{n}"] >= 0 for n in names), r
    log = (run / "training_log.txt").read_text()
    assert "distillation lambda 0.125" in log and "distill-attention-kl" in log


def test_teacher_embeddings_from_extract_features_are_checked(root, tmp_path):
    from fastsam.build_sam import sam_model_registry
    from fastsam.cli.extract_features import extract_features
    from fastsam.data.dataset import file_digest
    from fastsam.data.geometry import resize_image
    from fastsam.image_io import read_rgb
    from fastsam.train.distillation.teacher import build_teacher

    torch.manual_seed(3)
    weights = tmp_path / "teacher.pth"
    torch.save(sam_model_registry["vit_t"](checkpoint=None, image_size=64).state_dict(), weights)
    raw = _raw(root, tmp_path)
    raw["distillation"]["teacher"] = {"model_type": "vit_t", "checkpoint": str(weights)}
    cfg = config_from_dict(raw)
    manifest = extract_features(cfg, cfg.train_img_dir, tmp_path / "emb")
    assert manifest["teacher_model_type"] == "vit_t" and manifest["embedding_shape"] == [256, 4, 4]

    image_path = sorted((root / "train/images").iterdir())[0]
    image = resize_image(torch.from_numpy(read_rgb(image_path).copy()).permute(2, 0, 1).float(), 64)
    item = {"image_path": str(image_path), "digest": file_digest(image_path), "image": image}
    cpu = torch.device("cpu")
    online = build_teacher("vit_t", str(weights), img_size=64, embeddings_dir=None, device=cpu, attention=False)
    stored = build_teacher("vit_t", str(weights), img_size=64, embeddings_dir=tmp_path / "emb", device=cpu,
                           attention=False)
    expected = online.image_embedding(item, cpu)
    got = stored.image_embedding({**item, "image": None}, cpu)  # no image needed: only the decoder runs
    assert torch.allclose(got, expected, atol=1e-2 * expected.abs().max().item())
    with pytest.raises(ValueError, match="different image content"):
        stored.image_embedding({**item, "digest": "0" * 40}, cpu)
    with pytest.raises(ValueError, match="teacher_model_type 'vit_t'"):
        build_teacher("vit_b", None, img_size=64, embeddings_dir=tmp_path / "emb", device=cpu, attention=False)


@pytest.mark.parametrize("name", ["mobilesam_distill.json", "mobilesam_everything.json",
                                  "mobilesam_everything_distill_then_finetune.json"])
def test_example_configs_show_every_distillation_key(name):
    from fastsam.train.config import load_config
    from fastsam.train.distillation.config import MODULES

    path = Path(__file__).resolve().parents[1] / "models/configs" / name
    block = load_config(path).distillation
    assert block.teacher.model_type == "vit_h"
    assert [m for m in MODULES if getattr(block, m).enable] == [m for m in MODULES if m != "dense_mask_logits"]
    written = json.loads(path.read_text())["distillation"]
    assert set(written) == {f.name for f in dataclasses.fields(block)}  # every key written out
    assert all(set(written[m]) == {f.name for f in dataclasses.fields(getattr(block, m))} for m in MODULES)


def test_extract_features_picks_one_of_several_teachers_by_name():
    from fastsam.cli.extract_features import _block_teacher

    block = config_from_dict({"distillation": {"enable": True, "teachers": [
        {"model_type": "vit_b", "weight": 0.5}, {"model_type": "vit_l", "name": "large", "weight": 0.5}]}}).distillation
    assert _block_teacher(block, "large").model_type == "vit_l" and _block_teacher(block, "vit_b").model_type == "vit_b"
    with pytest.raises(ValueError, match="2 teachers .* pass --teacher with one of vit_b, large"):
        _block_teacher(block, None)
    with pytest.raises(ValueError, match="--teacher 'vit_h': no such teacher"):
        _block_teacher(block, "vit_h")
    single = config_from_dict({"distillation": {"enable": True, "teacher": {"model_type": "vit_l"}}}).distillation
    assert _block_teacher(single, None).model_type == "vit_l"
