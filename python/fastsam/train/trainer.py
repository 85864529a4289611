"""The sam-train loop, readable top to bottom: setup, optional resume, then epochs of
(train steps -> validation -> checkpoints and outputs).

What the run trains (dataset item, forward, loss, validation, previews) is its task (train/tasks/); the
loop is the same for every task. Data parallel: launched by torchrun (WORLD_SIZE > 1) it wraps the loss
module in DistributedDataParallel, shards batches with DistributedSampler, reduces validation sums across
ranks, and only rank 0 writes files. The global batch is batch_size; each rank takes batch_size / world_size.
"""
from __future__ import annotations

import dataclasses
import logging
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm

from ..data.build import load_records
from ..data.dataset import collate_samples
from .checkpointing import load_training_checkpoint, rng_state, save_atomic, set_rng_state
from .config import ConfigError, TrainConfig, check_paths, save_config
from .distillation.stack import build_stack
from .distributed import (DistInfo, ShardSampler, SkipSampler, any_rank, barrier, gather_objects, launch_info,
                          reduce_sum, setup_distributed, shutdown, wrap_ddp)
from .embedding_cache import EmbeddingCache, load_images_only_on_misses, model_identity
from .evaluator import Evaluator
from .feature_distill import check_teacher_features, make_distiller, uses_distillation
from .freezing import apply_freeze, frozen_parts, set_train_mode, trainable_parameters
from .graceful_stop import GracefulStop, TrainingStopped
from .interval_metrics import IntervalMetrics
from .loss_module import SegmentationLoss
from .model_setup import build_student
from .nonfinite import NonFiniteGuard, check_finite_weights, guarded_step
from .run_outputs import EarlyRecords, RunOutputs, check_run_folder_free
from .schedule import ActiveStage, get_lr, stage_for_epoch, step_budget
from .tasks import make_task
from .validation import evaluate

logger = logging.getLogger("fastsam.train")


def pick_device(cfg: TrainConfig, info: DistInfo) -> torch.device:
    """The configured device; "auto" and "cuda" mean this process's GPU, cuda:LOCAL_RANK, when CUDA is present."""
    if cfg.device == "auto" and not torch.cuda.is_available():
        return torch.device("cpu")
    device = torch.device("cuda" if cfg.device == "auto" else cfg.device)
    if device.type != "cuda":
        return device
    if not torch.cuda.is_available():
        raise ConfigError(f"config key 'device' is {cfg.device!r} but CUDA is not available")
    if device.index is not None and info.local_world_size > 1:
        raise ConfigError(f"config key 'device' is {cfg.device!r}, one GPU for the {info.local_world_size} processes "
                          "of this node: under torchrun use 'auto' or 'cuda' (each process takes cuda:LOCAL_RANK)")
    index = info.local_rank if device.index is None else device.index
    if index >= torch.cuda.device_count():
        raise ConfigError(f"process with LOCAL_RANK {info.local_rank} needs cuda:{index} but "
                          f"{torch.cuda.device_count()} GPU(s) are visible: start at most that many processes per node "
                          "(--nproc-per-node)")
    return torch.device("cuda", index)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _loaders(cfg: TrainConfig, info: DistInfo, train_ds, val_ds):
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


def _unfreeze(sam: nn.Module, optimizer: torch.optim.Optimizer) -> None:
    """Make every part trainable and give the newly trainable parameters their own optimizer group."""
    before = {id(p) for p in trainable_parameters(sam)}
    apply_freeze(sam, [])
    new = [p for p in sam.parameters() if id(p) not in before]
    if new:
        optimizer.add_param_group({"params": new})


def _epoch_stage(cfg: TrainConfig, epoch: int, num_epochs: int, stack) -> ActiveStage:
    """The 0-based epoch's stage (with the dynamic distillation lambda), logged."""
    stage = stage_for_epoch(cfg, epoch)
    logger.info("epoch %d/%d: %s, loss weights %s", epoch + 1, num_epochs, stage.name,
                " ".join(f"{k} {v:g}" for k, v in vars(stage.loss_weights).items()))
    if stack is not None and stage.distillation:
        if cfg.distillation.dynamic_lambda.enable:
            stage = dataclasses.replace(stage, lambda_coef=stack.lambda_schedule.value)
        logger.info("epoch %d/%d: distillation lambda %g (loss = task + lambda * distill)", epoch + 1,
                    num_epochs, stage.lambda_coef)
    return stage


def _continue_epoch(partial: dict, cfg: TrainConfig, info: DistInfo, train_ds, train_loader: DataLoader,
                    sampler: DistributedSampler) -> tuple[int, float, dict, DataLoader]:
    """(batches done, train time so far, this rank's loss sums, a loader over the rest) of a stopped epoch:
    the same shuffled order, minus the batches already trained."""
    if len(partial["sums_per_rank"]) != info.world_size:
        raise ConfigError(f"--resume: the checkpoint stopped inside epoch {partial['epoch']} with "
                          f"{len(partial['sums_per_rank'])} process(es); resume it with the same number "
                          f"(this run has {info.world_size})")
    done = partial["batches_done"]
    loader = DataLoader(train_ds, batch_size=train_loader.batch_size, num_workers=cfg.num_workers,
                        sampler=SkipSampler(sampler, done * train_loader.batch_size), collate_fn=collate_samples)
    return done, partial["train_time"], dict(partial["sums_per_rank"][info.rank]), loader


def _lambda_step(stack, stage: ActiveStage):
    """What sets the next epoch's lambda (dynamic_lambda) from a validation, before the checkpoint saves it."""
    def step(val: dict) -> None:
        if stack is not None and stage.distillation:
            stack.lambda_schedule.step(val["miou"])
    return step


def _log_epoch(record: dict, num_epochs: int, terms: tuple[str, ...], val: str, is_best: bool) -> None:
    logger.info("epoch %d/%d: loss %.4f (%s) lr %.2e | %s%s | %.2f steps/s", record["epoch"], num_epochs,
                record["train_loss"], " ".join(f"{k.replace('_', '-')} {record[f'train_{k}']:.4f}" for k in terms),
                record["lr"], val, " (new best)" if is_best else "", record["steps_per_s"])


def load_data(cfg: TrainConfig):
    """(train records, val records, problem messages): bad samples are reported (with file names), or raised
    with on_bad_sample='error', before the run folder is written."""
    train_records, train_problems = load_records(cfg.train_img_dir, cfg.train_mask_dir, cfg.train_coco,
                                                 cfg.on_bad_sample, "train")
    val_dir = cfg.val_img_dir or cfg.train_img_dir
    val_masks, val_coco = (cfg.val_mask_dir, cfg.val_coco) if cfg.val_img_dir else (cfg.train_mask_dir, cfg.train_coco)
    val_records, val_problems = load_records(val_dir, val_masks, val_coco, cfg.on_bad_sample, "val")
    return train_records, val_records, train_problems + val_problems


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
    check_paths(cfg)
    if uses_distillation(cfg):
        if cfg.freeze.image_encoder:
            raise ConfigError("distillation trains the student's image encoder: set freeze.image_encoder=false")
        if cfg.augment:
            raise ConfigError("distillation compares with features of the unflipped images: set augment=false")
        check_teacher_features(cfg)
    launch = launch_info()
    device = pick_device(cfg, launch)
    # Inputs are checked before the run folder is written: a bad one leaves no config without a model behind.
    with EarlyRecords() as early:
        data = load_data(cfg)
        seed_everything(cfg.seed)
        sam = build_student(cfg)
    info = setup_distributed(launch, device, cfg.ddp_timeout_minutes)
    handler = None
    try:  # from here on an error on any rank still leaves the process group
        outputs = RunOutputs(cfg.run_dir) if info.is_main else None
        if outputs and resume is None:
            outputs.clear_previous_run()
        handler = outputs.attach_log_file(early.records) if outputs else None
        with GracefulStop() as stop:
            return _run(cfg, info, device, outputs, data, sam, resume, stop_after_epoch, stop, stop_after_step)
    finally:
        if handler is not None:
            logging.getLogger("fastsam").removeHandler(handler)
            handler.close()
        shutdown(info)


def _run(cfg: TrainConfig, info: DistInfo, device: torch.device, outputs: RunOutputs | None, data: tuple,
         sam: nn.Module, resume: str | Path | None, stop_after_epoch: int | None, stop: GracefulStop,
         stop_after_step: int | None) -> dict:
    if outputs:
        save_config(cfg, outputs.run_dir / "config.json")
        logger.info("run folder %s; device %s; %d process(es)", outputs.run_dir, device, info.world_size)
    task = make_task(cfg)
    train_records, val_records, _ = data
    train_ds, val_ds = task.datasets(train_records, val_records)
    sampler, train_loader, val_loader = _loaders(cfg, info, train_ds, val_ds)
    steps_per_epoch = len(train_loader) if cfg.max_steps_per_epoch is None else min(len(train_loader), cfg.max_steps_per_epoch)
    budget = step_budget(steps_per_epoch, cfg.num_epochs, cfg.max_steps)
    total_steps, num_epochs = budget.total_steps, budget.num_epochs
    logger.info("train: %d images, %d objects; val: %d images, %d objects; %d steps/epoch, %d steps in all (%d epochs)",
                len(train_records), sum(len(r.masks) for r in train_records), len(val_records),
                sum(len(r.masks) for r in val_records), steps_per_epoch, total_steps, num_epochs)

    # Model and optimizer (AdamW only on trainable parameters).
    sam = sam.to(device)
    frozen = frozen_parts(cfg.freeze)
    apply_freeze(sam, frozen)
    if not trainable_parameters(sam):
        raise ConfigError("config key 'freeze': every part is frozen, nothing would train")
    distiller, projection = make_distiller(cfg, sam, device) if uses_distillation(cfg) else (None, None)
    stack = build_stack(cfg.distillation, sam, img_size=cfg.img_size, device=device) if cfg.distillation.enable else None
    extra = [] if projection is None else list(projection.parameters())
    optimizer = torch.optim.AdamW(trainable_parameters(sam) + extra, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    use_scaler = cfg.amp == "fp16" and device.type == "cuda"
    scaler = torch.amp.GradScaler(device.type, enabled=use_scaler)
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(cfg.amp)

    def lr_at(step: int) -> float:
        return get_lr(step, total_steps, cfg.learning_rate, cfg.scheduler.end_lr, cfg.scheduler.power,
                      cfg.scheduler.warmup_steps)

    def validate() -> tuple[dict, list[dict]]:
        load_images_only_on_misses(cache, val_ds)
        return evaluate(task, sam, val_loader, cache, device, info,
                        num_previews=cfg.num_val_overlays if info.is_main else 0, weights=cfg.loss_weights)

    evaluator = Evaluator(validate, task, outputs, cfg.save_top_k, info.is_main, total_steps)
    intervals = None if cfg.metrics_interval is None else IntervalMetrics(
        cfg.metrics_interval, SegmentationLoss.terms_of(task, stack), total_steps, info)
    step, start_epoch, partial = 0, 0, None
    record: dict = {}
    if resume is not None:
        ckpt = load_training_checkpoint(resume)
        sam.load_state_dict(ckpt["model"])
        if projection is not None:
            projection.load_state_dict(ckpt["distill_projection"])
        if stack is not None and "distillation" in ckpt:
            stack.load_state_dict(ckpt["distillation"])  # dynamic lambda and RKD sampling continue
        start_epoch = ckpt["epoch"]  # epochs finished = 0-based index of the next one
        partial = ckpt.get("partial_epoch")
        # A checkpoint from inside the unfreeze epoch already has the unfrozen parameter group.
        unfrozen_in = start_epoch if partial is None else start_epoch + 1
        if frozen and cfg.unfreeze_epoch is not None and unfrozen_in > cfg.unfreeze_epoch:
            _unfreeze(sam, optimizer)
            frozen = []
        optimizer.load_state_dict(ckpt["optimizer"])
        scaler.load_state_dict(ckpt["scaler"])
        step, evaluator.best_miou, record = ckpt["step"], ckpt["best_miou"], dict(ckpt.get("metrics") or {})
        if intervals is not None and ckpt.get("interval"):
            intervals.load_state(ckpt["interval"][info.rank])
        set_rng_state(ckpt["rng"])
        if outputs:
            outputs.restore_metrics(step, record)
            evaluator.top_k.discard_after(step)
        logger.info("resumed from %s after epoch %d%s (step %d, best val mIoU %.4f)", resume, ckpt["epoch"],
                    f" and {partial['batches_done']} batches of epoch {partial['epoch']}" if partial else "", step,
                    evaluator.best_miou)

    cache = None
    if "image_encoder" in frozen and not cfg.augment and cfg.cache_embeddings:
        cache = EmbeddingCache(model_identity(sam.image_encoder, cfg.img_size), cfg.embedding_cache_dir)
    logger.info("frozen: %s; embedding cache %s", ", ".join(frozen) or "nothing",
                "off" if cache is None else f"on ({cache.directory or 'in memory'})")
    loss_module = SegmentationLoss(sam, task, cfg, projection, distiller, stack)
    wrapped = wrap_ddp(loss_module, info, device)

    def checkpoint(epoch_done: int, metrics: dict, partial_epoch: dict | None = None,
                   interval: list[dict] | None = None) -> dict:
        check_finite_weights(sam, f"the checkpoint of step {step}")
        ckpt = {"model": sam.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": {"step": step, "total_steps": total_steps, "kind": "polynomial"},
                "scaler": scaler.state_dict(), "epoch": epoch_done, "step": step, "rng": rng_state(),
                "config": cfg.to_dict(), "metrics": metrics, "best_miou": evaluator.best_miou,
                "model_type": cfg.model_type}
        if projection is not None:
            ckpt["distill_projection"] = projection.state_dict()
        if stack is not None:
            ckpt["distillation"] = stack.state_dict()
        if partial_epoch is not None:
            ckpt["partial_epoch"] = partial_epoch
        if interval is not None:
            ckpt["interval"] = interval  # each rank's open metrics interval
        return ckpt

    if resume is None:
        # The starting weights are the first best: an epoch must beat them, and best_model.pth always exists.
        record, _ = evaluator.run({"epoch": 0, "step": 0, "train_loss": None}, lambda r: checkpoint(0, r), 0)
        logger.info("before training: %s", task.describe(evaluator.last))

    guard = NonFiniteGuard(cfg.on_nonfinite, cfg.max_nonfinite_in_a_row, info.distributed)
    for epoch in range(start_epoch, num_epochs):
        if frozen and epoch == cfg.unfreeze_epoch:
            _unfreeze(sam, optimizer)
            frozen, cache = [], None
            loss_module = SegmentationLoss(sam, task, cfg, projection, distiller, stack)
            wrapped = wrap_ddp(loss_module, info, device)
            logger.info("epoch %d: unfroze every part; embedding cache off", epoch + 1)
        stage = _epoch_stage(cfg, epoch, num_epochs, stack)
        epoch_steps = budget.steps_in_epoch(epoch)
        set_train_mode(sam, frozen)
        load_images_only_on_misses(cache, train_ds)
        if stack is not None and stack.needs_images:
            train_ds.load_images = True  # the online teacher encodes each image itself
        sampler.set_epoch(epoch)
        train_ds.set_epoch(epoch)
        terms = loss_module.logged_terms()
        sums = dict.fromkeys(("loss",) + terms, 0.0)
        done, loader, time_before = 0, train_loader, 0.0
        guard.start_epoch()
        if partial is not None and partial["epoch"] == epoch + 1:
            done, time_before, sums, loader = _continue_epoch(partial, cfg, info, train_ds, train_loader, sampler)
            guard.start_epoch(partial.get("nonfinite_steps", 0))
        partial = None
        t0 = time.perf_counter()

        def partial_state(batches_done: int) -> dict:
            """This epoch so far, for a checkpoint taken inside it (a collective: every rank calls it)."""
            return {"epoch": epoch + 1, "batches_done": batches_done, "sums_per_rank": gather_objects(sums, info),
                    "train_time": time_before + time.perf_counter() - t0, "nonfinite_steps": guard.epoch_count}

        bar = tqdm(loader, total=epoch_steps, initial=done, desc=f"epoch {epoch + 1}/{num_epochs}",
                   disable=not info.is_main, file=sys.stderr, dynamic_ncols=True)
        for i, items in enumerate(bar, start=done):
            if i >= epoch_steps:
                break
            lr = lr_at(step)
            for group in optimizer.param_groups:
                group["lr"] = lr
            with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
                loss, stats = wrapped(items, cache, stage, device)
            trained = guarded_step(guard, loss, items, step, optimizer, scaler, trainable_parameters(sam) + extra,
                                   cfg.grad_clip)
            step += 1
            if trained:
                sums["loss"] += loss.item()
                for key in terms:
                    sums[key] += stats[key]
            bar.set_postfix(loss=f"{loss.item():.4f}", lr=f"{lr:.2e}")
            if intervals is not None:
                if trained:
                    intervals.add(loss.item(), stats)
                if intervals.due(step):
                    # Validation inside an epoch saves a mid-epoch checkpoint; at its end, a finished epoch's.
                    partial_epoch = partial_state(i + 1) if i + 1 < epoch_steps else None
                    # After flush() the interval is empty: resuming from this checkpoint starts a fresh one.
                    record, _ = evaluator.run(
                        {"epoch": epoch + 1, "step": step, "lr": lr, **intervals.flush()},
                        lambda r: checkpoint(epoch + (partial_epoch is None), r, partial_epoch), epoch + 1)
                    logger.info("step %d/%d: loss %.4f lr %.2e | %s", step, total_steps, record["train_loss"], lr,
                                task.describe(evaluator.last))
                    set_train_mode(sam, frozen)
            if stop_after_step is not None and step >= stop_after_step:
                stop.requested = True
            stop.requested = any_rank(stop.requested, info)  # every rank stops after the same step
            every = cfg.checkpoint_every_steps
            if stop.requested or (every is not None and step % every == 0 and i + 1 < epoch_steps):
                partial_epoch, interval = partial_state(i + 1), IntervalMetrics.gather(intervals)
                path = None
                if outputs:
                    path = save_atomic(checkpoint(epoch, record, partial_epoch, interval),
                                       outputs.run_dir / "latest_model.pth")
                if stop.requested:
                    bar.close()
                    logger.warning("stop requested: saved step %d (epoch %d, batch %d) to %s", step, epoch + 1, i + 1, path)
                    raise TrainingStopped(path, step)
        bar.close()
        train_time = time_before + time.perf_counter() - t0
        # Each rank saw its share of every global batch: average the logged losses over ranks.
        packed = reduce_sum(torch.tensor([sums[k] for k in sums], dtype=torch.float64), info)
        sums = {k: v.item() / info.world_size for k, v in zip(sums, packed)}
        means = {k: v / max(1, epoch_steps - guard.epoch_count) for k, v in sums.items()}  # over trained steps

        epoch_record = {"epoch": epoch + 1, "step": step, "stage": stage.name, "lr": lr_at(max(0, step - 1)),
                        **{f"train_{k}": v for k, v in means.items()}, "steps_per_s": epoch_steps / train_time,
                        "nonfinite_steps": guard.epoch_count}
        if stack is not None:
            epoch_record["distill_lambda"] = stage.lambda_coef if stage.distillation else 0.0
        next_lambda = _lambda_step(stack, stage)
        if intervals is None:
            record, is_best = evaluator.run(epoch_record, lambda r: checkpoint(epoch + 1, r), epoch + 1,
                                            save_latest=True, before_saving=next_lambda)
        else:
            # Validation ran at the intervals; the epoch end only saves where --resume continues from.
            next_lambda(evaluator.last)
            is_best, interval = False, IntervalMetrics.gather(intervals)
            if outputs:
                save_atomic(checkpoint(epoch + 1, record, interval=interval), outputs.run_dir / "latest_model.pth")
        if outputs:
            _log_epoch(epoch_record, num_epochs, terms, task.describe(evaluator.last), is_best)
        barrier(info)
        if stop_after_epoch is not None and epoch + 1 >= stop_after_epoch:
            break
    return record
