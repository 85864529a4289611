"""The `distillation` config block: teacher, lambda, one sub-block per term family, dynamic lambda.

Loaded by train/config.py's generic loader (unknown keys and wrong types are refused there); the ranges
are checked here by `check_distillation`, with messages naming the full key.

    total loss = task + lambda_coef * sum over teachers t of weight_t * sum over enabled modules of
                 (sum of w_* x term(t))

The teachers are `teachers` (a list) or, when that is empty, the single `teacher`.

A disabled module contributes exactly 0 and is not computed (its hooks are not even installed).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Optional


@dataclass(frozen=True)
class TeacherConfig:
    """The frozen teacher: any registry model, run in eval mode without gradients."""

    model_type: str = "vit_h"
    checkpoint: Optional[str] = None
    # folder written by sam-extract-features (holds the teacher's final image embeddings): the teacher then
    # runs only its prompt encoder + decoder per step; None = run the teacher's image encoder online
    embeddings_dir: Optional[str] = None
    weight: float = 1.0
    # the teacher's name in the logged term names (<name>/<term>) when there are several; default model_type
    name: Optional[str] = None


@dataclass(frozen=True)
class EncoderPatchConfig:
    """Student vs teacher image embeddings (B, 256, h, w): w_l2 * MSE + w_cos * (1 - cos over channels)."""

    enable: bool = True
    w_l2: float = 1.0
    w_cos: float = 1.0


@dataclass(frozen=True)
class PromptEmbedConfig:
    """The decoder transformer's output tokens (IoU, mask and prompt tokens, each conditioned on the prompt):
    w_mse * MSE + w_cos * (1 - cos over channels)."""

    enable: bool = True
    w_mse: float = 1.0
    w_cos: float = 1.0


@dataclass(frozen=True)
class DecoderMaskTokenConfig:
    """The mask tokens' outputs of the decoder transformer as logits over channels: w_kl * T^2 * KL."""

    enable: bool = True
    w_kl: float = 1.0
    temperature: float = 2.0


@dataclass(frozen=True)
class DenseMaskLogitsConfig:
    """The student's low-res mask logits vs the teacher's for the same prompts, mask token for mask token (the
    candidate the task trains is one of them): w_kl * per-pixel Bernoulli KL + w_focal * focal(gamma) against
    the teacher's probabilities. Off by default: it upscales every prompt's masks once more on both sides."""

    enable: bool = False
    w_kl: float = 1.0
    w_focal: float = 1.0
    gamma: float = 2.0


@dataclass(frozen=True)
class AttentionConfig:
    """The decoder's token-to-image attention maps (every layer and the final one): w_kl * KL(teacher || student)."""

    enable: bool = True
    w_kl: float = 1.0


@dataclass(frozen=True)
class RkdConfig:
    """Relational distillation over `num_tokens` sampled image-embedding tokens per image (works at batch 1):
    w_dist * distance term + w_angle * angle term (Park et al. 2019 use 1 and 2)."""

    enable: bool = True
    w_dist: float = 1.0
    w_angle: float = 2.0
    num_tokens: int = 64


@dataclass(frozen=True)
class DynamicLambdaConfig:
    """Plateau schedule of lambda_coef on the validation mIoU: after `patience` epochs without a new best,
    lambda *= factor, never below `min`."""

    enable: bool = False
    factor: float = 0.5
    patience: int = 2
    min: float = 0.0


@dataclass(frozen=True)
class DistillationConfig:
    enable: bool = False
    lambda_coef: float = 1.0
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    # several teachers, each with its own weight (replaces `teacher` when not empty)
    teachers: list[TeacherConfig] = field(default_factory=list)
    encoder_patch: EncoderPatchConfig = field(default_factory=EncoderPatchConfig)
    prompt_embed: PromptEmbedConfig = field(default_factory=PromptEmbedConfig)
    decoder_mask_token: DecoderMaskTokenConfig = field(default_factory=DecoderMaskTokenConfig)
    dense_mask_logits: DenseMaskLogitsConfig = field(default_factory=DenseMaskLogitsConfig)
    attention: AttentionConfig = field(default_factory=AttentionConfig)
    rkd: RkdConfig = field(default_factory=RkdConfig)
    dynamic_lambda: DynamicLambdaConfig = field(default_factory=DynamicLambdaConfig)


MODULES = ("encoder_patch", "prompt_embed", "decoder_mask_token", "dense_mask_logits", "attention", "rkd")


def enabled_modules(cfg: DistillationConfig) -> tuple[str, ...]:
    return tuple(name for name in MODULES if getattr(cfg, name).enable)


def teacher_configs(cfg: DistillationConfig) -> list[tuple[str, TeacherConfig]]:
    """(key prefix, teacher) of every teacher: `teachers[i].` entries, or the single `teacher.`."""
    if cfg.teachers:
        return [(f"teachers[{i}].", t) for i, t in enumerate(cfg.teachers)]
    return [("teacher.", cfg.teacher)]


def teacher_name(teacher: TeacherConfig) -> str:
    return teacher.name or teacher.model_type


def range_errors(cfg: DistillationConfig, model_types: tuple[str, ...], prefix: str = "distillation.") -> list[str]:
    """Every out-of-range value of the block, as messages naming the full key (empty when valid)."""
    errors = []

    def need(key: str, value: float, ok: bool, what: str) -> None:
        if not ok or (isinstance(value, float) and not math.isfinite(value)):
            errors.append(f"config key '{prefix}{key}' must be {what}, got {value}")

    need("lambda_coef", cfg.lambda_coef, cfg.lambda_coef >= 0, ">= 0")
    if cfg.teachers and cfg.teacher != TeacherConfig():
        errors.append(f"config keys '{prefix}teacher' and '{prefix}teachers' are both set; use one (a one-element "
                      "'teachers' list is the same as 'teacher')")
    for key, teacher in teacher_configs(cfg):
        if teacher.model_type not in model_types:
            errors.append(f"config key '{prefix}{key}model_type': expected one of {model_types}, "
                          f"got {teacher.model_type!r}")
        need(f"{key}weight", teacher.weight, teacher.weight >= 0, ">= 0")
    names = [teacher_name(t) for _, t in teacher_configs(cfg)]
    for name in sorted({n for n in names if names.count(n) > 1}):
        errors.append(f"config key '{prefix}teachers': two teachers are named {name!r} (their model_type when "
                      "'name' is not set); give each a distinct 'name'")
    for name in MODULES:
        block = getattr(cfg, name)
        for f in dataclasses.fields(block):
            if f.name.startswith("w_"):
                value = getattr(block, f.name)
                need(f"{name}.{f.name}", value, value >= 0, ">= 0")
    need("decoder_mask_token.temperature", cfg.decoder_mask_token.temperature, cfg.decoder_mask_token.temperature > 0, "> 0")
    need("dense_mask_logits.gamma", cfg.dense_mask_logits.gamma, cfg.dense_mask_logits.gamma >= 0, ">= 0")
    # The angle term needs triplets of distinct tokens.
    need("rkd.num_tokens", cfg.rkd.num_tokens, cfg.rkd.num_tokens >= 3, ">= 3")
    dyn = cfg.dynamic_lambda
    need("dynamic_lambda.factor", dyn.factor, 0 < dyn.factor < 1, "in (0, 1)")
    need("dynamic_lambda.patience", dyn.patience, dyn.patience >= 1, ">= 1")
    need("dynamic_lambda.min", dyn.min, 0 <= dyn.min <= cfg.lambda_coef, f"in [0, lambda_coef={cfg.lambda_coef}]")
    if cfg.enable and not enabled_modules(cfg):
        errors.append(f"config key '{prefix}enable' is true but every module is disabled; enable one of "
                      f"{', '.join(MODULES)}")
    return errors
