"""The seed-003 command-line interface of sam-train: one table of flags, each setting one config key.

`sam-train --data-root DIR --model-type vit_b --image-size 512 --steps N ...` is the same run as a config file
holding those keys; with --config both combine and the flags win (then --set). Each flag also takes the
seed's underscore spelling (--data_root); --help shows the dashed one. README's flag table is
`markdown_table()` (a test keeps the two equal).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import click

from ..model_types import MODEL_TYPES


@dataclass(frozen=True)
class SeedFlag:
    name: str  # dashed spelling without "--"
    key: str  # dotted TrainConfig key
    type: Any  # click type; None = an on/off flag that sets the key to true
    meaning: str

    @property
    def param(self) -> str:
        return self.name.replace("-", "_")


SEED_FLAGS = (
    SeedFlag("data-root", "data_root", click.Path(file_okay=False),
             "COCO export root: `{train,val}/_annotations.coco.json`, images beside each (`valid/` accepted for val)"),
    SeedFlag("model-type", "model_type", click.Choice(MODEL_TYPES), "student architecture"),
    SeedFlag("checkpoint", "checkpoint", click.Path(dir_okay=False), "starting weights (official or fastsam); unset = random init"),
    SeedFlag("image-size", "img_size", int, "model input side (multiple of 16)"),
    SeedFlag("steps", "max_steps", click.IntRange(min=1), "global optimizer-step budget (epochs derived); unset = `num_epochs` epochs"),
    SeedFlag("batch-size", "batch_size", click.IntRange(min=1), "global batch (split over DDP processes)"),
    SeedFlag("learning-rate", "learning_rate", float, "peak learning rate (AdamW), decayed over the budget"),
    SeedFlag("weight-decay", "weight_decay", float, "AdamW weight decay"),
    SeedFlag("metrics-interval", "metrics_interval", click.IntRange(min=1),
             "every K steps: smoothed train losses + LR to metrics.jsonl and a validation; unset = per epoch"),
    SeedFlag("save-top-k", "save_top_k", click.IntRange(min=0), "keep the k best validations as `{step}-{val_per_mask_iou:.2f}.ckpt`"),
    SeedFlag("output-dir", "output_dir", click.Path(file_okay=False), "runs go to OUTPUT_DIR/project_name/run_name"),
    SeedFlag("run-name", "run_name", str, "run folder name under OUTPUT_DIR/project_name"),
    SeedFlag("freeze-image-encoder", "freeze.image_encoder", None, "freeze the image encoder"),
    SeedFlag("freeze-prompt-encoder", "freeze.prompt_encoder", None, "freeze the prompt encoder"),
    SeedFlag("freeze-mask-decoder", "freeze.mask_decoder", None, "freeze the mask decoder"),
)


class _DashedHelpOption(click.Option):
    """Parses both spellings; lists only the dashed one in --help."""

    def get_help_record(self, ctx: click.Context):
        every = self.opts
        self.opts = [o for o in every if "_" not in o]
        try:
            return super().get_help_record(ctx)
        finally:
            self.opts = every


def config_default(key: str) -> Any:
    """The TrainConfig default of a dotted key."""
    from ..train.config import TrainConfig

    value: Any = TrainConfig()
    for part in key.split("."):
        value = getattr(value, part)
    return value


def seed_options(command: Callable) -> Callable:
    """Add every SEED_FLAGS option to a click command (its parameters are named SeedFlag.param)."""
    for flag in reversed(SEED_FLAGS):
        spellings = [f"--{flag.name}"] + ([f"--{flag.param}"] if "-" in flag.name else [])
        help_text = f"config key {flag.key}: {flag.meaning.replace('`', '')}"
        if flag.type is None:
            option = click.option(*spellings, flag.param, cls=_DashedHelpOption, is_flag=True, default=False,
                                  help=help_text)
        else:
            option = click.option(*spellings, flag.param, cls=_DashedHelpOption, type=flag.type, default=None,
                                  help=help_text)
        command = option(command)
    return command


def seed_values(params: dict[str, Any]) -> dict[str, Any]:
    """Dotted config key -> value for the flags given (an on/off flag only when switched on)."""
    values = {}
    for flag in SEED_FLAGS:
        value = params.get(flag.param)
        if value is None or value is False:
            continue
        values[flag.key] = value
    return values


def markdown_table() -> str:
    """The README's flag table: flag, config key, default, meaning."""
    rows = ["| flag | config key | default | meaning |", "|---|---|---|---|"]
    for flag in SEED_FLAGS:
        default = config_default(flag.key)
        shown = "unset" if default is None else str(default).lower() if isinstance(default, bool) else str(default)
        value = "" if flag.type is None else f" {flag.param.upper()}"
        rows.append(f"| `--{flag.name}{value}` | `{flag.key}` | {shown} | {flag.meaning} |")
    return "\n".join(rows)


__all__ = ["SEED_FLAGS", "SeedFlag", "markdown_table", "seed_options", "seed_values", "config_default"]
