"""Segment-everything training on real photos: Hungarian mIoU / recall before and after a short run, and the cost
of one training step by grid size, with and without the matched-only upscaling of item 5.

Uses ../shared/data/coco128seg/everything (image/<id>.jpg + mask/<id>/object_<k>.png) and the demo base model
(vit_t at 256 px, trained on generated shapes: the only non-random vit_t weights in the repository). Image encoder
and prompt encoder are frozen with cached embeddings, so a step is a mask-decoder step.

  python benchmarks/bench_train_everything.py [--steps 20] [--epochs 2] [--grid 8] [--grids 8 16 32]

Writes benchmarks/results/bench_train_everything.json. Step time and peak RSS are measured in a fresh process per
(grid, formulation) so one measurement's peak does not hide the next; peak RSS includes the interpreter and torch.
Step time is the median over the timed steps, in wall and CPU seconds (one torch thread: CPU time is the cost, wall
time also holds other processes' turns on a shared machine); the speed-up of the matched-only upscaling is the ratio
of median CPU times. Each row records the command that measured it.
"""
from __future__ import annotations

import argparse
import json
import logging
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "bench_train_everything.json"


def _config(data: Path, out: Path, args, grid: int) -> dict:
    from fastsam.demo_model import BASE_IMAGE_SIZE, base_checkpoint_path

    return {
        "output_dir": str(out), "embedding_cache_dir": str(args.cache_dir), "model_type": "vit_t",
        "checkpoint": str(base_checkpoint_path()), "img_size": BASE_IMAGE_SIZE,
        "train_img_dir": str(data / "train/image"), "train_mask_dir": str(data / "train/mask"),
        "val_img_dir": str(data / "val/image"), "val_mask_dir": str(data / "val/mask"),
        "freeze": {"image_encoder": True, "prompt_encoder": True}, "dataset": {"mode": "everything", "grid_points": grid},
        "prediction_batch_size": 64, "num_epochs": args.epochs, "max_steps_per_epoch": args.steps,
        "batch_size": 2, "learning_rate": args.lr, "num_val_overlays": 0, "seed": 0,
        "loss_weights": {"focal": args.focal, "dice": 1.0, "iou": 1.0, "cls": 1.0}, "cls_balance": args.cls_balance,
    }


def short_run(data: Path, args) -> dict:
    """Train args.epochs x args.steps steps at grid args.grid; Hungarian figures before and after."""
    from fastsam.train.config import config_from_dict
    from fastsam.train.trainer import train

    with tempfile.TemporaryDirectory() as tmp:
        cfg = config_from_dict(_config(data, Path(tmp), args, args.grid))
        t0, c0 = time.perf_counter(), time.process_time()
        train(cfg)
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
        rows = [json.loads(line) for line in (cfg.run_dir / "metrics.jsonl").read_text().splitlines()]
    start, end = rows[0], rows[-1]
    return {"grid_points": args.grid, "steps": end["step"], "batch_size": 2, "learning_rate": args.lr,
            "loss_weights": cfg.to_dict()["loss_weights"], "cls_balance": cfg.cls_balance,
            "seconds": round(elapsed, 1), "cpu_seconds": round(cpu, 1), "val_images": start["val_images"], "val_objects": start["val_objects"],
            "miou_before": start["val_miou"], "miou_after": end["val_miou"],
            "dice_before": start["val_dice"], "dice_after": end["val_dice"],
            "recall50_before": start["val_recall50"], "recall50_after": end["val_recall50"]}


def measure_step(data: Path, args) -> dict:
    """(Child process) median seconds of one training step on one image and this process's peak RSS."""
    from fastsam.train.config import config_from_dict
    from fastsam.train.embedding_cache import EmbeddingCache, embed_images, model_identity
    from fastsam.train.freezing import apply_freeze, frozen_parts, trainable_parameters
    from fastsam.train.model_setup import build_student
    from fastsam.train.tasks.everything import EverythingTask
    from fastsam.data.build import load_records

    cfg = config_from_dict(_config(data, Path(tempfile.gettempdir()), args, args.measure_grid))
    sam = build_student(cfg)
    apply_freeze(sam, frozen_parts(cfg.freeze))
    optimizer = torch.optim.AdamW(trainable_parameters(sam), lr=cfg.learning_rate)
    task = EverythingTask(cfg, matched_only_upscale=not args.plain)
    records, _ = load_records(cfg.train_img_dir, cfg.train_mask_dir, None, "skip", "train")
    dataset, _ = task.datasets(records[: args.measure_images], records[:1])
    cache = EmbeddingCache(model_identity(sam.image_encoder, cfg.img_size), cfg.embedding_cache_dir)
    items = [dataset[i] for i in range(len(dataset))]
    device = torch.device("cpu")
    with torch.no_grad():
        embeddings = embed_images(sam, items, cache, device)
    sam.mask_decoder.train()
    times, cpu_times, matched = [], [], []
    for repeat in range(args.measure_repeats + 1):
        for item, emb in zip(items, embeddings):
            t0, c0 = time.perf_counter(), time.process_time()
            loss, terms = task.image_loss(sam, emb, item, cfg.loss_weights, device)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if repeat:  # the first pass over the images warms up allocations
                times.append(time.perf_counter() - t0)
                cpu_times.append(time.process_time() - c0)
                matched.append(terms["matched"].item())
    return {"grid_points": args.measure_grid, "prompts": args.measure_grid ** 2,
            "formulation": "plain" if args.plain else "matched_only_upscale",
            "steps_timed": len(times), "step_s": statistics.median(times), "step_cpu_s": statistics.median(cpu_times),
            "matched_per_image": sum(matched) / len(matched),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _child(data: Path, args, grid: int, plain: bool) -> dict:
    cmd = [sys.executable, __file__, "--shared", str(args.shared), "--measure-grid", str(grid), "--threads",
           str(args.threads), "--cache-dir", str(args.cache_dir), "--measure-images", str(args.measure_images),
           "--measure-repeats", str(args.measure_repeats)] + (["--plain"] if plain else [])
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    parser.add_argument("--steps", type=int, default=20, help="optimizer steps per epoch of the short run")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--grid", type=int, default=8, help="grid points per side in the short run")
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--focal", type=float, default=20.0, help="focal weight (the example config's; dice, iou, cls 1)")
    parser.add_argument("--cls-balance", choices=["mean", "fg_bg"], default="mean", help="the cls term (config cls_balance)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results JSON (merged into when it exists)")
    parser.add_argument("--grids", type=int, nargs="*", default=[8, 16, 32], help="grids for step time / peak RSS")
    parser.add_argument("--plain-grids", type=int, nargs="*", default=[8, 16, 32],
                        help="grids also measured with the plain formulation (every candidate upscaled with gradient)")
    parser.add_argument("--measure-images", type=int, default=2)
    parser.add_argument("--measure-repeats", type=int, default=2)
    parser.add_argument("--skip-run", action="store_true", help="only measure step time and peak RSS")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--cache-dir", type=Path, default=REPO / "build" / "embedding_cache")
    parser.add_argument("--measure-grid", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--plain", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    data = args.shared / "data" / "coco128seg" / "everything"
    if not data.is_dir():
        raise SystemExit(f"skipped: {data} not found (the coco128seg everything layout; pass --shared DIR)")
    torch.set_num_threads(args.threads)
    if args.measure_grid is not None:
        print(json.dumps(measure_step(data, args)))
        return
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    # Parts measured by separate invocations (--skip-run, --grids) are merged into one results file.
    result = json.loads(args.out.read_text()) if args.out.is_file() else {}
    result.update({"threads": args.threads, "prediction_batch_size": 64,
                   "model": "demo base vit_t_shapes.pth at 256 px, encoders frozen, embeddings cached"})
    command = " ".join(["python benchmarks/bench_train_everything.py"] + sys.argv[1:])
    if not args.skip_run:
        result["short_run"] = {"command": command, **short_run(data, args)}
        _write(result, args.out)
        print(json.dumps(result["short_run"], indent=2))
    result.pop("steps_command", None)
    for grid in args.grids:
        for plain in ([False, True] if grid in args.plain_grids else [False]):
            row = {**_child(data, args, grid, plain), "command": command}
            # A row replaces the earlier one of its (grid, formulation): grids may be measured by separate runs.
            result["steps"] = [r for r in result.get("steps", []) if (r["grid_points"], r["formulation"])
                               != (row["grid_points"], row["formulation"])] + [row]
            print(json.dumps(row))
            _write(result, args.out)
    result["matched_only_speedup_cpu"] = {}
    for grid in sorted({r["grid_points"] for r in result.get("steps", [])}):
        rows = {r["formulation"]: r for r in result["steps"] if r["grid_points"] == grid}
        if len(rows) == 2:
            # CPU time: on a shared machine wall time also counts other processes' turns.
            result.setdefault("matched_only_speedup_cpu", {})[str(grid)] = (
                rows["plain"]["step_cpu_s"] / rows["matched_only_upscale"]["step_cpu_s"])
    _write(result, args.out)
    print(f"wrote {args.out}")


def _write(result: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
