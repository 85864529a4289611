"""The seam between the one training loop and what a training task does differently.

The loop (train/trainer.py) owns everything both tasks share: data loaders, resume, DDP, AMP, the stage
schedule, graceful stop, checkpoints and run outputs. A task owns the rest: how a dataset item looks, how
one image is decoded and scored for the loss, how validation scores one image, and what its previews show.
"""
from __future__ import annotations

from typing import Callable, Protocol

import torch
from torch import nn
from torch.utils.data import Dataset

from ...data.records import SampleRecord
from ..config import LossWeights
from ..run_outputs import RunOutputs

# Called by a task after each decoder pass it makes with gradients, with the number of such passes of the
# image; returns that pass's extra loss (the distillation stack's decoder terms, already weighted), which the
# task adds to that pass's share of its loss.
PassLoss = Callable[[int], torch.Tensor]


class Task(Protocol):
    """One training task. Implementations: tasks/prompt.py ("prompt"), tasks/everything.py ("everything"),
    registered in tasks/__init__.py under their config `dataset.mode`."""

    # Names of the per-step loss terms image_loss returns; logged as train_<name> in metrics.jsonl.
    loss_terms: tuple[str, ...]
    # Length of the float64 vector validate_image returns.
    num_sums: int

    def datasets(self, train_records: list[SampleRecord], val_records: list[SampleRecord]) -> tuple[Dataset, Dataset]:
        """(train, val) datasets; both have `set_epoch`, `digests()` and a `load_images` flag (embedding cache)."""

    def image_loss(self, sam: nn.Module, embedding: torch.Tensor, item: dict, weights: LossWeights,
                   device: torch.device, on_pass: PassLoss | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(scalar loss of one image including what on_pass returned, {term: scalar} for every name in
        loss_terms). The loop calls backward on the batch mean; a task may take gradients itself beforehand
        (everything mode, chunk by chunk) as long as that backward then delivers the same gradients."""

    def validate_image(self, sam: nn.Module, embedding: torch.Tensor, item: dict, device: torch.device,
                       preview: bool) -> tuple[torch.Tensor, dict | None]:
        """(float64 vector of sums this image adds to the validation totals, a preview dict when asked)."""

    def metrics(self, sums: torch.Tensor) -> dict:
        """Validation figures from the totals over every rank; "miou" is the one the best checkpoint follows."""

    def describe(self, val: dict) -> str:
        """One log-line fragment of the validation figures, starting with "val mIoU"."""

    def write_previews(self, outputs: RunOutputs, previews: list[dict], epoch: int, is_best: bool) -> None:
        """Write (when the task wants to) the previews of a validation after `epoch` epochs (0 = the starting
        weights, which are the first best)."""
