"""Segment-everything training: every point of a regular grid is a prompt, and the decoder learns to return
all objects of the image, as SamAutomaticMaskGenerator asks of it.

Per image:
1. Prediction: the grid (dataset.grid_points per side, mapped like the generator's) is decoded in chunks of
   prediction_batch_size, 3 candidates per point with model.multimask_output (else the first mask token).
2. Matching (no gradient): IoU of every candidate with every object on the decoder's low-res logits
   (256 x 256 at img_size 1024), Hungarian one-to-one assignment; pairs with IoU >= match_iou are
   foreground, every other candidate background.
3. Loss: matched candidates get w_bce*BCE + w_focal*Focal + w_dice*Dice against their object and the IoU head
   w_iou*MSE against the real IoU, all averaged over matched candidates only; every candidate gets
   w_cls*BCE of its predicted IoU (as confidence) against its fg/bg label.
Memory is bounded by prediction_batch_size whatever the grid: matching runs on a no-grad pass over all
chunks, then each chunk is decoded again with gradients and its share of the loss (normalised by the image's
totals from matching) is differentiated at once (train/chunked_gradient.py), so one chunk's graph is alive at
a time. Only matched candidates are upscaled with gradients (`matched_only_upscale`; the IoU head does not
need the upscaled masks; the benchmark measures what it saves).

Validation: Hungarian pairing of all candidates with the objects at low resolution, then per-object IoU and
Dice of the paired masks at the original image size, averaged per image; an object left unpaired scores 0.
Recall is the fraction of objects whose paired mask has IoU >= 0.5.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...data.everything import EverythingDataset
from ...data.records import SampleRecord
from ...image_io import read_rgb, write_png
from ...visualize import overlay_masks_on_image, side_by_side
from ..chunked_gradient import ChunkedGradient
from ..config import LossWeights, TrainConfig
from ..losses import bce_loss, dice_loss, sigmoid_focal_loss
from ..matching import hungarian, mask_iou_matrix, match
from ..run_outputs import RunOutputs
from .base import PassLoss

# Keeps log() finite when the IoU head's prediction is used as a probability.
_EPS = 1e-6


def everything_loss(matched_logits: torch.Tensor, matched_targets: torch.Tensor, matched_iou_pred: torch.Tensor,
                    matched_iou_true: torch.Tensor, iou_pred: torch.Tensor, foreground: torch.Tensor,
                    weights: LossWeights, num_matched: int | None = None, num_candidates: int | None = None,
                    cls_balance: str = "mean") -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The loss of one image's candidates after matching, or a chunk's share of it.

    Arguments:
      matched_logits: (K, H, W) low-res logits of the K matched candidates; matched_targets: (K, H, W) {0, 1}.
      matched_iou_pred, matched_iou_true: (K,) predicted and real IoU of those candidates.
      iou_pred: (P,) predicted IoU of every candidate; foreground: (P,) bool, True for the matched ones.
      num_matched, num_candidates: the image's totals when these candidates are one chunk of the image
        (default K and P): the chunk's shares then add up over the chunks to the image's loss.
      cls_balance: "mean": cls is the BCE's mean over all candidates; "fg_bg": its mean over the foreground
        plus its mean over the background candidates.
    Returns:
      (total, terms): the mask and IoU terms are means over the image's matched candidates (0 when there
      are none), so unmatched candidates change only "cls", the mean over all its candidates.
    """
    matched = len(matched_logits) if num_matched is None else num_matched
    candidates = len(iou_pred) if num_candidates is None else num_candidates
    if len(matched_logits):
        focal = sigmoid_focal_loss(matched_logits, matched_targets).sum() / matched
        dice = dice_loss(matched_logits, matched_targets).sum() / matched
        bce = bce_loss(matched_logits, matched_targets).sum() / matched
        iou_mse = F.mse_loss(matched_iou_pred, matched_iou_true, reduction="sum") / matched
    else:
        focal = dice = bce = iou_mse = iou_pred.sum() * 0.0
    # Clamped so the prediction reads as a probability; the IoU term pulls matched ones back into range.
    confidence = iou_pred.clamp(_EPS, 1 - _EPS)
    per_candidate = F.binary_cross_entropy(confidence, foreground.float(), reduction="none")
    if cls_balance == "fg_bg":
        cls = (per_candidate[foreground].sum() / max(matched, 1)
               + per_candidate[~foreground].sum() / max(candidates - matched, 1))
    else:
        cls = per_candidate.sum() / candidates
    total = (weights.focal * focal + weights.dice * dice + weights.bce * bce + weights.iou * iou_mse
             + weights.cls * cls)
    return total, {"focal": focal, "dice": dice, "bce": bce, "iou_mse": iou_mse, "cls": cls,
                   "matched": torch.tensor(float(len(matched_logits)))}


class EverythingTask:
    loss_terms = ("focal", "dice", "bce", "iou_mse", "cls", "matched")
    # Per image: mIoU, Dice, recall@0.5 (each an image mean), 1 (image count), objects.
    num_sums = 5

    def __init__(self, cfg: TrainConfig, matched_only_upscale: bool = True):
        self.cfg = cfg
        self.matched_only_upscale = matched_only_upscale
        self.tokens = slice(1, None) if cfg.multimask else slice(0, 1)

    def datasets(self, train_records: list[SampleRecord],
                 val_records: list[SampleRecord]) -> tuple[EverythingDataset, EverythingDataset]:
        cfg = self.cfg
        train = EverythingDataset(train_records, cfg.img_size, cfg.dataset.grid_points, train=True,
                                  augment=cfg.augment, seed=cfg.seed)
        val = EverythingDataset(val_records, cfg.img_size, cfg.dataset.grid_points, train=False, seed=cfg.seed)
        return train, val

    def _prompt_chunks(self, sam: nn.Module, points: torch.Tensor, device: torch.device):
        """(sparse, dense) prompt embeddings of `points` (G, 2), prediction_batch_size points at a time."""
        for chunk in points.split(self.cfg.prediction_batch_size):
            coords = chunk.to(device)[:, None, :]
            labels = torch.ones(coords.shape[0], 1, dtype=torch.int64, device=device)
            yield sam.prompt_encoder(points=(coords, labels), boxes=None, masks=None)

    def image_loss(self, sam: nn.Module, embedding: torch.Tensor, item: dict, weights: LossWeights,
                   device: torch.device, on_pass: PassLoss | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Matching on a no-grad pass over every chunk, then one gradient pass per chunk (ChunkedGradient):
        memory is bounded by prediction_batch_size whatever the grid."""
        gt = item["gt_lowres"].to(device)
        cand, obj, iou = self._match(sam, embedding, item["grid"], gt, device)
        candidates = len(iou)
        per_point = candidates // len(item["grid"])
        target = torch.full((candidates,), -1, dtype=torch.int64, device=device)  # matched object or -1
        true_iou = torch.zeros(candidates, device=device)
        target[cand.to(device)] = obj.to(device)
        true_iou[cand.to(device)] = iou[cand, obj].to(device)
        grad = ChunkedGradient(embedding, list(sam.parameters()))
        chunks = -(-len(item["grid"]) // self.cfg.prediction_batch_size)
        sums = dict.fromkeys(self.loss_terms, 0.0)
        start = 0
        for sparse, dense in self._prompt_chunks(sam, item["grid"], device):
            rows = slice(start * per_point, (start + len(sparse)) * per_point)
            share, terms = self._chunk_loss(sam.mask_decoder, grad.leaf, sam.prompt_encoder.get_dense_pe(), sparse,
                                            dense, gt, target[rows], true_iou[rows], weights, len(cand), candidates)
            if on_pass is not None:
                share = share + on_pass(chunks)
            grad.add(share)
            for key, value in terms.items():
                sums[key] += value.item()
            start += len(sparse)
        sums["matched"] = float(len(cand))
        return grad.loss(), {key: torch.tensor(value) for key, value in sums.items()}

    @torch.no_grad()
    def _match(self, sam: nn.Module, embedding: torch.Tensor, grid: torch.Tensor, gt: torch.Tensor,
               device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(matched candidates, their objects, the (candidates, objects) IoU matrix); candidate = point * M + token."""
        rows = []
        for sparse, dense in self._prompt_chunks(sam, grid, device):
            logits, _ = sam.mask_decoder.predict_masks(embedding[None], sam.prompt_encoder.get_dense_pe(), sparse, dense)
            rows.append(mask_iou_matrix(logits[:, self.tokens].flatten(0, 1) > self.cfg.mask_threshold, gt))
        iou = torch.cat(rows)
        cand, obj = match(iou, self.cfg.match_iou)
        return cand, obj, iou

    def _chunk_loss(self, decoder: nn.Module, embedding: torch.Tensor, pe: torch.Tensor, sparse: torch.Tensor,
                    dense: torch.Tensor, gt: torch.Tensor, target: torch.Tensor, true_iou: torch.Tensor,
                    weights: LossWeights, num_matched: int, num_candidates: int):
        """One chunk's share of the image loss, decoded with gradients; target: (chunk candidates,) object or -1."""
        src, hyper, iou_pred = decoder.predict_tokens(embedding[None], pe, sparse, dense)
        hyper, iou_pred = hyper[:, self.tokens], iou_pred[:, self.tokens].float().flatten()
        local = (target >= 0).nonzero().flatten()
        per_point = hyper.shape[1]
        if not len(local):
            matched = iou_pred.new_zeros((0, *gt.shape[-2:]))
        elif self.matched_only_upscale:
            # Only the matched candidates need gradients through the upscaling.
            point, token = local // per_point, local % per_point
            matched = decoder.upscale_masks(src[point], hyper[point, token][:, None])[:, 0]
        else:
            matched = decoder.upscale_masks(src, hyper).flatten(0, 1)[local]
        return everything_loss(matched.float(), gt[target[local]], iou_pred[local], true_iou[local], iou_pred,
                               target >= 0, weights, num_matched, num_candidates, self.cfg.cls_balance)

    def validate_image(self, sam: nn.Module, embedding: torch.Tensor, item: dict, device: torch.device,
                       preview: bool) -> tuple[torch.Tensor, dict | None]:
        cfg = self.cfg
        gt_low = item["gt_lowres"].to(device)
        iou_rows = []
        for sparse, dense in self._prompt_chunks(sam, item["grid"], device):
            logits, _ = sam.mask_decoder.predict_masks(embedding[None], sam.prompt_encoder.get_dense_pe(), sparse, dense)
            iou_rows.append(mask_iou_matrix(logits[:, self.tokens].flatten(0, 1) > cfg.mask_threshold, gt_low))
        iou_low = torch.cat(iou_rows)  # (candidates, objects), candidate = point * M + token
        cand, obj = hungarian(iou_low)
        # Score the paired candidates at the original size: decode just their points again.
        per_point = len(iou_low) // len(item["grid"])
        points, tokens = cand // per_point, cand % per_point
        pred = self._full_size_masks(sam, embedding, item, points, tokens, device)
        gt = item["gt"].to(device)[obj]
        inter = (pred & gt).flatten(1).sum(1).double()
        union = (pred | gt).flatten(1).sum(1).double()
        total = pred.flatten(1).sum(1).double() + gt.flatten(1).sum(1).double()
        iou = inter / union.clamp(min=1)
        dice = 2 * inter / total.clamp(min=1)
        objects = item["gt"].shape[0]  # objects without a pair add 0 to the sums
        sums = torch.tensor([iou.sum().item() / objects, dice.sum().item() / objects,
                             (iou >= 0.5).sum().item() / objects, 1.0, objects], dtype=torch.float64)
        shown = None
        if preview:
            scale = torch.tensor([item["original_size"][1] / item["input_size"][1],
                                  item["original_size"][0] / item["input_size"][0]])
            shown = {"image": read_rgb(item["image_path"]), "gt": item["gt"].numpy(), "pred": pred.cpu().numpy(),
                     "iou": iou.cpu().numpy(), "points": (item["grid"] * scale).numpy()}
        return sums, shown

    def _full_size_masks(self, sam: nn.Module, embedding: torch.Tensor, item: dict, points: torch.Tensor,
                         tokens: torch.Tensor, device: torch.device) -> torch.Tensor:
        """(K, H, W) bool masks of candidate `tokens` of grid `points` at the original image size."""
        height, width = item["original_size"]
        if len(points) == 0:
            return torch.zeros((0, height, width), dtype=torch.bool, device=device)
        chunks = []
        for (sparse, dense), idx in zip(self._prompt_chunks(sam, item["grid"][points], device),
                                        tokens.split(self.cfg.prediction_batch_size)):
            logits, _ = sam.mask_decoder.predict_masks(embedding[None], sam.prompt_encoder.get_dense_pe(), sparse, dense)
            chosen = logits[:, self.tokens][torch.arange(len(idx)), idx.to(device)][:, None].float()
            chunks.append(sam.postprocess_masks(chosen, item["input_size"], item["original_size"])[:, 0])
        return torch.cat(chunks) > self.cfg.mask_threshold

    def metrics(self, sums: torch.Tensor) -> dict:
        images = max(1.0, sums[3].item())
        return {"miou": sums[0].item() / images, "dice": sums[1].item() / images,
                "recall50": sums[2].item() / images, "images": int(sums[3].item()), "objects": int(sums[4].item())}

    def describe(self, val: dict) -> str:
        return (f"val mIoU {val['miou']:.4f} (Hungarian), Dice {val['dice']:.4f}, recall@0.5 {val['recall50']:.4f} "
                f"over {val['objects']} objects in {val['images']} images")

    def write_previews(self, outputs: RunOutputs, previews: list[dict], epoch: int, is_best: bool) -> None:
        """<visual dir>/epoch_<n>/val<i>.png: ground truth next to the matched predictions and the grid, at each
        new best and every visual.save_every_n_epochs."""
        every = self.cfg.visual.save_every_n_epochs
        if not (is_best or (every is not None and epoch % every == 0)):
            return
        folder = self.cfg.visual_dir / f"epoch_{epoch}"
        when = "before training" if epoch == 0 else f"after epoch {epoch}"
        for i, p in enumerate(previews):
            left = overlay_masks_on_image(p["image"], list(p["gt"]), title="ground truth")
            right = overlay_masks_on_image(p["image"], list(p["pred"]), p["points"],
                                           title=f"{when}: IoU {p['iou'].mean() if len(p['iou']) else 0:.2f}")
            write_png(folder / f"val{i}.png", side_by_side([left, right]))
