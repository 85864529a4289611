"""Losses, LR schedule, stage switching and freezing checked against values worked out by hand."""
from __future__ import annotations

import math

import pytest
import torch

from fastsam.train.config import config_from_dict
from fastsam.train.freezing import apply_freeze, frozen_parts, set_train_mode, trainable_parameters
from fastsam.train.losses import dice_loss, distillation_loss, mask_iou, mask_losses, sigmoid_focal_loss
from fastsam.train.schedule import get_lr, stage_for_epoch

LN2 = math.log(2.0)


def test_focal_loss_hand_values():
    # logit 0 -> p = 0.5: positive 0.25 * 0.5^2 * ln2, negative 0.75 * 0.5^2 * ln2; mean of the two.
    logits = torch.zeros(1, 1, 2)
    targets = torch.tensor([[[1.0, 0.0]]])
    expected = (0.25 * 0.25 * LN2 + 0.75 * 0.25 * LN2) / 2
    assert sigmoid_focal_loss(logits, targets).item() == pytest.approx(expected, rel=1e-6)
    # logit ln3 -> p = 0.75 on a positive: 0.25 * 0.25^2 * -ln(0.75)
    single = sigmoid_focal_loss(torch.full((1, 1), math.log(3.0)), torch.ones(1, 1))
    assert single.item() == pytest.approx(0.25 * 0.0625 * -math.log(0.75), rel=1e-6)


def test_dice_loss_hand_values():
    logits = torch.zeros(1, 1, 2)  # p = 0.5 everywhere
    targets = torch.tensor([[[1.0, 0.0]]])
    assert dice_loss(logits, targets).item() == pytest.approx(1 - 2 / 3, rel=1e-6)
    perfect = dice_loss(torch.tensor([[[50.0, -50.0]]]), targets)
    assert perfect.item() == pytest.approx(0.0, abs=1e-6)


def test_mask_iou_hand_values():
    logits = torch.tensor([[[1.0, -1.0], [1.0, 1.0]]])
    targets = torch.tensor([[[1.0, 1.0], [0.0, 1.0]]])
    assert mask_iou(logits, targets).item() == pytest.approx(0.5)
    assert mask_iou(-torch.ones(1, 2, 2), torch.zeros(1, 2, 2)).item() == 1.0


def test_multimask_keeps_lowest_loss_and_iou_mse_uses_actual_iou():
    target = torch.tensor([[[1.0, 0.0], [1.0, 0.0]]])  # (N=1, 2, 2)
    good = target * 40 - 20
    logits = torch.stack([-good[0], good[0]])[None]  # candidate 1 matches the target, candidate 0 is inverted
    iou_pred = torch.tensor([[0.5, 0.5]])
    terms = mask_losses(logits, iou_pred, target, w_focal=1.0, w_dice=1.0, w_iou=1.0)
    assert terms.chosen.tolist() == [1]
    assert terms.focal.item() < 1e-6 and terms.dice.item() < 1e-6
    assert terms.iou.item() == pytest.approx(((0.5 - 0.0) ** 2 + (0.5 - 1.0) ** 2) / 2)
    assert terms.total.item() == pytest.approx(terms.focal.item() + terms.dice.item() + 0.25, rel=1e-5)
    weighted = mask_losses(logits, iou_pred, target, w_focal=0.0, w_dice=0.0, w_iou=2.0)
    assert weighted.total.item() == pytest.approx(0.5)
    with pytest.raises(ValueError, match="targets"):
        mask_losses(logits, iou_pred, target[:, :1], 1.0, 1.0, 1.0)


def test_distillation_losses_hand_values():
    student = torch.tensor([1.0, 2.0]).view(1, 2, 1, 1)
    assert distillation_loss(student, torch.zeros(1, 2, 1, 1), "mse").item() == pytest.approx(2.5)
    assert distillation_loss(student, torch.zeros(1, 2, 1, 1), "l1").item() == pytest.approx(1.5)
    parallel = torch.tensor([2.0, 4.0]).view(1, 2, 1, 1)
    orthogonal = torch.tensor([-2.0, 1.0]).view(1, 2, 1, 1)
    assert distillation_loss(student, parallel, "cosine").item() == pytest.approx(0.0, abs=1e-6)
    assert distillation_loss(student, orthogonal, "cosine").item() == pytest.approx(1.0, abs=1e-6)
    with pytest.raises(ValueError, match="'kl'"):
        distillation_loss(student, parallel, "kl")
    with pytest.raises(ValueError, match="differ"):
        distillation_loss(student, torch.zeros(1, 3, 1, 1), "mse")


def test_polynomial_lr_with_warmup():
    kw = dict(total_steps=110, base_lr=1e-3, end_lr=0.0, warmup_steps=10)
    assert get_lr(0, **kw) == pytest.approx(1e-4)
    assert get_lr(9, **kw) == pytest.approx(1e-3)
    assert get_lr(10, **kw) == pytest.approx(1e-3)
    assert get_lr(60, **kw) == pytest.approx(5e-4)
    assert get_lr(60, power=2.0, **kw) == pytest.approx(2.5e-4)
    assert get_lr(110, **kw) == 0.0 and get_lr(500, **kw) == 0.0
    assert get_lr(60, total_steps=110, base_lr=1e-3, end_lr=1e-4, warmup_steps=10) == pytest.approx(5.5e-4)
    with pytest.raises(ValueError, match="total_steps"):
        get_lr(0, total_steps=0, base_lr=1.0)


def test_stage_schedule_switches_at_epoch_boundaries():
    cfg = config_from_dict({
        "use_distill": False, "lambda_coef": 0.5, "loss_weights": {"focal": 2.0},
        "stage_schedule": [
            {"start_epoch": 0, "end_epoch": 2, "distillation": True, "lambda_coef": 0.9},
            {"start_epoch": 2, "end_epoch": 4, "distillation": False, "loss_weights": {"focal": 20.0}},
        ],
    })
    stages = [stage_for_epoch(cfg, e) for e in range(6)]
    assert [s.distillation for s in stages] == [True, True, False, False, False, False]
    assert [s.lambda_coef for s in stages] == [0.9, 0.9, 0.5, 0.5, 0.5, 0.5]
    assert [s.loss_weights.focal for s in stages] == [2.0, 2.0, 20.0, 20.0, 2.0, 2.0]
    assert stages[2].loss_weights.dice == 1.0
    assert stages[0].name.startswith("stage 0") and stages[5].name == "default"


@pytest.mark.slow
def test_frozen_parts_stay_bit_identical_after_a_step():
    from fastsam.build_sam import build_sam_vit_t

    torch.manual_seed(0)
    model = build_sam_vit_t(image_size=64)
    parts = frozen_parts(config_from_dict({"freeze": {"image_encoder": True, "prompt_encoder": True}}).freeze)
    apply_freeze(model, parts)
    set_train_mode(model, parts)
    assert not model.image_encoder.training and model.mask_decoder.training
    before = {k: v.clone() for k, v in model.state_dict().items()}
    params = trainable_parameters(model)
    assert params and all(p.requires_grad for p in params)
    optimizer = torch.optim.AdamW(params, lr=1e-2)
    with torch.no_grad():
        emb = model.image_encoder(model.preprocess(torch.rand(1, 3, 64, 64) * 255))
    sparse, dense = model.prompt_encoder(points=None, boxes=torch.tensor([[4.0, 4.0, 40.0, 40.0]]), masks=None)
    logits, _ = model.mask_decoder(emb, model.prompt_encoder.get_dense_pe(), sparse, dense, multimask_output=True)
    logits.square().mean().backward()
    optimizer.step()
    after = model.state_dict()
    for key, value in before.items():
        if not key.startswith("mask_decoder."):
            assert torch.equal(value, after[key]), key
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("mask_decoder."))


def test_bce_loss_hand_values_and_weight_in_total():
    from fastsam.train.losses import bce_loss

    logits = torch.tensor([[[0.0, math.log(3.0)]]])  # p = 0.5 and 0.75
    targets = torch.tensor([[[1.0, 0.0]]])
    assert bce_loss(logits, targets).item() == pytest.approx((LN2 - math.log(0.25)) / 2, rel=1e-6)
    target = torch.tensor([[[1.0, 0.0], [1.0, 0.0]]])
    masks = torch.zeros(1, 1, 2, 2)  # p = 0.5 everywhere: per-pixel BCE is ln 2
    off = mask_losses(masks, torch.ones(1, 1), target, w_focal=0.0, w_dice=0.0, w_iou=0.0)
    on = mask_losses(masks, torch.ones(1, 1), target, w_focal=0.0, w_dice=0.0, w_iou=0.0, w_bce=2.0)
    assert off.total.item() == 0.0 and on.bce.item() == pytest.approx(LN2, rel=1e-6)
    assert on.total.item() == pytest.approx(2 * LN2, rel=1e-6)


def test_stage_overrides_bce_weight():
    cfg = config_from_dict({"train_img_dir": "x", "train_mask_dir": "y", "loss_weights": {"bce": 0.5},
                            "stage_schedule": [{"start_epoch": 1, "end_epoch": 2, "loss_weights": {"bce": 3.0}}]})
    assert stage_for_epoch(cfg, 0).loss_weights.bce == 0.5
    assert stage_for_epoch(cfg, 1).loss_weights.bce == 3.0 and stage_for_epoch(cfg, 1).loss_weights.dice == 1.0
