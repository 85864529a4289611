"""Learning-rate schedule (a pure function of the step), the step budget, and the epoch-wise stage schedule."""
from __future__ import annotations

import math
from dataclasses import dataclass

from .config import LossWeights, TrainConfig


def get_lr(step: int, total_steps: int, base_lr: float, end_lr: float = 0.0, power: float = 1.0,
           warmup_steps: int = 0) -> float:
    """Learning rate at optimizer step `step` (0-based).

    Linear warmup over `warmup_steps` (step 0 gets base_lr / warmup_steps), then polynomial decay
    lr = end_lr + (base_lr - end_lr) * (1 - t) ** power with t = (step - warmup) / (total - warmup),
    held at end_lr once t reaches 1.
    """
    if total_steps < 1:
        raise ValueError(f"total_steps must be >= 1, got {total_steps}")
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    decay_steps = max(1, total_steps - warmup_steps)
    t = min(1.0, (step - warmup_steps) / decay_steps)
    return end_lr + (base_lr - end_lr) * (1.0 - t) ** power


@dataclass(frozen=True)
class StepBudget:
    """How many optimizer steps a run takes, and how they fall into epochs."""

    steps_per_epoch: int
    total_steps: int

    @property
    def num_epochs(self) -> int:
        return math.ceil(self.total_steps / self.steps_per_epoch)

    def steps_in_epoch(self, epoch: int) -> int:
        """Steps of the 0-based epoch `epoch`: a full epoch, except the last one cut at the budget."""
        return max(0, min(self.steps_per_epoch, self.total_steps - epoch * self.steps_per_epoch))


def step_budget(steps_per_epoch: int, num_epochs: int, max_steps: int | None) -> StepBudget:
    """max_steps when given (epochs derived from it), else num_epochs full epochs."""
    if steps_per_epoch < 1:
        raise ValueError(f"an epoch must hold at least one step, got {steps_per_epoch} (no training images?)")
    return StepBudget(steps_per_epoch, steps_per_epoch * num_epochs if max_steps is None else max_steps)


@dataclass(frozen=True)
class ActiveStage:
    """What an epoch trains with after resolving stage_schedule over the run's defaults."""

    name: str
    distillation: bool
    lambda_coef: float
    loss_weights: LossWeights


def base_lambda(cfg: TrainConfig) -> float:
    """The run's lambda: the distillation block's when the block is on, else the flat lambda_coef."""
    return cfg.distillation.lambda_coef if cfg.distillation.enable else cfg.lambda_coef


def stage_for_epoch(cfg: TrainConfig, epoch: int) -> ActiveStage:
    """The stage whose [start_epoch, end_epoch) holds the 0-based epoch index `epoch`; outside every stage, the
    run's defaults."""
    for i, stage in enumerate(cfg.stage_schedule):
        if stage.start_epoch <= epoch < stage.end_epoch:
            base = cfg.loss_weights
            over = stage.loss_weights
            weights = LossWeights(
                focal=base.focal if over.focal is None else over.focal,
                dice=base.dice if over.dice is None else over.dice,
                iou=base.iou if over.iou is None else over.iou,
                bce=base.bce if over.bce is None else over.bce,
                cls=base.cls if over.cls is None else over.cls,
            )
            return ActiveStage(
                name=f"stage {i} (epochs {stage.start_epoch + 1}-{stage.end_epoch}, "
                     f"{'distillation' if stage.distillation else 'finetune'})",
                distillation=stage.distillation,
                lambda_coef=base_lambda(cfg) if stage.lambda_coef is None else stage.lambda_coef,
                loss_weights=weights,
            )
    return ActiveStage(name="default", distillation=cfg.use_distill or cfg.distillation.enable,
                       lambda_coef=base_lambda(cfg), loss_weights=cfg.loss_weights)
