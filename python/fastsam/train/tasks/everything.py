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
Only matched candidates are upscaled with gradients: the transformer and IoU head run once with gradients
for every point, the mask upscaling for matching runs without, and the few matched masks are upscaled again
with gradients (`matched_only_upscale`; the benchmark measures what it saves).

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
from ..config import LossWeights, TrainConfig
from ..losses import bce_loss, dice_loss, sigmoid_focal_loss
from ..matching import hungarian, mask_iou_matrix, match
from ..run_outputs import RunOutputs

# Keeps log() finite when the IoU head's prediction is used as a probability.
_EPS = 1e-6


def everything_loss(matched_logits: torch.Tensor, matched_targets: torch.Tensor, matched_iou_pred: torch.Tensor,
                    matched_iou_true: torch.Tensor, iou_pred: torch.Tensor, foreground: torch.Tensor,
                    weights: LossWeights) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The loss of one image's candidates after matching.

    Arguments:
      matched_logits: (K, H, W) low-res logits of the K matched candidates; matched_targets: (K, H, W) {0, 1}.
      matched_iou_pred, matched_iou_true: (K,) predicted and real IoU of those candidates.
      iou_pred: (P,) predicted IoU of every candidate; foreground: (P,) bool, True for the matched ones.
    Returns:
      (total, terms): the mask and IoU terms are means over the K matched candidates (0 when K = 0), so
      unmatched candidates change only "cls", the mean over all P candidates.
    """
    if len(matched_logits):
        focal = sigmoid_focal_loss(matched_logits, matched_targets).mean()
        dice = dice_loss(matched_logits, matched_targets).mean()
        bce = bce_loss(matched_logits, matched_targets).mean()
        iou_mse = F.mse_loss(matched_iou_pred, matched_iou_true)
    else:
        focal = dice = bce = iou_mse = iou_pred.sum() * 0.0
    # Clamped so the prediction reads as a probability; the IoU term pulls matched ones back into range.
    confidence = iou_pred.clamp(_EPS, 1 - _EPS)
    cls = F.binary_cross_entropy(confidence, foreground.float())
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
                   device: torch.device) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        decoder, pe = sam.mask_decoder, sam.prompt_encoder.get_dense_pe()
        gt = item["gt_lowres"].to(device)
        features, hypers, ious, logits_all, iou_rows = [], [], [], [], []
        for sparse, dense in self._prompt_chunks(sam, item["grid"], device):
            if self.matched_only_upscale:
                src, hyper, iou_pred = decoder.predict_tokens(embedding[None], pe, sparse, dense)
                hyper = hyper[:, self.tokens]
                with torch.no_grad():
                    logits = decoder.upscale_masks(src, hyper)
                features.append(src)
                hypers.append(hyper)
            else:
                logits, iou_pred = decoder.predict_masks(embedding[None], pe, sparse, dense)
                logits = logits[:, self.tokens]
                logits_all.append(logits)
            ious.append(iou_pred[:, self.tokens].float())
            iou_rows.append(mask_iou_matrix(logits.detach().flatten(0, 1) > self.cfg.mask_threshold, gt))
        iou = torch.cat(iou_rows)  # (candidates, objects), candidate = point * M + token
        cand, obj = match(iou, self.cfg.match_iou)
        cand, obj = cand.to(device), obj.to(device)
        per_point = ious[0].shape[1]
        if self.matched_only_upscale:
            matched = self._upscale_matched(decoder, features, hypers, cand, per_point)
        else:
            matched = torch.cat(logits_all).flatten(0, 1)[cand]
        iou_pred = torch.cat(ious).flatten()
        foreground = torch.zeros_like(iou_pred, dtype=torch.bool)
        foreground[cand] = True
        return everything_loss(matched.float(), gt[obj], iou_pred[cand], iou[cand, obj].to(device), iou_pred,
                               foreground, weights)

    @staticmethod
    def _upscale_matched(decoder: nn.Module, features: list[torch.Tensor], hypers: list[torch.Tensor],
                         cand: torch.Tensor, per_point: int) -> torch.Tensor:
        """Low-res logits (K, H, W), with gradients, of the matched candidates only (in `cand` order)."""
        point, token = cand // per_point, cand % per_point
        out, start = [None] * len(cand), 0
        for src, hyper in zip(features, hypers):
            inside = ((point >= start) & (point < start + len(src))).nonzero().flatten()
            if len(inside):
                rows = point[inside] - start
                masks = decoder.upscale_masks(src[rows], hyper[rows, token[inside]][:, None])[:, 0]
                for k, i in enumerate(inside.tolist()):
                    out[i] = masks[k]
            start += len(src)
        if not out:
            return features[0].new_zeros((0, 4 * features[0].shape[-2], 4 * features[0].shape[-1]))
        return torch.stack(out)

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
