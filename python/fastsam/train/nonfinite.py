"""NaN/inf during training: a step whose loss or gradients are not finite never reaches the weights.

Policy (config key ``on_nonfinite``):
  "skip" (default): the step is skipped (no optimizer update), a warning names the batch's images, the epoch's
    count goes to metrics.jsonl as ``nonfinite_steps``; ``max_nonfinite_in_a_row`` consecutive bad steps stop the
    run, because a persisting NaN is a broken run (learning rate, data), not a spike.
  "stop": the first bad step stops the run.
A stop raises NonFiniteStop naming the batch; the checkpoints already on disk are from finite steps and stay as
they are. Separately, `check_finite_weights` refuses to write a checkpoint whose weights are not finite.
Under DDP the decision is taken on the all-reduced gradients, so every rank skips or stops at the same step
without an extra collective.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Iterable

import torch
from torch import nn

logger = logging.getLogger("fastsam.train")


class NonFiniteStop(RuntimeError):
    """Training stopped on a non-finite loss or gradient (the message names the step and the images)."""


def _describe_batch(items: list[dict]) -> str:
    return ", ".join(str(item.get("image_path", f"item {item.get('index', '?')}")) for item in items)


class NonFiniteGuard:
    """Decides, per step, whether the optimizer may step; counts skipped steps per epoch."""

    def __init__(self, policy: str, max_in_a_row: int, distributed: bool = False):
        if policy not in ("skip", "stop"):
            raise ValueError(f"on_nonfinite must be 'skip' or 'stop', got {policy!r}")
        self.policy, self.max_in_a_row = policy, max_in_a_row
        self.epoch_count = 0  # skipped steps in the current epoch (metrics.jsonl: nonfinite_steps)
        self.in_a_row = 0
        # Under DDP a rank must not skip its backward alone (the gradient all-reduce would wait for it): the step is
        # decided on the gradients, which DDP has made identical on every rank (a NaN loss on one rank makes them NaN).
        self.skip_before_backward = not distributed

    def start_epoch(self, count: int = 0) -> None:
        """Reset the epoch's count (a resumed mid-epoch run passes the count its checkpoint recorded)."""
        self.epoch_count = count

    def loss_ok(self, loss: torch.Tensor, items: list[dict], step: int) -> bool:
        """True when the loss is finite; otherwise skip (False) or raise NonFiniteStop, per the policy."""
        value = loss.detach().float().item()
        return self._judge(math.isfinite(value), f"loss {value}", items, step)

    def grads_ok(self, params: Iterable[nn.Parameter], items: list[dict], step: int) -> bool:
        """True when every gradient is finite (checked after backward, before the optimizer step)."""
        grads = [p.grad for p in params if p.grad is not None]
        finite = all(bool(torch.isfinite(g).all()) for g in grads)
        return self._judge(finite, "gradient", items, step)

    def _judge(self, finite: bool, what: str, items: list[dict], step: int) -> bool:
        if finite:
            self.in_a_row = 0
            return True
        self.in_a_row += 1
        where = f"step {step + 1}, images {_describe_batch(items)}"
        hint = ("; lower learning_rate, set grad_clip, check these images, or try amp='off'; "
                "the checkpoints on disk are from earlier, finite steps")
        if self.policy == "stop":
            raise NonFiniteStop(f"non-finite {what} at {where} (on_nonfinite='stop'){hint}")
        if self.in_a_row >= self.max_in_a_row:
            raise NonFiniteStop(f"non-finite {what} at {where}: {self.in_a_row} steps in a row were not finite "
                                f"(max_nonfinite_in_a_row={self.max_in_a_row}){hint}")
        self.epoch_count += 1
        logger.warning("non-finite %s at %s: step skipped (no weight update)", what, where)
        return False


def check_finite_weights(model: nn.Module, what: str) -> None:
    """Raise NonFiniteStop instead of writing `what` (a checkpoint) holding NaN/inf weights."""
    bad = [name for name, t in model.state_dict().items() if t.is_floating_point() and not bool(torch.isfinite(t).all())]
    if bad:
        raise NonFiniteStop(f"refusing to write {what}: {len(bad)} weight tensor(s) hold NaN/inf "
                            f"({', '.join(bad[:3])}{', ...' if len(bad) > 3 else ''}); the earlier checkpoints are kept")


def guarded_step(guard: NonFiniteGuard, loss: torch.Tensor, items: list[dict], step: int,
                 optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler, params: list[nn.Parameter],
                 grad_clip: float | None) -> bool:
    """zero_grad, backward, optional clipping and the optimizer step, unless the guard finds the loss or the
    gradients non-finite. Returns whether the weights were updated."""
    optimizer.zero_grad(set_to_none=True)
    if guard.skip_before_backward and not guard.loss_ok(loss, items, step):
        return False
    scaler.scale(loss).backward()
    if grad_clip is not None:
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(params, grad_clip)
    # With fp16 loss scaling the scaler itself skips steps with inf gradients (and lowers its scale).
    trained = scaler.is_enabled() or guard.grads_ok(params, items, step)
    if trained:
        scaler.step(optimizer)
    scaler.update()
    return trained
