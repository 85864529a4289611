"""Training configuration: JSON files loaded into frozen dataclasses, with precise errors.

Every field has a commented default, so a config file only lists what differs. Loading rejects an
unknown key (naming the nearest valid one), a value of the wrong type (naming the expected type),
and reports every missing input path at once before any training starts.
Relative paths are taken relative to the current working directory, as on the command line.
"""
from __future__ import annotations

import dataclasses
import difflib
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional, Union

from ..data.coco_root import check_coco_root, coco_root_paths
from ..model_types import MODEL_TYPES, image_size_problem
from .distillation.config import DistillationConfig, range_errors, teacher_configs

# The flat feature-distillation keys take the SAM ViTs as teachers (every type but the student's vit_t).
TEACHER_TYPES = tuple(t for t in MODEL_TYPES if t != "vit_t")


@dataclass(frozen=True)
class FreezeConfig:
    """Which parts of the student are frozen (requires_grad=False and eval mode)."""

    image_encoder: bool = False
    prompt_encoder: bool = False
    mask_decoder: bool = False


@dataclass(frozen=True)
class LossWeights:
    """Weights of the mask losses; the total is focal*L_focal + dice*L_dice + bce*L_bce + iou*L_iou
    (+ distillation)."""

    focal: float = 1.0
    dice: float = 1.0
    iou: float = 1.0
    bce: float = 0.0  # plain pixel-wise binary cross-entropy, off by default
    cls: float = 1.0  # everything mode: every candidate's predicted IoU as fg/bg confidence (BCE)


@dataclass(frozen=True)
class LossWeightOverrides:
    """Per-stage loss weights; a field left at None keeps the run's value."""

    focal: Optional[float] = None
    dice: Optional[float] = None
    iou: Optional[float] = None
    bce: Optional[float] = None
    cls: Optional[float] = None


@dataclass(frozen=True)
class DatasetConfig:
    """What a training item is: "prompt" (each object prompted by its box or points) or "everything" (every
    point of a grid over the image is a prompt, candidates matched one-to-one to all objects)."""

    mode: Literal["prompt", "everything"] = "prompt"
    grid_points: int = 32  # everything mode: points per side of the grid over the original image


@dataclass(frozen=True)
class VisualConfig:
    """Everything mode's validation pictures: <save_path>/epoch_<n>/ at each new best and every N epochs."""

    save_path: Optional[str] = None  # None: <run folder>/visuals
    save_every_n_epochs: Optional[int] = None  # None: only at a new best


@dataclass(frozen=True)
class SchedulerConfig:
    """Polynomial decay from learning_rate to end_lr over all steps, after a linear warmup."""

    power: float = 1.0
    end_lr: float = 0.0
    warmup_steps: int = 0


@dataclass(frozen=True)
class StageConfig:
    """One entry of stage_schedule: active after start_epoch finished epochs until end_epoch have finished,
    i.e. for epochs start_epoch + 1 ... end_epoch as the log counts them (from 1)."""

    start_epoch: int
    end_epoch: int
    distillation: bool = False
    lambda_coef: Optional[float] = None
    loss_weights: LossWeightOverrides = field(default_factory=LossWeightOverrides)


@dataclass(frozen=True)
class TrainConfig:
    # run folder = output_dir / project_name / run_name
    project_name: str = "fastsam"
    run_name: str = "run"
    output_dir: str = "runs"
    # a run folder that already holds a checkpoint is refused unless --resume continues it or this replaces it
    overwrite: bool = False
    # student weights (official or fastsam checkpoint); None = random init (a loud warning is printed)
    checkpoint: Optional[str] = None
    model_type: str = "vit_t"
    # teacher for sam-extract-features (distillation only)
    teacher_checkpoint: Optional[str] = None
    teacher_model_type: str = "vit_h"
    # data: folder datasets (images + masks matched by stem) or COCO instances JSON + image folder
    train_img_dir: Optional[str] = None
    train_mask_dir: Optional[str] = None
    val_img_dir: Optional[str] = None
    val_mask_dir: Optional[str] = None
    train_coco: Optional[str] = None
    val_coco: Optional[str] = None
    # a COCO export root, data_root/{train,val}/_annotations.coco.json with images beside (data/coco_root.py):
    # fills the four keys above (sam-train --data-root)
    data_root: Optional[str] = None
    train_img_dir_teacher_features: Optional[str] = None
    on_bad_sample: Literal["skip", "error"] = "skip"
    max_objects_per_image: int = 8  # objects beyond this are sampled away each epoch (memory bound)
    # prompts derived from the ground truth
    use_box_prompt: bool = True
    box_jitter: float = 0.1  # max box-corner shift as a fraction of box side (training only)
    num_pos_points: int = 0
    num_neg_points: int = 0
    # fraction of training images prompted by one foreground point per object instead of the prompts above
    # (so the model also answers clicks and the mask generator's grid points); those train 3 multimask outputs
    point_prompt_prob: float = 0.0
    # True: 3 candidate masks per prompt (prompt mode trains the lowest-loss one, as SAM does for ambiguous
    # single-point prompts); False: the first mask token only, which is what SamPredictor returns for a box
    # prompt. None: False in prompt mode, True in everything mode. Seed configs may write model.multimask_output.
    multimask_output: Optional[bool] = None
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    # everything mode: grid prompts decoded this many at a time (bounds memory whatever the grid size)
    prediction_batch_size: int = 64
    # everything mode: a candidate matched (Hungarian) to an object with at least this IoU is foreground
    match_iou: float = 0.5
    # everything mode, the cls term: "mean" = BCE averaged over all candidates; "fg_bg" = mean over the matched
    # (foreground) candidates + mean over the others, so the few matches weigh as much as ~all the background
    cls_balance: Literal["mean", "fg_bg"] = "mean"
    visual: VisualConfig = field(default_factory=VisualConfig)
    augment: bool = False  # random horizontal flip (disables the embedding cache)
    # model
    freeze: FreezeConfig = field(default_factory=FreezeConfig)
    unfreeze_epoch: Optional[int] = None  # after this many epochs every frozen part becomes trainable (1: from epoch 2)
    iou_head_depth: int = 3
    iou_head_hidden_dim: int = 256
    img_size: int = 1024  # model input side, a multiple of 16; a ViT checkpoint trained at another size is resized
    mask_threshold: float = 0.0  # on logits; 0.0 = probability 0.5
    # optimisation
    num_epochs: int = 10
    max_steps_per_epoch: Optional[int] = None
    # also write latest_model.pth every N optimizer steps inside an epoch (--resume then continues mid-epoch)
    checkpoint_every_steps: Optional[int] = None
    # a global optimizer-step budget: epochs = ceil(max_steps / steps per epoch), the last one cut at the budget,
    # and the LR schedule decays over it; None = num_epochs full epochs
    max_steps: Optional[int] = None
    # every N steps: smoothed train loss terms and LR to metrics.jsonl, and a validation that also picks
    # best_model.pth and the top-k checkpoints; None = validate once per epoch
    metrics_interval: Optional[int] = None
    # keep the k best validations by per-mask IoU as {step}-{val_per_mask_iou:.2f}.ckpt (0 = none)
    save_top_k: int = 3
    batch_size: int = 4
    num_workers: int = 0
    learning_rate: float = 1e-4
    weight_decay: float = 1e-2
    grad_clip: Optional[float] = None  # max global grad norm; None = no clipping
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    loss_weights: LossWeights = field(default_factory=LossWeights)
    amp: Literal["off", "bf16", "fp16"] = "off"
    # a step with a NaN/inf loss or gradient: "skip" it (warning naming the images, counted in metrics) or "stop"
    # the run; skipping still stops after max_nonfinite_in_a_row bad steps in a row (train/nonfinite.py)
    on_nonfinite: Literal["skip", "stop"] = "skip"
    max_nonfinite_in_a_row: int = 5
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    # under torchrun: how long a rank waits in a collective for a peer (one that died or hangs) before it fails
    ddp_timeout_minutes: float = 30.0
    cache_embeddings: bool = True  # used only when the image encoder is frozen and augment is off
    # also keep cached embeddings on disk here (<dir>/<model identity>/<image sha1>.pt): later runs skip the encoder
    embedding_cache_dir: Optional[str] = None
    # distillation from features extracted by sam-extract-features
    use_distill: bool = False
    distill_feature_level: int = -1  # teacher block index (negative counts from the end)
    distill_student_feature_level: int = -1  # student stage index (negative counts from the end)
    distill_loss_type: Literal["mse", "l1", "cosine"] = "mse"
    distill_loss_weight: float = 1.0
    # while distillation is active: total = (1 - lambda_coef) * task + lambda_coef * distill_loss_weight * distill
    lambda_coef: float = 0.5
    stage_schedule: list[StageConfig] = field(default_factory=list)
    # the distillation stack from a frozen teacher (train/distillation/config.py); while it is active
    # total = task + lambda * distill. Replaces use_distill (one of the two may be on).
    distillation: DistillationConfig = field(default_factory=DistillationConfig)
    # outputs
    num_val_overlays: int = 4

    @property
    def run_dir(self) -> Path:
        return Path(self.output_dir) / self.project_name / self.run_name

    @property
    def multimask(self) -> bool:
        """multimask_output resolved for the dataset mode (see the field's comment)."""
        if self.multimask_output is None:
            return self.dataset.mode == "everything"
        return self.multimask_output

    @property
    def visual_dir(self) -> Path:
        return Path(self.visual.save_path) if self.visual.save_path else self.run_dir / "visuals"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


class ConfigError(ValueError):
    """A config file or override that does not describe a valid TrainConfig."""


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is list:
        return f"list of {_type_name(typing.get_args(tp)[0])}"
    if tp is type(None):
        return "null"
    if dataclasses.is_dataclass(tp):
        return f"object ({tp.__name__})"
    return getattr(tp, "__name__", str(tp))


def _convert(value: Any, tp: Any, key: str) -> Any:
    """Check `value` against the annotation `tp` and convert JSON shapes (dicts, lists) to dataclasses."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(value, arg, key)
            except ConfigError:
                continue
        raise ConfigError(f"config key '{key}': expected {_type_name(tp)}, got {value!r} ({type(value).__name__})")
    if origin is Literal:
        if value not in typing.get_args(tp):
            raise ConfigError(f"config key '{key}': expected one of {_type_name(tp)}, got {value!r}")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"config key '{key}': expected {_type_name(tp)}, got {type(value).__name__}")
        (item_tp,) = typing.get_args(tp)
        return [_convert(v, item_tp, f"{key}[{i}]") for i, v in enumerate(value)]
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"config key '{key}': expected {_type_name(tp)}, got {type(value).__name__}")
        return _build(tp, value, prefix=f"{key}.")
    ok = {
        bool: isinstance(value, bool),
        int: isinstance(value, int) and not isinstance(value, bool),
        float: isinstance(value, (int, float)) and not isinstance(value, bool),
        str: isinstance(value, str),
    }.get(tp)
    if ok is None:
        raise TypeError(f"unsupported annotation {tp!r} for config key '{key}'")
    if not ok:
        raise ConfigError(f"config key '{key}': expected {_type_name(tp)}, got {value!r} ({type(value).__name__})")
    return float(value) if tp is float else value


def _build(cls: type, data: dict, prefix: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    for key in data:
        if key not in names:
            near = difflib.get_close_matches(key, names, n=1, cutoff=0.5)
            hint = f"; did you mean '{prefix}{near[0]}'?" if near else f"; valid keys: {', '.join(names)}"
            raise ConfigError(f"unknown config key '{prefix}{key}'{hint}")
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name in data:
            kwargs[f.name] = _convert(data[f.name], hints[f.name], prefix + f.name)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"config key '{prefix}{f.name}' is required")
    return cls(**kwargs)


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split ``key.sub=value``; the value is parsed as JSON, falling back to a plain string."""
    if "=" not in text:
        raise ConfigError(f"--set expects key=value, got {text!r}")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"--set expects key=value with a non-empty key, got {text!r}")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return key.split("."), value


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Return a copy of the raw config dict with each ``key=value`` override applied (dotted = nested)."""
    data = json.loads(json.dumps(data))
    for text in overrides:
        parts, value = parse_override(text)
        _set_value(data, parts, value, f"--set {text!r}")
    return data


def _set_value(data: dict, parts: list[str], value: Any, origin: str) -> None:
    node = data
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{origin}: '{part}' is not an object")
        node = child
    node[parts[-1]] = value


def apply_values(data: dict, values: dict[str, Any], origin: str = "flag") -> dict:
    """A copy of the raw config dict with each dotted key of `values` set (command-line flags)."""
    data = json.loads(json.dumps(data))
    for key, value in values.items():
        _set_value(data, key.split("."), value, f"{origin} for '{key}'")
    return data


def _check_distillation(cfg: TrainConfig) -> None:
    """The distillation block's ranges, every loss weight and stage lambda, and the block vs the flat keys."""
    errors = range_errors(cfg.distillation, MODEL_TYPES)
    if errors:
        raise ConfigError("; ".join(errors))
    block = cfg.distillation
    if block.enable and cfg.use_distill:
        raise ConfigError("config keys 'use_distill' and 'distillation.enable' are both true; use one: 'use_distill' is "
                          "the single feature term mixed as (1 - lambda) * task + lambda * distill, the 'distillation' "
                          "block adds task + lambda * distill")
    for key, teacher in teacher_configs(block):
        if block.enable and teacher.embeddings_dir is not None and cfg.augment:
            raise ConfigError(f"config key 'distillation.{key}embeddings_dir' holds embeddings of the unflipped images: "
                              "set augment=false, or drop embeddings_dir so the teacher sees the flipped image")
    for name, value in dataclasses.asdict(cfg.loss_weights).items():
        if value < 0:
            raise ConfigError(f"config key 'loss_weights.{name}' must be >= 0, got {value}")
    for i, stage in enumerate(cfg.stage_schedule):
        key = f"stage_schedule[{i}]"
        for name, value in dataclasses.asdict(stage.loss_weights).items():
            if value is not None and value < 0:
                raise ConfigError(f"config key '{key}.loss_weights.{name}' must be >= 0, got {value}")
        if stage.lambda_coef is None:
            continue
        # The block adds lambda * distill to the task, so lambda may exceed 1; the flat keys mix the two.
        if block.enable and stage.lambda_coef < 0:
            raise ConfigError(f"config key '{key}.lambda_coef' must be >= 0, got {stage.lambda_coef}")
        if not block.enable and not 0.0 <= stage.lambda_coef <= 1.0:
            raise ConfigError(f"config key '{key}.lambda_coef' must be in [0, 1], got {stage.lambda_coef}")
        if block.enable and block.dynamic_lambda.enable:
            raise ConfigError(f"config key '{key}.lambda_coef' is set while distillation.dynamic_lambda is on, which "
                              "sets lambda each epoch: remove one")


def _check_consistency(cfg: TrainConfig) -> None:
    if cfg.model_type not in MODEL_TYPES:
        near = difflib.get_close_matches(cfg.model_type, MODEL_TYPES, n=1)
        raise ConfigError(f"config key 'model_type': expected one of {MODEL_TYPES}, got {cfg.model_type!r}"
                          + (f"; did you mean '{near[0]}'?" if near else ""))
    if cfg.teacher_model_type not in TEACHER_TYPES:
        raise ConfigError(f"config key 'teacher_model_type': expected one of {TEACHER_TYPES}, got {cfg.teacher_model_type!r}")
    positive = {"num_epochs": cfg.num_epochs, "batch_size": cfg.batch_size, "img_size": cfg.img_size,
                "max_objects_per_image": cfg.max_objects_per_image, "iou_head_depth": cfg.iou_head_depth,
                "iou_head_hidden_dim": cfg.iou_head_hidden_dim, "max_nonfinite_in_a_row": cfg.max_nonfinite_in_a_row}
    for key, value in positive.items():
        if value < 1:
            raise ConfigError(f"config key '{key}' must be >= 1, got {value}")
    if (problem := image_size_problem(cfg.img_size)) is not None:
        raise ConfigError(f"config key 'img_size': {problem}")
    for key in ("num_workers", "num_pos_points", "num_neg_points", "num_val_overlays"):
        if getattr(cfg, key) < 0:
            raise ConfigError(f"config key '{key}' must be >= 0, got {getattr(cfg, key)}")
    if cfg.learning_rate <= 0:
        raise ConfigError(f"config key 'learning_rate' must be > 0, got {cfg.learning_rate}")
    if not cfg.ddp_timeout_minutes > 0:
        raise ConfigError(f"config key 'ddp_timeout_minutes' must be > 0, got {cfg.ddp_timeout_minutes}")
    if not 0.0 <= cfg.box_jitter < 1.0:
        raise ConfigError(f"config key 'box_jitter' must be in [0, 1), got {cfg.box_jitter}")
    if not 0.0 <= cfg.point_prompt_prob <= 1.0:
        raise ConfigError(f"config key 'point_prompt_prob' must be in [0, 1], got {cfg.point_prompt_prob}")
    if not cfg.use_box_prompt and cfg.num_pos_points == 0:
        raise ConfigError("config: with use_box_prompt=false set num_pos_points >= 1, otherwise there is no prompt")
    if cfg.scheduler.warmup_steps < 0:
        raise ConfigError(f"config key 'scheduler.warmup_steps' must be >= 0, got {cfg.scheduler.warmup_steps}")
    if cfg.checkpoint_every_steps is not None and cfg.checkpoint_every_steps < 1:
        raise ConfigError(f"config key 'checkpoint_every_steps' must be >= 1 or null, got {cfg.checkpoint_every_steps}")
    if cfg.max_steps_per_epoch is not None and cfg.max_steps_per_epoch < 1:
        raise ConfigError(f"config key 'max_steps_per_epoch' must be >= 1 or null, got {cfg.max_steps_per_epoch}")
    for split in ("train", "val"):
        has_folder = getattr(cfg, f"{split}_img_dir") is not None
        has_masks = getattr(cfg, f"{split}_mask_dir") is not None
        has_coco = getattr(cfg, f"{split}_coco") is not None
        if has_masks and has_coco:
            raise ConfigError(f"config: give either '{split}_mask_dir' or '{split}_coco', not both")
        if (has_masks or has_coco) and not has_folder:
            raise ConfigError(f"config: '{split}_img_dir' is required with '{split}_mask_dir' or '{split}_coco'")
    previous_end = None
    for i, stage in enumerate(cfg.stage_schedule):
        if not 0 <= stage.start_epoch < stage.end_epoch:
            raise ConfigError(f"config key 'stage_schedule[{i}]': need 0 <= start_epoch < end_epoch, "
                              f"got {stage.start_epoch}..{stage.end_epoch}")
        if previous_end is not None and stage.start_epoch < previous_end:
            raise ConfigError(f"config key 'stage_schedule[{i}]': starts at epoch {stage.start_epoch}, "
                              f"before the previous stage ends ({previous_end}); stages must be ordered and not overlap")
        previous_end = stage.end_epoch
    if not 0.0 <= cfg.lambda_coef <= 1.0:
        raise ConfigError(f"config key 'lambda_coef' must be in [0, 1], got {cfg.lambda_coef}")
    _check_distillation(cfg)
    _check_everything_keys(cfg)
    _check_budget_keys(cfg)


def _check_budget_keys(cfg: TrainConfig) -> None:
    for key in ("max_steps", "metrics_interval"):
        value = getattr(cfg, key)
        if value is not None and value < 1:
            raise ConfigError(f"config key '{key}' must be >= 1 or null, got {value}")
    if cfg.save_top_k < 0:
        raise ConfigError(f"config key 'save_top_k' must be >= 0, got {cfg.save_top_k}")


def _check_everything_keys(cfg: TrainConfig) -> None:
    if not 1 <= cfg.dataset.grid_points <= 256:
        raise ConfigError(f"config key 'dataset.grid_points' must be in [1, 256] (points per side), got {cfg.dataset.grid_points}")
    if cfg.prediction_batch_size < 1:
        raise ConfigError(f"config key 'prediction_batch_size' must be >= 1, got {cfg.prediction_batch_size}")
    if not 0.0 < cfg.match_iou <= 1.0:
        raise ConfigError(f"config key 'match_iou' must be in (0, 1], got {cfg.match_iou}")
    every = cfg.visual.save_every_n_epochs
    if every is not None and every < 1:
        raise ConfigError(f"config key 'visual.save_every_n_epochs' must be >= 1 or null, got {every}")
    if cfg.dataset.mode == "everything" and cfg.point_prompt_prob > 0:
        raise ConfigError("config key 'point_prompt_prob' is a prompt-mode setting; everything mode prompts "
                          "with the grid (dataset.grid_points): set it to 0")


# Seed-style spellings accepted on load and rewritten to this config's keys: model.multimask_output and
# w_-prefixed loss weights (w_focal, w_dice, w_bce, w_iou, w_cls).
_MODEL_BLOCK_KEYS = ("multimask_output",)


def _accept_seed_names(data: dict) -> dict:
    data = dict(data)
    model = data.pop("model", None)
    if model is not None:
        if not isinstance(model, dict):
            raise ConfigError(f"config key 'model': expected an object with {_MODEL_BLOCK_KEYS}, got {type(model).__name__}")
        for key, value in model.items():
            if key not in _MODEL_BLOCK_KEYS:
                near = difflib.get_close_matches(key, _MODEL_BLOCK_KEYS, n=1, cutoff=0.5)
                hint = f"; did you mean 'model.{near[0]}'?" if near else f"; 'model' accepts {', '.join(_MODEL_BLOCK_KEYS)}"
                raise ConfigError(f"unknown config key 'model.{key}'{hint}")
            if key in data and data[key] != value:
                raise ConfigError(f"config keys 'model.{key}' and '{key}' disagree ({value!r} vs {data[key]!r}): give one")
            data[key] = value
    weights = data.get("loss_weights")
    if isinstance(weights, dict):
        renamed = {}
        for key, value in weights.items():
            name = key[2:] if key.startswith("w_") else key
            if name in renamed:
                raise ConfigError(f"config key 'loss_weights.{name}' is given twice (as '{name}' and 'w_{name}')")
            renamed[name] = value
        data["loss_weights"] = renamed
    return data


def config_from_dict(data: dict) -> TrainConfig:
    """Validate a raw dict (JSON shapes) into a TrainConfig; raises ConfigError naming the bad key."""
    if not isinstance(data, dict):
        raise ConfigError(f"a config must be a JSON object, got {type(data).__name__}")
    cfg = _resolve_data_root(_build(TrainConfig, _accept_seed_names(data)))
    _check_consistency(cfg)
    return cfg


def _resolve_data_root(cfg: TrainConfig) -> TrainConfig:
    """Fill the split keys from data_root; a split key set to another path contradicts it."""
    if cfg.data_root is None:
        return cfg
    derived = coco_root_paths(cfg.data_root)
    for key, value in derived.items():
        given = getattr(cfg, key)
        if given is not None and given != value:
            raise ConfigError(f"config keys 'data_root' and '{key}' disagree ('{key}' would be {value}, got {given}): "
                              "give data_root or the split keys, not both")
    for key in ("train_mask_dir", "val_mask_dir"):
        if getattr(cfg, key) is not None:
            raise ConfigError(f"config key '{key}' cannot be used with 'data_root' (a COCO export root)")
    return dataclasses.replace(cfg, **derived)


def load_config(path: str | Path | None, overrides: list[str] = (), values: dict[str, Any] | None = None) -> TrainConfig:
    """Read a JSON config file, set `values` (command-line flags) over it, apply ``--set key=value``
    overrides, and validate.

    Arguments:
      path: JSON file holding an object with TrainConfig fields; None starts from the defaults.
      overrides: ``key=value`` strings; dotted keys reach nested objects; values are parsed as JSON.
      values: dotted config key -> value, applied before `overrides`.

    Returns:
      The frozen TrainConfig. Paths are not checked here; call `check_paths` before training.
    """
    data: Any = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"config file not found: {path}")
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ConfigError(f"config file {path} is not valid JSON: {err}") from err
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: a config must be a JSON object, got {type(data).__name__}")
    try:
        return config_from_dict(apply_overrides(apply_values(data, values or {}), list(overrides)))
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}" if path is not None else str(err)) from err


def required_paths(cfg: TrainConfig, for_extraction: bool = False) -> dict[str, str]:
    """The input paths a run reads, by config key (None-valued keys left out)."""
    keys = ["checkpoint", "train_img_dir", "train_mask_dir", "val_img_dir", "val_mask_dir", "train_coco", "val_coco"]
    block = cfg.distillation
    # With the distillation block on, a stage's "distillation" switches the block, not the feature term.
    if not block.enable and (cfg.use_distill or any(s.distillation for s in cfg.stage_schedule)):
        keys.append("train_img_dir_teacher_features")
    if for_extraction:
        keys = ["teacher_checkpoint"]
    paths = {k: getattr(cfg, k) for k in keys if getattr(cfg, k) is not None}
    if block.enable:
        for key, teacher in teacher_configs(block):
            found = {f"distillation.{key}checkpoint": teacher.checkpoint}
            if not for_extraction:
                found[f"distillation.{key}embeddings_dir"] = teacher.embeddings_dir
            paths.update({k: v for k, v in found.items() if v is not None})
    return paths


def _check_feature_term_inputs(cfg: TrainConfig) -> None:
    """use_distill (or a distillation stage) reads teacher features: the folder must be named (not at load time,
    since sam-extract-features reads the same config before that folder exists)."""
    if cfg.distillation.enable or cfg.train_img_dir_teacher_features is not None:
        return
    if cfg.use_distill:
        raise ConfigError("config key 'use_distill' is true but 'train_img_dir_teacher_features' is not set: "
                          "extract teacher features with sam-extract-features --output-dir DIR and set it to DIR")
    stages = [i for i, s in enumerate(cfg.stage_schedule) if s.distillation]
    if stages:
        raise ConfigError(f"config key 'stage_schedule[{stages[0]}].distillation' is true but "
                          "'train_img_dir_teacher_features' is not set: extract teacher features with "
                          "sam-extract-features --output-dir DIR and set it to DIR")


def check_paths(cfg: TrainConfig, for_extraction: bool = False, options: dict[str, str] | None = None) -> None:
    """Raise one FileNotFoundError listing every input path that does not exist: the configured ones, then
    `options` (command-line inputs by option name, e.g. {"--image-dir": ...}), so one run reports them all."""
    if not for_extraction:
        if cfg.data_root is not None:
            check_coco_root(cfg.data_root)
        if cfg.train_img_dir is None:
            raise ConfigError("config key 'train_img_dir' is required for training")
        if cfg.train_mask_dir is None and cfg.train_coco is None:
            raise ConfigError("config: training needs 'train_mask_dir' or 'train_coco' with 'train_img_dir'")
        _check_feature_term_inputs(cfg)
    paths = {**required_paths(cfg, for_extraction), **(options or {})}
    missing = [f"  {key}: {value}" for key, value in paths.items() if not Path(value).exists()]
    if missing:
        raise FileNotFoundError("input paths that do not exist:\n" + "\n".join(missing))


def save_config(cfg: TrainConfig, path: str | Path) -> None:
    """Write the resolved config as JSON (loadable again with load_config)."""
    Path(path).write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")
