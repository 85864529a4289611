"""Prompt training: each object is prompted by its box (or points) and the decoder trained to return it.

Loss: focal + dice (+ BCE) of the lowest-loss candidate and the IoU head's MSE (train/losses.py). Validation:
per-object IoU and Dice at the original image size, with the highest-predicted-IoU candidate (as at inference).
"""
from __future__ import annotations

import torch
from torch import nn

from ...data.dataset import PromptSettings, SamDataset
from ...data.records import SampleRecord
from ...image_io import read_rgb
from ..config import LossWeights, TrainConfig
from ..losses import mask_losses
from ..run_outputs import RunOutputs
from .base import PassLoss


def decode(sam: nn.Module, embedding: torch.Tensor, item: dict, multimask: bool, device: torch.device):
    """Run prompt encoder + mask decoder for all objects of one image.

    Returns:
      (low-res logits (N, M, S/4, S/4), IoU predictions (N, M)) with M = 3 if multimask else 1.
    """
    points = None
    if item["point_coords"] is not None:
        points = (item["point_coords"].to(device), item["point_labels"].to(device))
    boxes = None if item["boxes"] is None else item["boxes"].to(device)
    sparse, dense = sam.prompt_encoder(points=points, boxes=boxes, masks=None)
    return sam.mask_decoder(
        image_embeddings=embedding[None],
        image_pe=sam.prompt_encoder.get_dense_pe(),
        sparse_prompt_embeddings=sparse,
        dense_prompt_embeddings=dense,
        multimask_output=multimask,
    )


class PromptTask:
    loss_terms = ("focal", "dice", "bce", "iou_mse")
    num_sums = 5

    def __init__(self, cfg: TrainConfig):
        self.cfg = cfg

    def datasets(self, train_records: list[SampleRecord], val_records: list[SampleRecord]) -> tuple[SamDataset, SamDataset]:
        cfg = self.cfg
        prompts = PromptSettings(cfg.use_box_prompt, cfg.box_jitter, cfg.num_pos_points, cfg.num_neg_points,
                                 cfg.point_prompt_prob)
        train = SamDataset(train_records, cfg.img_size, prompts, cfg.max_objects_per_image, train=True,
                           augment=cfg.augment, seed=cfg.seed)
        val = SamDataset(val_records, cfg.img_size, prompts, cfg.max_objects_per_image, train=False, seed=cfg.seed)
        return train, val

    def image_loss(self, sam: nn.Module, embedding: torch.Tensor, item: dict, weights: LossWeights,
                   device: torch.device, on_pass: PassLoss | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        logits, iou_pred = decode(sam, embedding, item, self.cfg.multimask or item["multimask"], device)
        terms = mask_losses(logits.float(), iou_pred.float(), item["gt_lowres"].to(device), weights.focal,
                            weights.dice, weights.iou, self.cfg.mask_threshold, weights.bce)
        total = terms.total if on_pass is None else terms.total + on_pass(1)  # one decoder pass per image
        return total, {"focal": terms.focal, "dice": terms.dice, "bce": terms.bce, "iou_mse": terms.iou}

    def validate_image(self, sam: nn.Module, embedding: torch.Tensor, item: dict, device: torch.device,
                       preview: bool) -> tuple[torch.Tensor, dict | None]:
        """Sums of per-object IoU, Dice, object count, and predicted / GT area fractions (a collapse to empty
        or full masks shows in the areas)."""
        cfg = self.cfg
        logits, iou_pred = decode(sam, embedding, item, cfg.multimask, device)
        pick = iou_pred.argmax(dim=1)
        best = logits[torch.arange(logits.shape[0]), pick][:, None].float()
        pred = sam.postprocess_masks(best, item["input_size"], item["original_size"])[:, 0] > cfg.mask_threshold
        gt = item["gt"].to(device)
        inter = (pred & gt).flatten(1).sum(1).double()
        union = (pred | gt).flatten(1).sum(1).double()
        total = pred.flatten(1).sum(1).double() + gt.flatten(1).sum(1).double()
        pixels = float(gt.shape[-2] * gt.shape[-1])
        sums = torch.zeros(self.num_sums, dtype=torch.float64)
        sums[0] += (inter / union.clamp(min=1)).sum().cpu()
        sums[1] += (2 * inter / total.clamp(min=1)).sum().cpu()
        sums[2] += gt.shape[0]
        sums[3] += (pred.flatten(1).sum(1).double() / pixels).sum().cpu()
        sums[4] += (gt.flatten(1).sum(1).double() / pixels).sum().cpu()
        shown = None
        if preview:
            scale = max(item["original_size"]) / cfg.img_size
            boxes = None if item["boxes"] is None else (item["boxes"] * scale).cpu()
            shown = {"image": read_rgb(item["image_path"]), "gt": item["gt"].numpy(), "pred": pred.cpu().numpy(),
                     "boxes": boxes}
        return sums, shown

    def metrics(self, sums: torch.Tensor) -> dict:
        count = max(1.0, sums[2].item())
        return {"miou": sums[0].item() / count, "dice": sums[1].item() / count, "objects": int(sums[2].item()),
                "pred_area": sums[3].item() / count, "gt_area": sums[4].item() / count}

    def describe(self, val: dict) -> str:
        return (f"val mIoU {val['miou']:.4f}, Dice {val['dice']:.4f} over {val['objects']} objects (masks cover "
                f"{100 * val['pred_area']:.1f}% of the image, objects {100 * val['gt_area']:.1f}%)")

    def write_previews(self, outputs: RunOutputs, previews: list[dict], epoch: int, is_best: bool) -> None:
        """overlays/best_epoch<n>_val<i>.png at each new best."""
        if is_best:
            outputs.overlays(previews, epoch)
