"""Validation shared by every task: iterate the loader, let the task score each image, reduce over ranks;
and the warning when the predicted masks collapse to empty or full frames."""
from __future__ import annotations

import logging

import torch
from torch import nn
from torch.utils.data import DataLoader

from .distributed import DistInfo, reduce_sum
from .embedding_cache import EmbeddingCache, embed_images
from .tasks import Task

logger = logging.getLogger("fastsam.train")


@torch.no_grad()
def evaluate(task: Task, sam: nn.Module, loader: DataLoader, cache: EmbeddingCache | None, device: torch.device,
             info: DistInfo, num_previews: int = 0) -> tuple[dict, list[dict]]:
    """The task's validation figures over every rank, and previews of the first images on this rank."""
    sam.eval()
    sums, previews = None, []
    for items in loader:
        for item, emb in zip(items, embed_images(sam, items, cache, device)):
            image_sums, preview = task.validate_image(sam, emb, item, device, len(previews) < num_previews)
            sums = image_sums if sums is None else sums + image_sums
            if preview is not None:
                previews.append(preview)
    if sums is None:
        # A rank without validation images (fewer images than ranks) still joins the reduction with zeros.
        sums = torch.zeros(task.num_sums, dtype=torch.float64)
    return task.metrics(reduce_sum(sums, info)), previews


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
