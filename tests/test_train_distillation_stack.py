"""The distillation stack (train/distillation/): each term against a hand computation, disabled modules
exactly absent, config ranges, dynamic lambda, and distillation-only training from a tiny frozen teacher."""
from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from fastsam.train.distillation import terms as T
from fastsam.train.distillation.config import DistillationConfig, range_errors
from fastsam.train.distillation.dynamic_lambda import PlateauLambda

MODEL_TYPES = ("vit_t", "vit_b", "vit_l", "vit_h")


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """One thread: on the shared 2-core CI machine the tiny models run several times faster than with two."""
    before, _ = torch.get_num_threads(), torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _close(value: torch.Tensor, expected: float) -> None:
    assert value.item() == pytest.approx(expected, rel=1e-5, abs=1e-7)


def test_mse_and_cosine_distance_by_hand():
    s = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    t = torch.tensor([[0.0, 1.0], [0.0, 4.0]])
    _close(T.mse(s, t), (1 + 1 + 0 + 4) / 4)
    # Row 0 is orthogonal (1 - 0), row 1 parallel (1 - 1).
    _close(T.cosine_distance(s, t, dim=1), (1.0 + 0.0) / 2)
    with pytest.raises(ValueError, match="differ"):
        T.mse(s, t[:1])


def test_kl_with_temperature_by_hand():
    s, t, temp = [1.0, 2.0, 0.0], [2.0, 1.0, 0.5], 2.0

    def softmax(x):
        e = [math.exp(v / temp) for v in x]
        return [v / sum(e) for v in e]

    ps, pt = softmax(s), softmax(t)
    expected = temp ** 2 * sum(b * math.log(b / a) for a, b in zip(ps, pt))
    # Two identical rows: the mean over rows equals one row's value.
    _close(T.kl_with_temperature(torch.tensor([s, s]), torch.tensor([t, t]), temp), expected)
    _close(T.kl_with_temperature(torch.tensor([s]), torch.tensor([s]), temp), 0.0)


def test_binary_kl_focal_and_distribution_kl_by_hand():
    # Student logit 0 (p = 0.5), teacher logit ln 3 (p = 0.75).
    s, t = torch.zeros(1, 1, 1, 2), torch.full((1, 1, 1, 2), math.log(3.0))
    _close(T.binary_kl(s, t), 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5))
    # Focal with soft target 0.75: alpha-weighted CE times (1 - p_t)^gamma, p_t = p*y + (1-p)(1-y) = 0.5.
    ce = -(0.75 * math.log(0.5) + 0.25 * math.log(0.5))
    alpha = 0.25 * 0.75 + 0.75 * 0.25
    _close(T.focal_to_teacher(s, t, gamma=2.0), alpha * ce * 0.5 ** 2)
    p, q = [0.7, 0.2, 0.1], [0.5, 0.25, 0.25]
    _close(T.distribution_kl(torch.tensor([q]), torch.tensor([p])), sum(a * math.log(a / b) for a, b in zip(p, q)))


def _smooth_l1(d: float) -> float:
    return 0.5 * d * d if abs(d) < 1 else abs(d) - 0.5


def test_rkd_distance_by_hand_and_scale_invariance():
    right = torch.tensor([[[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]])  # batch of 1, 3 tokens
    _close(T.rkd_distance(right, 3 * right), 0.0)  # RKD compares shapes: a scaled copy costs nothing
    other = torch.tensor([[[0.0, 0.0], [2.0, 0.0], [0.0, 1.0]]])
    ds = [1.0, 1.0, math.sqrt(2)]  # pairs (0,1), (0,2), (1,2)
    dt = [2.0, 1.0, math.sqrt(5)]
    ms, mt = sum(ds) / 3, sum(dt) / 3
    expected = sum(_smooth_l1(a / ms - b / mt) for a, b in zip(ds, dt)) / 3  # each pair counted twice, same mean
    _close(T.rkd_distance(right, other), expected)
    # Channel counts may differ: only distances are compared.
    padded = torch.cat([other, torch.zeros(1, 3, 5)], dim=-1)
    _close(T.rkd_distance(right, padded), expected)


def test_rkd_angle_by_hand():
    right = torch.tensor([[[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]])
    equilateral = torch.tensor([[[0.0, 0.0], [1.0, 0.0], [0.5, math.sqrt(3) / 2]]])
    # Over the 27 (j, i, k) entries: i == k != j gives cos 1 in both; i or k == j gives a zero vector (0 in
    # both); the 6 entries with i, k, j distinct hold the cosine of the angle at j (twice per vertex).
    # Right triangle: 0 at vertex 0, 1/sqrt(2) at vertices 1 and 2; equilateral: 0.5 everywhere.
    diffs = [0.0 - 0.5, 1 / math.sqrt(2) - 0.5, 1 / math.sqrt(2) - 0.5]
    expected = 2 * sum(_smooth_l1(d) for d in diffs) / 27
    _close(T.rkd_angle(right, equilateral), expected)
    _close(T.rkd_angle(right, 2 * right + 1), 0.0)


def test_sample_tokens_takes_the_same_positions_of_both_maps():
    s = torch.arange(2 * 4 * 4.0).view(1, 2, 4, 4)
    t = s * 10
    gen = torch.Generator().manual_seed(0)
    ss, tt = T.sample_tokens(s, t, 5, gen)
    assert ss.shape == (1, 5, 2) and torch.equal(tt, ss * 10)
    full, _ = T.sample_tokens(s, t, 100)
    assert full.shape == (1, 16, 2)


def test_config_ranges_name_the_key():
    assert range_errors(DistillationConfig(), MODEL_TYPES) == []
    bad = DistillationConfig(enable=True, lambda_coef=-1.0)
    assert any("'distillation.lambda_coef' must be >= 0" in e for e in range_errors(bad, MODEL_TYPES))
    cases = {
        "distillation.rkd.w_angle": dict(rkd=dataclasses.replace(DistillationConfig().rkd, w_angle=-0.1)),
        "distillation.decoder_mask_token.temperature": dict(
            decoder_mask_token=dataclasses.replace(DistillationConfig().decoder_mask_token, temperature=0.0)),
        "distillation.dynamic_lambda.factor": dict(
            dynamic_lambda=dataclasses.replace(DistillationConfig().dynamic_lambda, factor=1.0)),
        "distillation.dynamic_lambda.min": dict(
            dynamic_lambda=dataclasses.replace(DistillationConfig().dynamic_lambda, min=2.0)),
        "distillation.rkd.num_tokens": dict(rkd=dataclasses.replace(DistillationConfig().rkd, num_tokens=2)),
        "distillation.teacher.model_type": dict(teacher=dataclasses.replace(DistillationConfig().teacher,
                                                                            model_type="vit_x")),
        "distillation.teacher.weight": dict(teacher=dataclasses.replace(DistillationConfig().teacher, weight=-1.0)),
    }
    for key, change in cases.items():
        errors = range_errors(DistillationConfig(**change), MODEL_TYPES)
        assert len(errors) == 1 and f"'{key}'" in errors[0], (key, errors)
    off = {name: dataclasses.replace(getattr(DistillationConfig(), name), enable=False)
           for name in ("encoder_patch", "prompt_embed", "decoder_mask_token", "attention", "rkd")}
    errors = range_errors(DistillationConfig(enable=True, **off), MODEL_TYPES)
    assert errors and "every module is disabled" in errors[0]


def test_plateau_lambda_schedule_and_state_round_trip():
    lam = PlateauLambda(1.0, factor=0.5, patience=2, minimum=0.2)
    values = [lam.step(s) for s in (0.5, 0.6, 0.6, 0.55, 0.7, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6)]
    # New bests at 0.5, 0.6, 0.7; a drop after every 2 epochs without one; floored at 0.2.
    assert values == [1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.25, 0.25, 0.2, 0.2, 0.2]
    copy = PlateauLambda(1.0, factor=0.5, patience=2, minimum=0.2)
    mid = PlateauLambda(1.0, factor=0.5, patience=2, minimum=0.2)
    for s in (0.5, 0.6, 0.6):
        mid.step(s)
    copy.load_state_dict(mid.state_dict())
    assert [copy.step(s) for s in (0.55, 0.7)] == [0.5, 0.5]
    fixed = PlateauLambda(0.3, enabled=False)
    assert [fixed.step(0.1) for _ in range(5)] == [0.3] * 5


def _tiny_sam(seed: int):
    from fastsam.build_sam import sam_model_registry

    torch.manual_seed(seed)
    return sam_model_registry["vit_t"](checkpoint=None, image_size=64)


def _item(seed: int) -> dict:
    gen = torch.Generator().manual_seed(seed)
    return {"image": torch.rand(3, 64, 64, generator=gen) * 255, "image_path": f"img{seed}.png", "digest": str(seed),
            "boxes": torch.tensor([[8.0, 8.0, 40.0, 48.0], [20.0, 4.0, 60.0, 30.0]])}


def _decode(sam, embedding: torch.Tensor, item: dict, multimask: bool = True):
    sparse, dense = sam.prompt_encoder(points=None, boxes=item["boxes"], masks=None)
    return sam.mask_decoder(image_embeddings=embedding[None], image_pe=sam.prompt_encoder.get_dense_pe(),
                            sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense, multimask_output=multimask)


def _stack(student, teacher_sam, **modules):
    from fastsam.train.distillation.stack import DistillationStack
    from fastsam.train.distillation.teacher import Teacher

    base = DistillationConfig()
    cfg = DistillationConfig(enable=True, **{name: dataclasses.replace(getattr(base, name), **change)
                                             for name, change in modules.items()})
    teacher = Teacher(teacher_sam, img_size=64, embeddings_dir=None, model_type="vit_t",
                      attention=cfg.attention.enable)
    return DistillationStack(cfg, student, teacher), cfg


def _student_embedding(sam, item):
    return sam.image_encoder(sam.preprocess(item["image"])[None])[0]


def test_disabled_modules_are_not_computed_nor_hooked():
    student, teacher = _tiny_sam(0), _tiny_sam(1)
    off = {"enable": False}
    stack, cfg = _stack(student, teacher, prompt_embed=off, decoder_mask_token=off, attention=off,
                        dense_mask_logits=off)
    # No decoder module enabled: no attention hooks, and the teacher's decoder never runs.
    assert not student.mask_decoder.transformer.final_attn_token_to_image._forward_hooks
    runs = []
    teacher.mask_decoder.register_forward_hook(lambda *a: runs.append(1))
    item = _item(0)
    emb = _student_embedding(student, item)
    with stack.recording():
        _decode(student, emb, item)
        terms = stack.image_terms(emb, item, torch.device("cpu"))
    assert set(terms) == set(stack.term_names) == {"encoder_patch_l2", "encoder_patch_cos", "rkd_dist", "rkd_angle"}
    assert not runs
    expected = cfg.encoder_patch.w_l2 * terms["encoder_patch_l2"] + cfg.encoder_patch.w_cos * terms["encoder_patch_cos"] \
        + cfg.rkd.w_dist * terms["rkd_dist"] + cfg.rkd.w_angle * terms["rkd_angle"]
    assert torch.equal(stack.weighted(terms), expected)
    # Outside recording() nothing is kept (validation passes are not distilled).
    _decode(student, emb, item)
    assert stack.capture.take() == []


def test_every_term_is_zero_against_itself():
    sam = _tiny_sam(0)
    stack, _ = _stack(sam, _tiny_sam(0), dense_mask_logits={"enable": True})
    item = _item(0)
    emb = _student_embedding(sam, item)
    with stack.recording():
        _decode(sam, emb, item)
        terms = stack.image_terms(emb, item, torch.device("cpu"))
    assert set(terms) == set(stack.term_names) and len(terms) == 10
    for name, value in terms.items():
        if name == "dense_mask_logits_focal":  # focal against soft targets is not 0 at the targets
            continue
        assert abs(value.item()) < 1e-5, (name, value.item())


@pytest.mark.slow
def test_distillation_only_training_lowers_the_loss_and_leaves_the_teacher_untouched():
    student, teacher = _tiny_sam(0), _tiny_sam(1)
    student.train()
    stack, _ = _stack(student, teacher, dense_mask_logits={"enable": True})
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    items = [_item(0)]
    optimizer = torch.optim.Adam(student.parameters(), lr=1e-3)
    losses = []
    for _ in range(8):
        total = 0.0
        with stack.recording():
            for item in items:
                emb = _student_embedding(student, item)
                _decode(student, emb, item)
                total = total + stack.weighted(stack.image_terms(emb, item, torch.device("cpu")))
        optimizer.zero_grad()
        (total / len(items)).backward()
        optimizer.step()
        losses.append(total.item() / len(items))
    assert losses[-1] < 0.7 * losses[0], losses
    assert all(torch.equal(before[k], v) for k, v in teacher.state_dict().items())
    assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())


def test_captured_attention_is_the_map_the_decoder_used():
    from fastsam.train.distillation.capture import DecoderCapture, mask_logits

    sam, item = _tiny_sam(0), _item(0)
    with torch.no_grad():
        emb = _student_embedding(sam, item)
        plain = _decode(sam, emb, item)
        seen = {}
        final = sam.mask_decoder.transformer.final_attn_token_to_image
        final.register_forward_hook(lambda m, a, kw, out: seen.update(v=kw["v"], out=out), with_kwargs=True)
        capture = DecoderCapture(sam, attention=True)
        with capture.recording():
            hooked = _decode(sam, emb, item)
        (call,) = capture.take()
        rebuilt_logits = mask_logits(sam.mask_decoder, call)
    assert torch.equal(plain[0], hooked[0])  # hooks change nothing
    assert rebuilt_logits.shape == (2, 4, 16, 16) and torch.allclose(rebuilt_logits[:, 1:], hooked[0], atol=1e-5)
    assert len(call.attention) == 3 and call.tokens.shape[:2] == (2, 1 + 4 + 2)  # IoU, 4 mask, 2 box-corner tokens
    attn = call.attention[-1]
    assert torch.allclose(attn.sum(-1), torch.ones(()), atol=1e-5)
    rebuilt = final.out_proj(final._recombine_heads(attn @ final._separate_heads(final.v_proj(seen["v"]))))
    assert torch.allclose(rebuilt, seen["out"], atol=1e-5)


def test_teachers_list_config_and_its_errors(tmp_path):
    from fastsam.train.config import ConfigError, config_from_dict, required_paths

    ckpt = tmp_path / "b.pth"
    block = {"enable": True, "teachers": [{"model_type": "vit_b", "checkpoint": str(ckpt), "weight": 0.7},
                                          {"model_type": "vit_t", "weight": 0.3, "name": "small"}]}
    cfg = config_from_dict({"distillation": block})
    assert [(t.model_type, t.weight, t.name) for t in cfg.distillation.teachers] == [("vit_b", 0.7, None),
                                                                                      ("vit_t", 0.3, "small")]
    assert required_paths(cfg)["distillation.teachers[0].checkpoint"] == str(ckpt)
    # The single `teacher` block still works, as a one-element list.
    from fastsam.train.distillation.config import teacher_configs
    single = config_from_dict({"distillation": {"enable": True, "teacher": {"model_type": "vit_b", "weight": 2.0}}})
    assert [(k, t.model_type, t.weight) for k, t in teacher_configs(single.distillation)] == [("teacher.", "vit_b", 2.0)]
    bad = {
        "'distillation.teachers[1].weight' must be >= 0": [{"model_type": "vit_b"}, {"model_type": "vit_t", "weight": -1}],
        "two teachers are named 'vit_b'": [{"model_type": "vit_b"}, {"model_type": "vit_b", "weight": 0.5}],
        "'distillation.teachers[0].model_type'": [{"model_type": "vit_q"}],
    }
    for message, teachers in bad.items():
        with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
            config_from_dict({"distillation": {"enable": True, "teachers": teachers}})
    with pytest.raises(ConfigError, match="'distillation.teacher' and 'distillation.teachers' are both set"):
        config_from_dict({"distillation": {"enable": True, "teacher": {"model_type": "vit_b"},
                                           "teachers": [{"model_type": "vit_l"}]}})


def test_two_teachers_add_up_by_their_weights_and_stay_frozen():
    from fastsam.train.distillation.stack import DistillationStack, WeightedTeacher
    from fastsam.train.distillation.teacher import Teacher

    student, big, small = _tiny_sam(0), _tiny_sam(1), _tiny_sam(2)
    base = DistillationConfig()
    cfg = DistillationConfig(enable=True, encoder_patch=dataclasses.replace(base.encoder_patch, w_l2=2.0, w_cos=0.5),
                             prompt_embed=dataclasses.replace(base.prompt_embed, w_mse=3.0),
                             rkd=dataclasses.replace(base.rkd, enable=False))
    weights = {"big": 0.75, "small": 0.25}
    teachers = [WeightedTeacher(name, weights[name], Teacher(sam, img_size=64, embeddings_dir=None, model_type="vit_t",
                                                             attention=True))
                for name, sam in (("big", big), ("small", small))]
    stack = DistillationStack(cfg, student, teachers)
    alone, _ = _stack(student, small, rkd={"enable": False})  # `small` as the only teacher (its own hooks)
    frozen = {name: {k: v.clone() for k, v in t.teacher.sam.state_dict().items()}
              for name, t in zip(weights, teachers)}
    module_weight = {"encoder_patch_l2": 2.0, "encoder_patch_cos": 0.5, "prompt_embed_mse": 3.0, "prompt_embed_cos": 1.0,
                     "decoder_mask_token_kl": 1.0, "attention_kl": 1.0}
    optimizer = torch.optim.Adam(student.parameters(), lr=1e-3)
    item = _item(0)
    for _ in range(2):
        with stack.recording():
            emb = _student_embedding(student, item)
            _decode(student, emb, item)
            terms = stack.image_terms(emb, item, torch.device("cpu"))
        # Every enabled term once per teacher, by <teacher>/<term>; RKD (disabled) nowhere.
        assert set(terms) == {f"{t}/{name}" for t in weights for name in module_weight}
        hand = sum(weights[t] * module_weight[name] * terms[f"{t}/{name}"].item() for t in weights for name in module_weight)
        total = stack.weighted(terms)
        assert total.item() == pytest.approx(hand, rel=1e-6)
        with alone.recording():
            _decode(student, emb, item)
            own = alone.image_terms(emb, item, torch.device("cpu"))
        assert {k: v.item() for k, v in own.items()} == pytest.approx(
            {name: terms[f"small/{name}"].item() for name in module_weight}, rel=1e-5)
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
    for name, t in zip(weights, teachers):
        assert all(torch.equal(frozen[name][k], v) for k, v in t.teacher.sam.state_dict().items()), name
        assert not any(p.requires_grad for p in t.teacher.sam.parameters())
