"""Training options run end to end on tiny data, each checked for what it claims to do: validation's mIoU/Dice
against a hand computation, a stage switch (its loss weights reach the loss), multimask training, point prompts,
AMP (bf16 on CPU), and a custom IoU head (checkpoint round trip).

One tiny dataset (2 training images, 1 validation image, 64 px) serves every run; a run is 1-2 epochs of 2
decoder steps with the image encoder frozen.
"""
from __future__ import annotations

import json

import pytest
import torch

from fastsam.data.synthetic import generate_synthetic_dataset
from fastsam.train.config import config_from_dict


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return generate_synthetic_dataset(tmp_path_factory.mktemp("opts"), num_train=2, num_val=1, size=64,
                                      objects=(1, 2), seed=21)


def _cfg(root, tmp_path, **extra):
    data = dict(output_dir=str(tmp_path / "runs"), train_img_dir=str(root / "train/images"),
                train_mask_dir=str(root / "train/masks"), val_img_dir=str(root / "val/images"),
                val_mask_dir=str(root / "val/masks"), img_size=64, batch_size=1, num_epochs=1, learning_rate=1e-3,
                freeze={"image_encoder": True, "prompt_encoder": True}, num_val_overlays=0, seed=0)
    data.update(extra)
    return config_from_dict(data)


def _metrics(cfg) -> list[dict]:
    return [json.loads(line) for line in (cfg.run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture()
def decoded(monkeypatch) -> list[dict]:
    """What every training decode call received and returned (prompts, logits shape and dtype)."""
    import fastsam.train.tasks.prompt as prompt

    calls, real = [], prompt.decode

    def recording(sam, embedding, item, multimask, device):
        logits, iou = real(sam, embedding, item, multimask, device)
        if torch.is_grad_enabled():  # training, not validation
            calls.append({"boxes": item["boxes"], "coords": item["point_coords"], "labels": item["point_labels"],
                          "shape": tuple(logits.shape), "dtype": logits.dtype})
        return logits, iou

    monkeypatch.setattr(prompt, "decode", recording)
    return calls


def _decoder_weights(path) -> dict:
    state = torch.load(path, map_location="cpu", weights_only=True)["model"]
    return {k: v for k, v in state.items() if k.startswith("mask_decoder.")}


def _start_decoder_weights(cfg) -> dict:
    """The decoder the run started from: train() seeds, then builds the student, as here."""
    from fastsam.train.model_setup import build_student
    from fastsam.train.trainer import seed_everything

    seed_everything(cfg.seed)
    return {f"mask_decoder.{k}": v for k, v in build_student(cfg).mask_decoder.state_dict().items()}


def _changed(before: dict, after: dict) -> list[str]:
    return [k for k in before if not torch.equal(before[k], after[k])]


# ---- validation figures ----------------------------------------------------------------------------------

class _IdentitySam(torch.nn.Module):
    """Stands in for Sam in evaluate(): logits are already at the original size."""

    def postprocess_masks(self, masks, input_size, original_size):
        return masks


def test_evaluate_miou_and_dice_match_a_hand_computation(monkeypatch):
    import fastsam.train.tasks.prompt as prompt
    import fastsam.train.validation as validation
    from fastsam.train.distributed import DistInfo
    from fastsam.train.tasks import make_task

    def masks(*cells_per_object, size=4):
        out = torch.zeros(len(cells_per_object), size, size, dtype=torch.bool)
        for i, cells in enumerate(cells_per_object):
            for r, c in cells:
                out[i, r, c] = True
        return out

    block = [(0, 0), (0, 1), (1, 0), (1, 1)]
    full = [(r, c) for r in range(4) for c in range(4)]
    # Image 1: object A (2x2 block) predicted as the top row, object B (one pixel) missed.
    # Image 2: object C (the whole frame) predicted exactly.
    images = [(masks(block, [(3, 3)]), masks([(0, c) for c in range(4)], [])), (masks(full), masks(full))]
    preds = {}
    items = []
    for i, (gt, pred) in enumerate(images):
        preds[i] = pred
        items.append([{"index": i, "gt": gt, "boxes": None, "point_coords": None, "point_labels": None,
                       "input_size": (4, 4), "original_size": (4, 4), "image_path": f"{i}.png"}])

    def fake_decode(sam, embedding, item, multimask, device):
        logits = torch.where(preds[item["index"]], 5.0, -5.0)[:, None]
        return logits, torch.ones(logits.shape[0], 1)

    monkeypatch.setattr(prompt, "decode", fake_decode)
    monkeypatch.setattr(validation, "embed_images", lambda sam, items, cache, device: [None] * len(items))
    task = make_task(config_from_dict({}))
    val, _ = validation.evaluate(task, _IdentitySam(), items, None, torch.device("cpu"), DistInfo())
    # IoU: A 2/6, B 0/1, C 16/16; Dice: A 2*2/(4+4), B 0, C 1 -- averaged over the 3 objects.
    assert val["objects"] == 3
    assert val["miou"] == pytest.approx((1 / 3 + 0 + 1) / 3, abs=1e-12)
    assert val["dice"] == pytest.approx((0.5 + 0 + 1) / 3, abs=1e-12)
    assert val["pred_area"] == pytest.approx((4 / 16 + 0 + 1) / 3, abs=1e-12)
    assert val["gt_area"] == pytest.approx((4 / 16 + 1 / 16 + 1) / 3, abs=1e-12)


# ---- tiny runs -----------------------------------------------------------------------------------------------

def test_stage_switch_applies_each_stage_loss_weights(root, tmp_path):
    from fastsam.train.trainer import train

    # Stage 0 trains on focal alone, stage 1 on dice alone: each epoch's loss must equal that term.
    stages = [{"start_epoch": 0, "end_epoch": 1, "loss_weights": {"focal": 1.0, "dice": 0.0, "iou": 0.0}},
              {"start_epoch": 1, "end_epoch": 2, "loss_weights": {"focal": 0.0, "dice": 1.0, "iou": 0.0}}]
    cfg = _cfg(root, tmp_path, num_epochs=2, stage_schedule=stages)
    train(cfg)
    _, first, second = _metrics(cfg)
    assert first["stage"].startswith("stage 0") and second["stage"].startswith("stage 1")
    assert first["train_loss"] == pytest.approx(first["train_focal"], rel=1e-6)
    assert second["train_loss"] == pytest.approx(second["train_dice"], rel=1e-6)
    assert abs(first["train_loss"] - first["train_dice"]) > 1e-3  # the terms differ, so the check can fail
    assert "epoch 2/2: stage 1 (epochs 2-2, finetune), loss weights focal 0 dice 1 iou 0" in \
        (cfg.run_dir / "training_log.txt").read_text()


def test_multimask_training_decodes_three_masks(root, tmp_path, decoded):
    from fastsam.train.trainer import train

    cfg = _cfg(root, tmp_path, multimask_output=True)
    train(cfg)
    assert len(decoded) == 2 and all(call["shape"][1] == 3 for call in decoded)
    assert _changed(_start_decoder_weights(cfg), _decoder_weights(cfg.run_dir / "latest_model.pth"))


def test_point_prompts_reach_the_decoder(root, tmp_path, decoded):
    from fastsam.train.trainer import train

    cfg = _cfg(root, tmp_path, use_box_prompt=False, num_pos_points=2, num_neg_points=1)
    record = train(cfg)
    assert decoded
    for call in decoded:
        n = call["coords"].shape[0]
        assert call["boxes"] is None and call["coords"].shape == (n, 3, 2) and call["shape"][1] == 1
        assert call["labels"].tolist() == [[1, 1, 0]] * n  # two foreground clicks, one background
    assert torch.isfinite(torch.tensor(record["train_loss"]))


def test_amp_bf16_on_cpu_trains_in_bf16_with_finite_loss(root, tmp_path, decoded):
    from fastsam.train.trainer import train

    cfg = _cfg(root, tmp_path, amp="bf16", device="cpu")
    record = train(cfg)
    assert len(decoded) == 2 and all(call["dtype"] == torch.bfloat16 for call in decoded)
    assert torch.isfinite(torch.tensor(record["train_loss"])) and record["nonfinite_steps"] == 0
    changed = _changed(_start_decoder_weights(cfg), _decoder_weights(cfg.run_dir / "latest_model.pth"))
    assert "mask_decoder.iou_prediction_head.layers.0.weight" in changed
    # The checkpoint holds float32 weights: autocast computes in bf16, the master weights stay fp32.
    assert all(v.dtype == torch.float32 for v in _decoder_weights(cfg.run_dir / "latest_model.pth").values()
               if v.is_floating_point())


def test_custom_iou_head_trains_and_round_trips_through_its_checkpoint(root, tmp_path):
    from fastsam.train.model_setup import build_student
    from fastsam.train.trainer import train

    cfg = _cfg(root, tmp_path, iou_head_depth=2, iou_head_hidden_dim=32)
    train(cfg)
    latest = cfg.run_dir / "latest_model.pth"
    state = torch.load(latest, map_location="cpu", weights_only=True)["model"]
    head = {k: v for k, v in state.items() if k.startswith("mask_decoder.iou_prediction_head.")}
    assert sorted((k, tuple(v.shape)) for k, v in head.items()) == [
        ("mask_decoder.iou_prediction_head.layers.0.bias", (32,)),
        ("mask_decoder.iou_prediction_head.layers.0.weight", (32, 256)),
        ("mask_decoder.iou_prediction_head.layers.1.bias", (4,)),
        ("mask_decoder.iou_prediction_head.layers.1.weight", (4, 32)),
    ]
    # Finetuning from that checkpoint with the same head keeps every weight, the trained head included.
    again = build_student(_cfg(root, tmp_path, iou_head_depth=2, iou_head_hidden_dim=32, checkpoint=str(latest)))
    for key, value in again.state_dict().items():
        assert torch.equal(value, state[key]), key
    assert len(_changed(_start_decoder_weights(cfg), state)) > 0  # it trained
    # The official head cannot take it: a clear error names the head's keys (set the same iou_head_* keys).
    with pytest.raises(ValueError, match="iou_prediction_head"):
        build_student(_cfg(root, tmp_path, checkpoint=str(latest)))
