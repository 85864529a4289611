"""Batched-decoder cost per prompt vs prompts per run, for one or more decoder_batched.onnx files in one process.

Runs are interleaved (model A, model B, A, B, ...) so that load from other processes on a shared machine
hits every model alike; the minimum over rounds is the least disturbed figure. Point prompts without a
mask input, as the automatic mask generator sends them. Used to pick the runtime's internal sub-batch
size (cpp/src/predictor.cpp, kDecoderSubBatch) and to compare graph rewrites.

    python benchmarks/bench_decoder_batch.py models/exported/vit_t/decoder_batched.onnx [OTHER.onnx ...] \\
        --batches 1,4,8,16,64 --threads 2
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np


def _feeds(batch: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {
        "image_embeddings": rng.standard_normal((1, 256, 64, 64)).astype(np.float32),
        "point_coords": (rng.random((batch, 2, 2)) * 1024).astype(np.float32),
        "point_labels": np.tile(np.array([[1.0, -1.0]], np.float32), (batch, 1)),
        "mask_input": np.zeros((batch, 1, 256, 256), np.float32),
        "has_mask_input": np.zeros(1, np.float32),
    }


def measure(paths: list[Path], batches: list[int], threads: int, rounds: int, prompts_per_round: int) -> list[dict]:
    """Per model and batch size: min and median ms per prompt over ``rounds`` interleaved rounds."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    sessions = [ort.InferenceSession(str(p), options, providers=["CPUExecutionProvider"]) for p in paths]
    rng = np.random.default_rng(0)
    rows = []
    for batch in batches:
        feeds = _feeds(batch, rng)
        runs = max(1, prompts_per_round // batch)
        for session in sessions:
            session.run(None, feeds)  # warm-up: arena growth and memory planning happen on the first run
        times: list[list[float]] = [[] for _ in sessions]
        for _ in range(rounds):
            for i, session in enumerate(sessions):
                start = time.perf_counter()
                for _ in range(runs):
                    session.run(None, feeds)
                times[i].append((time.perf_counter() - start) * 1000 / (runs * batch))
        for path, t in zip(paths, times):
            rows.append({"model": str(path), "batch": batch, "ms_per_prompt_min": min(t),
                         "ms_per_prompt_median": statistics.median(t)})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", type=Path, nargs="+", help="decoder_batched.onnx files")
    parser.add_argument("--batches", default="1,2,4,8,16,32,64", help="comma-separated prompts per run")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--prompts-per-round", type=int, default=64)
    parser.add_argument("--json", type=Path, help="also write the rows to this JSON file")
    args = parser.parse_args(argv)
    for path in args.models:
        if not path.is_file():
            parser.error(f"model file not found: {path}")
    try:
        batches = [int(b) for b in args.batches.split(",")]
    except ValueError:
        parser.error(f"--batches must be comma-separated integers, got {args.batches!r}")
    if any(b <= 0 for b in batches):
        parser.error("--batches must all be > 0")
    rows = measure(args.models, batches, args.threads, args.rounds, args.prompts_per_round)
    print(f"{'model':60s} {'batch':>5s} {'ms/prompt min':>14s} {'median':>8s}")
    for row in rows:
        print(f"{row['model'][-60:]:60s} {row['batch']:5d} {row['ms_per_prompt_min']:14.1f} "
              f"{row['ms_per_prompt_median']:8.1f}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
