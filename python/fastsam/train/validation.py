"""Validation shared by every task: iterate the loader, let the task score each image, reduce over ranks;
and the warning when the predicted masks collapse to empty or full frames."""
from __future__ import annotations

import logging

import torch
from torch import nn
from torch.utils.data import DataLoader

from .distributed import DistInfo, reduce_sum
from .embedding_cache import EmbeddingCache, embed_images
from .config import LossWeights
from .tasks import Task

logger = logging.getLogger("fastsam.train")


@torch.no_grad()
def evaluate(task: Task, sam: nn.Module, loader: DataLoader, cache: EmbeddingCache | None, device: torch.device,
             info: DistInfo, num_previews: int = 0, weights: LossWeights | None = None) -> tuple[dict, list[dict]]:
    """The task's validation figures over every rank, and previews of the first images on this rank.

    With `weights`, the figures also hold the training loss on the validation images (mean over images):
    "loss" (weighted total) and "loss_<term>" for each of task.loss_terms.
    """
    sam.eval()
    width = task.num_sums + (0 if weights is None else 2 + len(task.loss_terms))
    sums, previews = torch.zeros(width, dtype=torch.float64), []
    for items in loader:
        for item, emb in zip(items, embed_images(sam, items, cache, device)):
            image_sums, preview = task.validate_image(sam, emb, item, device, len(previews) < num_previews)
            sums[:task.num_sums] += image_sums
            if weights is not None:
                sums[task.num_sums:] += _loss_sums(task, sam, emb, item, weights, device)
            if preview is not None:
                previews.append(preview)
    # A rank without validation images still joins the reduction (with zeros).
    sums = reduce_sum(sums, info)
    figures = task.metrics(sums[:task.num_sums])
    if weights is not None:
        images = max(1.0, sums[task.num_sums].item())
        names = ("loss",) + tuple(f"loss_{term}" for term in task.loss_terms)
        figures.update({name: sums[task.num_sums + 1 + i].item() / images for i, name in enumerate(names)})
    return figures, previews


def _loss_sums(task: Task, sam: nn.Module, emb: torch.Tensor, item: dict, weights: LossWeights,
               device: torch.device) -> torch.Tensor:
    """[1 (image), total loss, each loss term] of one validation image."""
    total, terms = task.image_loss(sam, emb, item, weights, device)
    values = [1.0, float(total)] + [float(terms[name]) for name in task.loss_terms]
    return torch.tensor(values, dtype=torch.float64)


def val_record(val: dict) -> dict:
    """evaluate()'s figures as metrics.jsonl fields (val_miou, val_dice, val_objects, ...)."""
    return {f"val_{key}": value for key, value in val.items()}


def collapse_kind(val: dict) -> str | None:
    """"empty" or "full" when the validation masks show one of the two common failures of a mask decoder."""
    if "pred_area" not in val:
        return None
    if val["objects"] and val["pred_area"] < 0.05 * val["gt_area"]:
        return "empty"
    if val["objects"] and val["pred_area"] > 0.9:
        return "full"
    return None


def warn_if_collapsed(val: dict, previous: str | None = None) -> str | None:
    """Name a collapse when it starts (not again while it lasts); returns the state to pass next time."""
    kind = collapse_kind(val)
    if kind == previous:
        return kind
    if kind == "empty":
        logger.warning("validation masks are (nearly) empty: they cover %.3f%% of the image, the objects %.1f%%; "
                       "a focal-heavy loss on a decoder that does not localise yet does this (try more dice, "
                       "a lower learning_rate, or more steps)", 100 * val["pred_area"], 100 * val["gt_area"])
    elif kind == "full":
        logger.warning("validation masks cover %.1f%% of the image (objects %.1f%%): the decoder predicts the "
                       "whole frame", 100 * val["pred_area"], 100 * val["gt_area"])
    return kind
