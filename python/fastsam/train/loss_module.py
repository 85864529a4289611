"""Batch -> loss for the training loop: image embeddings, the task's per-image loss, and (while a distillation
stage is active) the distillation stack's terms or the older feature-distillation term. A module so
DistributedDataParallel can wrap it and sync the trainable gradients."""
from __future__ import annotations

from contextlib import nullcontext

import torch
from torch import nn

from .config import TrainConfig
from .distill import DistillProjection
from .distillation.stack import DistillationStack, ImageDistillation
from .embedding_cache import EmbeddingCache, embed_images
from .feature_distill import Distiller
from .schedule import ActiveStage
from .tasks import Task


class SegmentationLoss(nn.Module):
    """The batch loss is the mean over images of each image's task loss, so splitting a global batch over ranks
    (DDP averages the per-rank means) gives the same value as one process. While a distillation stage is
    active, with the `distillation` block: each image's total = task + lambda * distill (stack.weighted);
    with the flat use_distill keys: total = (1 - lambda) * task + lambda * distill_loss_weight * distill."""

    def __init__(self, sam: nn.Module, task: Task, cfg: TrainConfig, projection: DistillProjection | None = None,
                 distiller: Distiller | None = None, stack: DistillationStack | None = None):
        super().__init__()
        self.sam = sam
        self.task = task
        self.cfg = cfg
        self.projection = projection
        self.distiller = distiller
        self.stack = stack  # a plain attribute: the teacher's weights stay out of DDP and the state dict

    def logged_terms(self) -> tuple[str, ...]:
        return self.terms_of(self.task, self.stack)

    @staticmethod
    def terms_of(task: Task, stack: DistillationStack | None) -> tuple[str, ...]:
        """The loss terms forward() reports for a task (and distillation stack)."""
        stack_terms = () if stack is None else tuple(f"distill_{name}" for name in stack.term_names)
        return task.loss_terms + ("distill",) + stack_terms

    def forward(self, items: list[dict], cache: EmbeddingCache | None, stage: ActiveStage,
                device: torch.device) -> tuple[torch.Tensor, dict]:
        encoder_frozen = not any(p.requires_grad for p in self.sam.image_encoder.parameters())
        with torch.set_grad_enabled(not encoder_frozen):
            embeddings = embed_images(self.sam, items, cache, device)
        totals, stats = [], dict.fromkeys(self.logged_terms(), 0.0)
        stack = self.stack if stage.distillation else None
        with nullcontext() if stack is None else stack.recording():
            for item, emb in zip(items, embeddings):
                image = None if stack is None else stack.image(item, device)
                on_pass = None if image is None else _pass_loss(stack, image, stage.lambda_coef)
                total, terms = self.task.image_loss(self.sam, emb, item, stage.loss_weights, device, on_pass)
                if image is not None:
                    encoder = image.encoder_terms(emb)
                    total = total + stage.lambda_coef * stack.weighted(encoder)
                    logged = image.logged(encoder)
                    stats["distill"] += stack.weighted(logged).item() / len(items)
                    for name, value in logged.items():
                        stats[f"distill_{name}"] += value.item() / len(items)
                totals.append(total)
                for key in self.task.loss_terms:
                    stats[key] += terms[key].item() / len(items)
        loss = torch.stack(totals).mean()
        if stage.distillation and self.distiller is not None:
            distill = self.distiller.loss(items, self.projection, self.cfg.distill_loss_type, device)
            stats["distill"] = distill.item()
            loss = (1 - stage.lambda_coef) * loss + stage.lambda_coef * self.cfg.distill_loss_weight * distill
        return loss, stats


def _pass_loss(stack: DistillationStack, image: ImageDistillation, lambda_coef: float):
    """The task's per-decoder-pass hook: lambda x the weighted decoder terms of that pass."""
    return lambda passes: lambda_coef * stack.weighted(image.pass_terms(passes))
