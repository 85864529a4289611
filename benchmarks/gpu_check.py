"""The GPU check: one command to run on a machine with an NVIDIA GPU, in under 8 minutes.

  python benchmarks/gpu_check.py [--out benchmarks/results/gpu_check.json]

On generated data (random weights, no downloads) it
  1. trains vit_t and vit_b for --steps steps (20) with AMP bf16 on cuda:0 through sam-train's own loop (every part
     trainable, --img-size 1024, --batch-size 2), and prints s/step and the peak GPU memory
     (torch.cuda.max_memory_allocated) of each;
  2. runs `torchrun --standalone --nproc-per-node 1 -m fastsam.cli.train` for a few vit_t steps (a 1-process NCCL
     group: set_device, collectives on the GPU, DDP), and the same with 2 processes when 2 GPUs are visible;
then writes every figure, the GPU model, the date and the versions as JSON to --out.

Exit status: 0 every check passed; 1 a check failed (the JSON and the printed table say which and why);
2 no CUDA device: nothing is measured and nothing is written.
`--device cpu` runs the same steps on the CPU (gloo instead of NCCL) to check the script itself on a machine
without a GPU; its figures say nothing about GPUs and go to stdout only unless --out is given.
"""
from __future__ import annotations

import argparse
import datetime
import gc
import json
import logging
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "gpu_check.json"
NO_CUDA = 2


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help=f"JSON results (default on CUDA: {DEFAULT_OUT})")
    parser.add_argument("--models", nargs="+", default=["vit_t", "vit_b"])
    parser.add_argument("--steps", type=int, default=20, help="training steps per model")
    parser.add_argument("--img-size", type=int, default=1024)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--ddp-steps", type=int, default=5, help="vit_t steps of each torchrun check")
    parser.add_argument("--no-ddp", action="store_true", help="skip the torchrun checks")
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    parser.add_argument("--budget-s", type=float, default=480.0, help="skip checks that would start after this")
    args = parser.parse_args(argv)
    for name in ("steps", "img_size", "batch_size", "ddp_steps"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    return args


def train_config(root: Path, out: Path, model: str, steps: int, img_size: int, batch_size: int, device: str) -> dict:
    """A one-epoch, `steps`-step sam-train config on the generated set, every part trainable, AMP bf16."""
    return {
        "output_dir": str(out), "run_name": model, "model_type": model, "device": device,
        "train_img_dir": str(root / "train/images"), "train_mask_dir": str(root / "train/masks"),
        "val_img_dir": str(root / "val/images"), "val_mask_dir": str(root / "val/masks"),
        "img_size": img_size, "batch_size": batch_size, "num_epochs": 1, "max_steps_per_epoch": steps,
        "freeze": {"image_encoder": False, "prompt_encoder": False}, "amp": "bf16", "learning_rate": 1e-5,
        "num_val_overlays": 0, "ddp_timeout_minutes": 3,
    }


def check_training(root: Path, out: Path, model: str, args: argparse.Namespace) -> dict:
    """Train `model` in this process; s/step from the trainer's own steps/s, peak memory from torch.cuda."""
    from fastsam.train.config import config_from_dict
    from fastsam.train.trainer import train

    cfg = config_from_dict(train_config(root, out, model, args.steps, args.img_size, args.batch_size, args.device))
    on_gpu = args.device == "cuda"
    if on_gpu:
        gc.collect()  # the previous model's tensors must not count in this one's peak
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    record = train(cfg)
    result = {"check": f"train {model}", "steps": args.steps, "img_size": args.img_size,
              "batch_size": args.batch_size, "s_per_step": 1.0 / record["steps_per_s"],
              "wall_s": time.perf_counter() - t0, "train_loss": record["train_loss"], "val_miou": record["val_miou"]}
    if on_gpu:
        torch.cuda.synchronize()
        result["peak_gpu_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
    if not math.isfinite(record["train_loss"]):
        raise RuntimeError(f"training loss is {record['train_loss']} (AMP bf16 overflow or a broken step)")
    return result


def check_torchrun(root: Path, out: Path, nproc: int, args: argparse.Namespace, timeout_s: float) -> dict:
    """sam-train under torchrun with `nproc` processes (NCCL on CUDA, gloo on CPU): it must finish and log."""
    config = train_config(root, out, "vit_t", args.ddp_steps, args.img_size, args.batch_size * nproc, args.device)
    config["run_name"] = f"torchrun{nproc}"
    path = out / f"torchrun{nproc}.json"
    path.write_text(json.dumps(config))
    package_root = Path(__import__("fastsam").__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(package_root), os.environ.get("PYTHONPATH")])))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc),
           "-m", "fastsam.cli.train", "--config", str(path)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout_s)
    result = {"check": f"torchrun {nproc} process(es)", "wall_s": time.perf_counter() - t0, "returncode": proc.returncode}
    metrics = out / "fastsam" / config["run_name"] / "metrics.jsonl"
    if proc.returncode != 0 or not metrics.is_file():
        raise RuntimeError(f"torchrun exited with {proc.returncode}: {proc.stderr.strip()[-2000:]}")
    last = json.loads(metrics.read_text().splitlines()[-1])
    result.update(s_per_step=1.0 / last["steps_per_s"], train_loss=last["train_loss"], val_miou=last["val_miou"],
                  val_objects=last["val_objects"])
    return result


def run_checks(args: argparse.Namespace, work: Path) -> list[dict]:
    from fastsam.data.synthetic import generate_synthetic_dataset

    start = time.perf_counter()
    # Enough images that every step gets a fresh batch, at a size the trainer resizes up to --img-size.
    steps = args.steps if args.no_ddp else max(args.steps, args.ddp_steps)
    root = generate_synthetic_dataset(work / "data", num_train=steps * args.batch_size * 2, num_val=2,
                                      size=min(256, args.img_size), objects=(1, 3), seed=0)
    checks: list[tuple[str, object]] = [(f"train {m}", lambda m=m: check_training(root, work / "runs", m, args))
                                        for m in args.models]
    if not args.no_ddp:
        gpus = torch.cuda.device_count() if args.device == "cuda" else 2
        for nproc in (1, 2):
            if nproc <= gpus:
                checks.append((f"torchrun {nproc} process(es)",
                               lambda n=nproc: check_torchrun(root, work / "runs", n, args,
                                                              max(30.0, args.budget_s - (time.perf_counter() - start)))))
            else:
                checks.append((f"torchrun {nproc} process(es)", None))
    results = []
    for name, check in checks:
        if check is None:
            results.append({"check": name, "status": "skipped", "reason": "fewer than 2 GPUs visible"})
        elif time.perf_counter() - start > args.budget_s:
            results.append({"check": name, "status": "skipped", "reason": f"over the {args.budget_s:.0f} s budget"})
        else:
            try:
                results.append({**check(), "status": "passed"})
            except Exception as err:  # noqa: BLE001 - a failed check is reported and the others still run
                results.append({"check": name, "status": "failed", "error": f"{type(err).__name__}: {err}"})
        print(format_result(results[-1]), flush=True)
    return results


def format_result(r: dict) -> str:
    line = f"{r['check']:<26} {r['status']:<8}"
    if "s_per_step" in r:
        line += f" {r['s_per_step']:.3f} s/step"
    if "peak_gpu_memory_gib" in r:
        line += f", peak GPU memory {r['peak_gpu_memory_gib']:.2f} GiB"
    if r["status"] != "passed":
        line += f" ({r.get('reason') or r.get('error')})"
    return line


def environment(device: str) -> dict:
    env = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           "torch": torch.__version__, "python": platform.python_version(), "device": device}
    if device == "cuda":
        nccl = torch.cuda.nccl.version()  # a tuple in recent torch, an int in older ones
        env.update(gpu=torch.cuda.get_device_name(0), gpus=torch.cuda.device_count(), cuda=torch.version.cuda,
                   nccl=".".join(map(str, nccl)) if isinstance(nccl, tuple) else str(nccl))
    return env


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("gpu_check: no CUDA device (torch.cuda.is_available() is False): nothing measured, nothing written. "
              "Run it on a machine with an NVIDIA GPU and a CUDA build of PyTorch (or pass --device cpu to check "
              "the script itself).", file=sys.stderr)
        return NO_CUDA
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    env = environment(args.device)
    print(f"gpu_check on {env.get('gpu', 'the CPU')} (torch {env['torch']})", flush=True)
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as work:
        results = run_checks(args, Path(work))
    out = args.out if args.out is not None else (DEFAULT_OUT if args.device == "cuda" else None)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"environment": env, "args": {k: str(v) for k, v in vars(args).items()},
                                   "results": results}, indent=2) + "\n")
        print(f"wrote {out}")
    return 0 if all(r["status"] != "failed" for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
