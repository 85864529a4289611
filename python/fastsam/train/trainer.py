"""The sam-train loop, readable top to bottom: setup, optional resume, then epochs of
(train steps -> validation -> checkpoints and outputs).

Data parallel: launched by torchrun (WORLD_SIZE > 1) it wraps the loss module in
DistributedDataParallel, shards batches with DistributedSampler, reduces validation sums across ranks,
and only rank 0 writes files. The global batch is batch_size; each rank takes batch_size / world_size.
"""
from __future__ import annotations

import itertools
import logging
import os
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, Sampler
from tqdm import tqdm

from ..data.build import load_records
from ..data.dataset import PromptSettings, SamDataset, collate_samples
from ..image_io import read_rgb
from .checkpointing import load_training_checkpoint, rng_state, save_atomic, set_rng_state
from .config import ConfigError, TrainConfig, check_paths, save_config
from .distill import DistillProjection, FeatureHook, check_manifest, load_teacher_features, resolve_level
from .embedding_cache import EmbeddingCache, model_identity
from .freezing import apply_freeze, frozen_parts, set_train_mode, trainable_parameters
from .graceful_stop import GracefulStop, TrainingStopped
from .losses import distillation_loss, mask_losses
from .model_setup import build_student
from .run_outputs import RunOutputs, check_run_folder_free
from .schedule import ActiveStage, get_lr, stage_for_epoch

logger = logging.getLogger("fastsam.train")

# Mask-loss terms logged per step and per epoch (fields of losses.MaskLossTerms), then distillation.
MASK_TERMS = ("focal", "dice", "bce", "iou")
LOGGED_TERMS = MASK_TERMS + ("distill",)


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup_distributed() -> DistInfo:
    """Join the torchrun process group when WORLD_SIZE > 1 (nccl on GPUs, gloo on CPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return DistInfo(rank=dist.get_rank(), world_size=dist.get_world_size(),
                    local_rank=int(os.environ.get("LOCAL_RANK", "0")))


def pick_device(cfg: TrainConfig, info: DistInfo) -> torch.device:
    if cfg.device == "auto":
        return torch.device(f"cuda:{info.local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    device = torch.device(cfg.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"config key 'device' is {cfg.device!r} but CUDA is not available")
    return device


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class SkipSampler(Sampler):
    """The indices of `sampler` after its first `skip` (a resumed epoch continues where it stopped)."""

    def __init__(self, sampler: Sampler, skip: int):
        self.sampler = sampler
        self.skip = skip

    def __iter__(self):
        return itertools.islice(iter(self.sampler), self.skip, None)

    def __len__(self) -> int:
        return max(0, len(self.sampler) - self.skip)


class ShardSampler(Sampler):
    """Every world_size-th index from rank, in order, without padding (validation counts each object once)."""

    def __init__(self, length: int, info: DistInfo):
        self.indices = list(range(info.rank, length, info.world_size))

    def __iter__(self):
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def embed_images(sam: nn.Module, items: list[dict], cache: EmbeddingCache | None, device: torch.device) -> list[torch.Tensor]:
    """Image embeddings (C, h, w) for each item, from the cache where possible.

    With a cache, misses are encoded one image at a time so an embedding never depends on which images
    shared its batch (keeps cached and resumed runs bit-identical).
    """
    out: list[torch.Tensor | None] = [None] * len(items)
    if cache is not None:
        for i, item in enumerate(items):
            hit = cache.get(item["digest"])
            out[i] = None if hit is None else hit.to(device)
        for i, item in enumerate(items):
            if out[i] is None:
                if item["image"] is None:
                    raise RuntimeError(f"embedding cache lost the entry of {item['image_path']} while images were "
                                       "not being loaded (was the cache directory emptied during the run?)")
                emb = sam.image_encoder(sam.preprocess(item["image"].to(device))[None])[0]
                cache.put(item["digest"], emb)
                out[i] = emb
        return out
    images = torch.stack([sam.preprocess(item["image"].to(device)) for item in items])
    return list(sam.image_encoder(images))


def load_images_only_on_misses(cache: EmbeddingCache | None, *datasets: SamDataset) -> None:
    """Let datasets skip reading photos while the cache holds every one of their embeddings."""
    for ds in datasets:
        ds.load_images = cache is None or not all(cache.contains(d) for d in ds.digests())


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


@dataclass
class Distiller:
    """What a distillation run needs: the teacher features folder + manifest and the student hook."""

    folder: Path
    manifest: dict
    hook: FeatureHook


class SegmentationLoss(nn.Module):
    """Batch -> loss. A module so DistributedDataParallel can wrap it and sync the trainable gradients.

    The batch loss is the mean over images of each image's mean over objects, so splitting a global
    batch over ranks (DDP averages the per-rank means) gives the same value as one process. While a
    distillation stage is active: total = (1 - lambda) * task + lambda * distill_loss_weight * distill.
    """

    def __init__(self, sam: nn.Module, cfg: TrainConfig, projection: DistillProjection | None = None,
                 distiller: Distiller | None = None):
        super().__init__()
        self.sam = sam
        self.cfg = cfg
        self.projection = projection
        self.distiller = distiller

    def forward(self, items: list[dict], cache: EmbeddingCache | None, stage: ActiveStage,
                device: torch.device) -> tuple[torch.Tensor, dict]:
        weights = stage.loss_weights
        encoder_frozen = not any(p.requires_grad for p in self.sam.image_encoder.parameters())
        with torch.set_grad_enabled(not encoder_frozen):
            embeddings = embed_images(self.sam, items, cache, device)
        totals, stats = [], dict.fromkeys(LOGGED_TERMS, 0.0)
        for item, emb in zip(items, embeddings):
            logits, iou_pred = decode(self.sam, emb, item, self.cfg.multimask_output or item["multimask"], device)
            terms = mask_losses(logits.float(), iou_pred.float(), item["gt_lowres"].to(device), weights.focal,
                                weights.dice, weights.iou, self.cfg.mask_threshold, weights.bce)
            totals.append(terms.total)
            for key in MASK_TERMS:
                stats[key] += getattr(terms, key).item() / len(items)
        loss = torch.stack(totals).mean()
        if stage.distillation and self.distiller is not None:
            d = self.distiller
            teacher = torch.stack([load_teacher_features(d.folder, d.manifest, item["image_path"], item["digest"])
                                   for item in items]).to(device)
            student = self.projection(d.hook.output.float(), tuple(teacher.shape[-2:]))
            distill = distillation_loss(student, teacher, self.cfg.distill_loss_type)
            stats["distill"] = distill.item()
            loss = (1 - stage.lambda_coef) * loss + stage.lambda_coef * self.cfg.distill_loss_weight * distill
        return loss, stats


@torch.no_grad()
def evaluate(sam: nn.Module, loader: DataLoader, cache: EmbeddingCache | None, cfg: TrainConfig,
             device: torch.device, info: DistInfo, num_previews: int = 0) -> tuple[dict, list[dict]]:
    """Per-object IoU and Dice at mask_threshold, at the original image resolution, and the mean fraction
    of the image the predicted / ground-truth masks cover (shows a collapse to empty or full masks).

    With multimask output the candidate with the highest predicted IoU is scored (as at inference).

    Returns:
      ({"miou", "dice", "objects", "pred_area", "gt_area"} reduced over ranks, preview dicts for the first images on this rank).
    """
    sam.eval()
    sums = torch.zeros(5, dtype=torch.float64)
    previews = []
    for items in loader:
        for item, emb in zip(items, embed_images(sam, items, cache, device)):
            logits, iou_pred = decode(sam, emb, item, cfg.multimask_output, device)
            pick = iou_pred.argmax(dim=1)
            best = logits[torch.arange(logits.shape[0]), pick][:, None].float()
            pred = sam.postprocess_masks(best, item["input_size"], item["original_size"])[:, 0] > cfg.mask_threshold
            gt = item["gt"].to(device)
            inter = (pred & gt).flatten(1).sum(1).double()
            union = (pred | gt).flatten(1).sum(1).double()
            total = pred.flatten(1).sum(1).double() + gt.flatten(1).sum(1).double()
            sums[0] += (inter / union.clamp(min=1)).sum().cpu()
            sums[1] += (2 * inter / total.clamp(min=1)).sum().cpu()
            sums[2] += gt.shape[0]
            pixels = float(gt.shape[-2] * gt.shape[-1])
            sums[3] += (pred.flatten(1).sum(1).double() / pixels).sum().cpu()
            sums[4] += (gt.flatten(1).sum(1).double() / pixels).sum().cpu()
            if len(previews) < num_previews:
                scale = max(item["original_size"]) / cfg.img_size
                boxes = None if item["boxes"] is None else (item["boxes"] * scale).cpu()
                previews.append({"image": read_rgb(item["image_path"]), "gt": item["gt"].numpy(),
                                 "pred": pred.cpu().numpy(), "boxes": boxes})
    if info.world_size > 1:
        dist.all_reduce(sums)
    count = max(1.0, sums[2].item())
    return {"miou": sums[0].item() / count, "dice": sums[1].item() / count, "objects": int(sums[2].item()),
            "pred_area": sums[3].item() / count, "gt_area": sums[4].item() / count}, previews


def val_record(val: dict) -> dict:
    """evaluate()'s figures as metrics.jsonl fields (val_miou, val_dice, val_objects, val_pred_area, ...)."""
    return {f"val_{key}": value for key, value in val.items()}


def collapse_kind(val: dict) -> str | None:
    """"empty" or "full" when the validation masks show one of the two common failures of a mask decoder."""
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


def _loaders(cfg: TrainConfig, info: DistInfo, train_ds: SamDataset, val_ds: SamDataset):
    if cfg.batch_size % info.world_size:
        raise ConfigError(f"config key 'batch_size' ({cfg.batch_size}) must be divisible by the number of "
                          f"processes ({info.world_size}): it is the global batch")
    per_rank = cfg.batch_size // info.world_size
    # DistributedSampler also serves one process: shuffle order depends only on (seed, epoch).
    sampler = DistributedSampler(train_ds, num_replicas=info.world_size, rank=info.rank, shuffle=True,
                                 seed=cfg.seed, drop_last=False)
    train_loader = DataLoader(train_ds, batch_size=per_rank, sampler=sampler, num_workers=cfg.num_workers,
                              collate_fn=collate_samples)
    val_loader = DataLoader(val_ds, batch_size=per_rank, sampler=ShardSampler(len(val_ds), info),
                            num_workers=cfg.num_workers, collate_fn=collate_samples)
    return sampler, train_loader, val_loader


def _gather(sums: dict, info: DistInfo) -> list[dict]:
    """Every rank's running loss sums (a mid-epoch checkpoint restores each rank's own)."""
    if info.world_size == 1:
        return [dict(sums)]
    gathered: list = [None] * info.world_size
    dist.all_gather_object(gathered, dict(sums))
    return gathered


def _wrap(loss_module: SegmentationLoss, info: DistInfo, device: torch.device) -> nn.Module:
    if info.world_size == 1:
        return loss_module
    ids = [device.index] if device.type == "cuda" else None
    # Prompt-encoder embeddings for unused prompt kinds get no gradient: tell DDP so.
    return nn.parallel.DistributedDataParallel(loss_module, device_ids=ids, find_unused_parameters=True)


def _unfreeze(sam: nn.Module, optimizer: torch.optim.Optimizer) -> None:
    """Make every part trainable and give the newly trainable parameters their own optimizer group."""
    before = {id(p) for p in trainable_parameters(sam)}
    apply_freeze(sam, [])
    new = [p for p in sam.parameters() if id(p) not in before]
    if new:
        optimizer.add_param_group({"params": new})


def uses_distillation(cfg: TrainConfig) -> bool:
    return cfg.use_distill or any(s.distillation for s in cfg.stage_schedule)


def _make_distiller(cfg: TrainConfig, sam: nn.Module, device: torch.device) -> tuple[Distiller, DistillProjection]:
    """Check the teacher features against this run, hook the student, size the projection."""
    folder = Path(cfg.train_img_dir_teacher_features)
    manifest = check_manifest(folder, cfg.teacher_model_type, cfg.distill_feature_level, cfg.img_size)
    level = resolve_level(sam.image_encoder, cfg.distill_student_feature_level, "distill_student_feature_level")
    hook = FeatureHook(sam.image_encoder, level)
    with torch.no_grad():
        sam.image_encoder(torch.zeros(1, 3, cfg.img_size, cfg.img_size, device=device))
    projection = DistillProjection(hook.output.shape[1], manifest["shape"][0]).to(device)
    logger.info("distillation: student block %d (%d channels) -> teacher %s block %d (%d channels)", level,
                hook.output.shape[1], manifest["teacher_model_type"], manifest["feature_level"], manifest["shape"][0])
    return Distiller(folder, manifest, hook), projection


def train(cfg: TrainConfig, resume: str | Path | None = None, stop_after_epoch: int | None = None,
          stop_after_step: int | None = None) -> dict:
    """Train a student SAM as configured; returns the last epoch's metrics record.

    Arguments:
      cfg: the resolved configuration.
      resume: a latest_model.pth/best_model.pth to continue from (model, optimizer, step, RNG, ...).
      stop_after_epoch: end right after the checkpoint of this epoch, counted from 1 (tests simulate a kill).
      stop_after_step: behave as if Ctrl-C came during this global step (tests).
    Raises:
      RunFolderInUse: without `resume`, when the run folder holds an earlier run's checkpoint and
        cfg.overwrite is false (nothing is written).
      TrainingStopped: after SIGINT/SIGTERM (single process): latest_model.pth holds the last finished
        step and --resume continues from it, mid-epoch.
    """
    if resume is None:
        check_run_folder_free(cfg.run_dir, cfg.overwrite)  # before any rank writes
    info = setup_distributed()
    device = pick_device(cfg, info)
    check_paths(cfg)
    if uses_distillation(cfg):
        if cfg.freeze.image_encoder:
            raise ConfigError("distillation trains the student's image encoder: set freeze.image_encoder=false")
        if cfg.augment:
            raise ConfigError("distillation compares with features of the unflipped images: set augment=false")
    outputs = RunOutputs(cfg.run_dir) if info.is_main else None
    if outputs and resume is None:
        outputs.clear_previous_run()
    handler = outputs.attach_log_file() if outputs else None
    try:
        with GracefulStop(enabled=info.world_size == 1) as stop:
            return _run(cfg, info, device, outputs, resume, stop_after_epoch, stop, stop_after_step)
    finally:
        if handler is not None:
            logging.getLogger("fastsam").removeHandler(handler)
            handler.close()
        if info.world_size > 1 and dist.is_initialized():
            dist.destroy_process_group()


def _run(cfg: TrainConfig, info: DistInfo, device: torch.device, outputs: RunOutputs | None,
         resume: str | Path | None, stop_after_epoch: int | None, stop: GracefulStop,
         stop_after_step: int | None) -> dict:
    seed_everything(cfg.seed)
    if outputs:
        save_config(cfg, outputs.run_dir / "config.json")
        logger.info("run folder %s; device %s; %d process(es)", outputs.run_dir, device, info.world_size)

    # Data: bad samples are reported (with file names) before any step runs.
    train_records, _ = load_records(cfg.train_img_dir, cfg.train_mask_dir, cfg.train_coco, cfg.on_bad_sample, "train")
    val_dir = cfg.val_img_dir or cfg.train_img_dir
    val_masks, val_coco = (cfg.val_mask_dir, cfg.val_coco) if cfg.val_img_dir else (cfg.train_mask_dir, cfg.train_coco)
    val_records, _ = load_records(val_dir, val_masks, val_coco, cfg.on_bad_sample, "val")
    prompts = PromptSettings(cfg.use_box_prompt, cfg.box_jitter, cfg.num_pos_points, cfg.num_neg_points,
                             cfg.point_prompt_prob)
    train_ds = SamDataset(train_records, cfg.img_size, prompts, cfg.max_objects_per_image, train=True,
                          augment=cfg.augment, seed=cfg.seed)
    val_ds = SamDataset(val_records, cfg.img_size, prompts, cfg.max_objects_per_image, train=False, seed=cfg.seed)
    sampler, train_loader, val_loader = _loaders(cfg, info, train_ds, val_ds)
    steps_per_epoch = len(train_loader) if cfg.max_steps_per_epoch is None else min(len(train_loader), cfg.max_steps_per_epoch)
    total_steps = steps_per_epoch * cfg.num_epochs
    logger.info("train: %d images, %d objects; val: %d images, %d objects; %d steps/epoch, %d steps in all",
                len(train_records), sum(len(r.masks) for r in train_records), len(val_records),
                sum(len(r.masks) for r in val_records), steps_per_epoch, total_steps)

    # Model and optimizer (AdamW only on trainable parameters).
    sam = build_student(cfg).to(device)
    frozen = frozen_parts(cfg.freeze)
    apply_freeze(sam, frozen)
    if not trainable_parameters(sam):
        raise ConfigError("config key 'freeze': every part is frozen, nothing would train")
    distiller, projection = _make_distiller(cfg, sam, device) if uses_distillation(cfg) else (None, None)
    extra = [] if projection is None else list(projection.parameters())
    optimizer = torch.optim.AdamW(trainable_parameters(sam) + extra, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    use_scaler = cfg.amp == "fp16" and device.type == "cuda"
    scaler = torch.amp.GradScaler(device.type, enabled=use_scaler)
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(cfg.amp)

    step, start_epoch, best_miou, history, partial = 0, 0, -1.0, [], None
    record: dict = {}
    if resume is not None:
        ckpt = load_training_checkpoint(resume)
        sam.load_state_dict(ckpt["model"])
        if projection is not None:
            projection.load_state_dict(ckpt["distill_projection"])
        start_epoch = ckpt["epoch"]  # epochs finished = 0-based index of the next one
        partial = ckpt.get("partial_epoch")
        # A checkpoint from inside the unfreeze epoch already has the unfrozen parameter group.
        unfrozen_in = start_epoch if partial is None else start_epoch + 1
        if frozen and cfg.unfreeze_epoch is not None and unfrozen_in > cfg.unfreeze_epoch:
            _unfreeze(sam, optimizer)
            frozen = []
        optimizer.load_state_dict(ckpt["optimizer"])
        scaler.load_state_dict(ckpt["scaler"])
        step, best_miou, record = ckpt["step"], ckpt["best_miou"], dict(ckpt.get("metrics") or {})
        set_rng_state(ckpt["rng"])
        if outputs:
            outputs.truncate_metrics_after(ckpt["epoch"])
        logger.info("resumed from %s after epoch %d%s (step %d, best val mIoU %.4f)", resume, ckpt["epoch"],
                    f" and {partial['batches_done']} batches of epoch {partial['epoch']}" if partial else "", step, best_miou)

    def make_cache() -> EmbeddingCache | None:
        if "image_encoder" in frozen and not cfg.augment and cfg.cache_embeddings:
            return EmbeddingCache(model_identity(sam.image_encoder, cfg.img_size), cfg.embedding_cache_dir)
        return None

    cache = make_cache()
    logger.info("frozen: %s; embedding cache %s", ", ".join(frozen) or "nothing",
                "off" if cache is None else f"on ({cache.directory or 'in memory'})")
    loss_module = _wrap(SegmentationLoss(sam, cfg, projection, distiller), info, device)

    def checkpoint(epoch_done: int, metrics: dict, partial_epoch: dict | None = None) -> dict:
        ckpt = {"model": sam.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": {"step": step, "total_steps": total_steps, "kind": "polynomial"},
                "scaler": scaler.state_dict(), "epoch": epoch_done, "step": step, "rng": rng_state(),
                "config": cfg.to_dict(), "metrics": metrics, "best_miou": best_miou, "model_type": cfg.model_type}
        if projection is not None:
            ckpt["distill_projection"] = projection.state_dict()
        if partial_epoch is not None:
            ckpt["partial_epoch"] = partial_epoch
        return ckpt

    if resume is None:
        # The starting weights are the first best: an epoch must beat them, and best_model.pth always exists.
        load_images_only_on_misses(cache, val_ds)
        start, previews = evaluate(sam, val_loader, cache, cfg, device, info,
                                   num_previews=cfg.num_val_overlays if info.is_main else 0)
        best_miou = start["miou"]
        record = {"epoch": 0, "step": 0, "train_loss": None, **val_record(start), "best_miou": best_miou}
        history.append(record)
        if outputs:
            outputs.metrics(record)
            save_atomic(checkpoint(0, record), outputs.run_dir / "best_model.pth")
            outputs.overlays(previews, 0)
        logger.info("before training: val mIoU %.4f, Dice %.4f over %d objects (masks cover %.1f%% of the image, "
                    "objects %.1f%%)", start["miou"], start["dice"], start["objects"], 100 * start["pred_area"],
                    100 * start["gt_area"])

    collapse = None
    for epoch in range(start_epoch, cfg.num_epochs):
        if frozen and epoch == cfg.unfreeze_epoch:
            _unfreeze(sam, optimizer)
            frozen, cache = [], None
            loss_module = _wrap(SegmentationLoss(sam, cfg, projection, distiller), info, device)
            logger.info("epoch %d: unfroze every part; embedding cache off", epoch + 1)
        stage = stage_for_epoch(cfg, epoch)
        w = stage.loss_weights
        logger.info("epoch %d/%d: %s, loss weights focal %g dice %g bce %g iou %g", epoch + 1, cfg.num_epochs,
                    stage.name, w.focal, w.dice, w.bce, w.iou)
        set_train_mode(sam, frozen)
        load_images_only_on_misses(cache, train_ds)
        sampler.set_epoch(epoch)
        train_ds.set_epoch(epoch)
        sums = dict.fromkeys(("loss",) + LOGGED_TERMS, 0.0)
        done, loader, time_before = 0, train_loader, 0.0
        if partial is not None and partial["epoch"] == epoch + 1:
            # Continue a stopped epoch: same shuffled order, minus the batches already trained.
            done, time_before = partial["batches_done"], partial["train_time"]
            if len(partial["sums_per_rank"]) != info.world_size:
                raise ConfigError(f"--resume: the checkpoint stopped inside epoch {epoch + 1} with "
                                  f"{len(partial['sums_per_rank'])} process(es); resume it with the same number "
                                  f"(this run has {info.world_size})")
            sums = dict(partial["sums_per_rank"][info.rank])
            loader = DataLoader(train_ds, batch_size=train_loader.batch_size, num_workers=cfg.num_workers,
                                sampler=SkipSampler(sampler, done * train_loader.batch_size), collate_fn=collate_samples)
        partial = None
        t0 = time.perf_counter()
        bar = tqdm(loader, total=steps_per_epoch, initial=done, desc=f"epoch {epoch + 1}/{cfg.num_epochs}",
                   disable=not info.is_main, file=sys.stderr, dynamic_ncols=True)
        for i, items in enumerate(bar, start=done):
            if i >= steps_per_epoch:
                break
            lr = get_lr(step, total_steps, cfg.learning_rate, cfg.scheduler.end_lr, cfg.scheduler.power,
                        cfg.scheduler.warmup_steps)
            for group in optimizer.param_groups:
                group["lr"] = lr
            with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
                loss, stats = loss_module(items, cache, stage, device)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if cfg.grad_clip is not None:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(trainable_parameters(sam) + extra, cfg.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            step += 1
            sums["loss"] += loss.item()
            for key in LOGGED_TERMS:
                sums[key] += stats[key]
            bar.set_postfix(loss=f"{loss.item():.4f}", lr=f"{lr:.2e}")
            if stop_after_step is not None and step >= stop_after_step:
                stop.requested = True
            every = cfg.checkpoint_every_steps
            if stop.requested or (every is not None and step % every == 0 and i + 1 < steps_per_epoch):
                partial_epoch = {"epoch": epoch + 1, "batches_done": i + 1, "train_time": time_before + time.perf_counter() - t0,
                                 "sums_per_rank": _gather(sums, info)}
                path = None
                if outputs:
                    path = save_atomic(checkpoint(epoch, record, partial_epoch), outputs.run_dir / "latest_model.pth")
                if stop.requested:
                    bar.close()
                    logger.warning("stop requested: saved step %d (epoch %d, batch %d) to %s", step, epoch + 1, i + 1, path)
                    raise TrainingStopped(path, step)
        bar.close()
        train_time = time_before + time.perf_counter() - t0
        if info.world_size > 1:
            # Each rank saw its share of every global batch: average the logged losses over ranks.
            packed = torch.tensor([sums[k] for k in sums], dtype=torch.float64)
            dist.all_reduce(packed)
            sums = {k: v.item() / info.world_size for k, v in zip(sums, packed)}
        means = {k: v / steps_per_epoch for k, v in sums.items()}

        load_images_only_on_misses(cache, val_ds)
        val, previews = evaluate(sam, val_loader, cache, cfg, device, info,
                                 num_previews=cfg.num_val_overlays if info.is_main else 0)
        if info.is_main:
            collapse = warn_if_collapsed(val, collapse)
        is_best = val["miou"] > best_miou
        best_miou = max(best_miou, val["miou"])
        record = {"epoch": epoch + 1, "step": step, "stage": stage.name, "lr": get_lr(max(0, step - 1), total_steps,
                  cfg.learning_rate, cfg.scheduler.end_lr, cfg.scheduler.power, cfg.scheduler.warmup_steps),
                  "train_loss": means["loss"], "train_focal": means["focal"], "train_dice": means["dice"], "train_bce": means["bce"],
                  "train_iou_mse": means["iou"], "train_distill": means["distill"], **val_record(val),
                  "best_miou": best_miou, "steps_per_s": steps_per_epoch / train_time}
        history.append(record)
        if outputs:
            ckpt = checkpoint(epoch + 1, record)
            save_atomic(ckpt, outputs.run_dir / "latest_model.pth")
            if is_best:
                save_atomic(ckpt, outputs.run_dir / "best_model.pth")
                outputs.overlays(previews, epoch + 1)
            outputs.metrics(record)
            outputs.plot_curves()
            logger.info("epoch %d/%d: loss %.4f (focal %.4f dice %.4f bce %.4f iou-mse %.4f distill %.4f) lr %.2e | "
                        "val mIoU %.4f Dice %.4f%s, masks cover %.1f%% (objects %.1f%%) | %.2f steps/s", epoch + 1,
                        cfg.num_epochs, means["loss"], means["focal"], means["dice"], means["bce"], means["iou"],
                        means["distill"], record["lr"], val["miou"], val["dice"], " (new best)" if is_best else "",
                        100 * val["pred_area"], 100 * val["gt_area"], record["steps_per_s"])
        if info.world_size > 1:
            dist.barrier()
        if stop_after_epoch is not None and epoch + 1 >= stop_after_epoch:
            break
    return record
