"""Batch -> loss for the training loop: image embeddings, the task's per-image loss, and (while a distillation
stage is active) the feature-distillation term. A module so DistributedDataParallel can wrap it and sync the
trainable gradients."""
from __future__ import annotations

import torch
from torch import nn

from .config import TrainConfig
from .distill import DistillProjection
from .embedding_cache import EmbeddingCache, embed_images
from .feature_distill import Distiller
from .schedule import ActiveStage
from .tasks import Task


class SegmentationLoss(nn.Module):
    """The batch loss is the mean over images of each image's task loss, so splitting a global batch over ranks
    (DDP averages the per-rank means) gives the same value as one process. While a distillation stage is
    active: total = (1 - lambda) * task + lambda * distill_loss_weight * distill."""

    def __init__(self, sam: nn.Module, task: Task, cfg: TrainConfig, projection: DistillProjection | None = None,
                 distiller: Distiller | None = None):
        super().__init__()
        self.sam = sam
        self.task = task
        self.cfg = cfg
        self.projection = projection
        self.distiller = distiller

    def logged_terms(self) -> tuple[str, ...]:
        return self.task.loss_terms + ("distill",)

    def forward(self, items: list[dict], cache: EmbeddingCache | None, stage: ActiveStage,
                device: torch.device) -> tuple[torch.Tensor, dict]:
        encoder_frozen = not any(p.requires_grad for p in self.sam.image_encoder.parameters())
        with torch.set_grad_enabled(not encoder_frozen):
            embeddings = embed_images(self.sam, items, cache, device)
        totals, stats = [], dict.fromkeys(self.logged_terms(), 0.0)
        for item, emb in zip(items, embeddings):
            total, terms = self.task.image_loss(self.sam, emb, item, stage.loss_weights, device)
            totals.append(total)
            for key in self.task.loss_terms:
                stats[key] += terms[key].item() / len(items)
        loss = torch.stack(totals).mean()
        if stage.distillation and self.distiller is not None:
            distill = self.distiller.loss(items, self.projection, self.cfg.distill_loss_type, device)
            stats["distill"] = distill.item()
            loss = (1 - stage.lambda_coef) * loss + stage.lambda_coef * self.cfg.distill_loss_weight * distill
        return loss, stats
