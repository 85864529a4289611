"""The training loop's hook-up of feature distillation (features saved by sam-extract-features).

Kept apart from the task losses on purpose: while a distillation stage is active the loss module adds
this term to whatever the task computed, total = (1 - lambda) * task + lambda * distill_loss_weight * distill.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .config import TrainConfig
from .distill import DistillProjection, FeatureHook, check_manifest, load_teacher_features, resolve_level
from .losses import distillation_loss

logger = logging.getLogger("fastsam.train")


def uses_distillation(cfg: TrainConfig) -> bool:
    """Whether the run uses this feature term (with the `distillation` block on, stages switch the block instead)."""
    return not cfg.distillation.enable and (cfg.use_distill or any(s.distillation for s in cfg.stage_schedule))


@dataclass
class Distiller:
    """What a distillation run needs: the teacher features folder + manifest and the student hook."""

    folder: Path
    manifest: dict
    hook: FeatureHook

    def loss(self, items: list[dict], projection: DistillProjection, kind: str, device: torch.device) -> torch.Tensor:
        """Distance between the hooked student features of this batch and the stored teacher features."""
        teacher = torch.stack([load_teacher_features(self.folder, self.manifest, item["image_path"], item["digest"])
                               for item in items]).to(device)
        student = projection(self.hook.output.float(), tuple(teacher.shape[-2:]))
        return distillation_loss(student, teacher, kind)


def check_teacher_features(cfg: TrainConfig) -> dict:
    """The features folder's manifest, refused when made with another teacher (type, weights), block or size."""
    return check_manifest(cfg.train_img_dir_teacher_features, cfg.teacher_model_type, cfg.distill_feature_level,
                          cfg.img_size, cfg.teacher_checkpoint)


def make_distiller(cfg: TrainConfig, sam: nn.Module, device: torch.device) -> tuple[Distiller, DistillProjection]:
    """Check the teacher features against this run, hook the student, size the projection."""
    folder = Path(cfg.train_img_dir_teacher_features)
    manifest = check_teacher_features(cfg)
    level = resolve_level(sam.image_encoder, cfg.distill_student_feature_level, "distill_student_feature_level")
    hook = FeatureHook(sam.image_encoder, level)
    with torch.no_grad():
        sam.image_encoder(torch.zeros(1, 3, cfg.img_size, cfg.img_size, device=device))
    projection = DistillProjection(hook.output.shape[1], manifest["shape"][0]).to(device)
    logger.info("distillation: student block %d (%d channels) -> teacher %s block %d (%d channels)", level,
                hook.output.shape[1], manifest["teacher_model_type"], manifest["feature_level"], manifest["shape"][0])
    return Distiller(folder, manifest, hook), projection
