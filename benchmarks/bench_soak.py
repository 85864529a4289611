"""Soak test of fastsam_rt: many predict() and generate() calls in one process, RSS sampled as it goes.

A leak in the runtime (a buffer kept per call, a session or arena growing) shows as RSS rising with the call
count. The script samples RSS every --sample-every calls, fits a least-squares line to the samples after a
warm-up (allocators and ONNX Runtime's arena settle during the first calls) and reports the slope in
MiB per 1000 calls next to the noise of the samples around that line; the run is "flat" when the rise the
slope predicts over the whole run is within 3x that noise (or under 1 MiB). Predict calls cycle through point,
box, multi-point, mask-input and logit prompts, with a new random image every 100 calls.

    python tests/standalone_model.py /tmp/standalone          # a random vit_t at 256 px
    OMP_NUM_THREADS=1 python benchmarks/bench_soak.py --model-dir /tmp/standalone \
        --out benchmarks/results/bench_soak.json                # 10,000 predict + 200 generate calls

Exits 1 when a phase is not flat.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np


def rss_mib() -> float:
    """Resident set size of this process now (not the peak), from /proc."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    raise RuntimeError("no VmRSS in /proc/self/status (Linux only)")


def trend(calls: list[int], rss: list[float], warmup_fraction: float) -> dict:
    """Least-squares slope of RSS over calls after the warm-up, the residual noise and the flat verdict."""
    # The sample taken before the first call never counts: the first call opens sessions and arenas.
    start = max(1, int(len(calls) * warmup_fraction))
    x, y = np.asarray(calls[start:], dtype=float), np.asarray(rss[start:], dtype=float)
    slope, intercept = np.polyfit(x, y, 1)
    noise = float(np.std(y - (slope * x + intercept)))
    rise = float(slope * (x[-1] - x[0]))
    return {
        "samples_fitted": int(len(x)),
        "slope_mib_per_1000_calls": float(slope * 1000),
        "predicted_rise_mib": rise,
        "residual_std_mib": noise,
        "rss_first_fitted_mib": float(y[0]),
        "rss_last_mib": float(y[-1]),
        "flat": bool(abs(rise) <= max(3 * noise, 1.0)),
    }


def random_image(gen: np.random.Generator, height: int, width: int) -> np.ndarray:
    image = gen.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    y0, x0 = gen.integers(0, height // 2), gen.integers(0, width // 2)
    image[y0:y0 + height // 3, x0:x0 + width // 3] = gen.integers(0, 256, size=3, dtype=np.uint8)
    return image


def predict_phase(model_dir: str, calls: int, every: int, threads: int, seed: int, log) -> dict:
    import fastsam_rt

    gen = np.random.default_rng(seed)
    predictor = fastsam_rt.Predictor(model_dir, intra_op_threads=threads)
    height, width = 180, 240
    low_res = None
    samples_calls, samples_rss = [0], [rss_mib()]
    start = time.perf_counter()
    for i in range(calls):
        if i % 100 == 0:
            predictor.set_image(random_image(gen, height, width))
            low_res = None
        x, y = float(gen.uniform(0, width)), float(gen.uniform(0, height))
        kind = i % 5
        if kind == 0:
            _, _, logits = predictor.predict(point_coords=np.array([[x, y]]), point_labels=np.array([1]))
            low_res = logits[:1]
        elif kind == 1:
            predictor.predict(box=np.array([x / 2, y / 2, (x + width) / 2, (y + height) / 2]), multimask_output=False)
        elif kind == 2:
            points = gen.uniform((0, 0), (width, height), size=(3, 2))
            predictor.predict(point_coords=points, point_labels=np.array([1, 0, 1]), return_logits=True)
        elif kind == 3 and low_res is not None:
            predictor.predict(point_coords=np.array([[x, y]]), point_labels=np.array([1]), mask_input=low_res)
        else:
            predictor.predict_boxes(np.array([[0, 0, x, y], [x / 2, y / 2, width, height]], dtype=np.float32))
        if (i + 1) % every == 0:
            samples_calls.append(i + 1)
            samples_rss.append(rss_mib())
            if (i + 1) % (every * 10) == 0:
                log(f"predict {i + 1}/{calls}: RSS {samples_rss[-1]:.1f} MiB")
    return {"calls": calls, "seconds": time.perf_counter() - start, "calls_at_sample": samples_calls,
            "rss_mib": samples_rss}


def generate_phase(model_dir: str, calls: int, every: int, threads: int, points_per_side: int, seed: int,
                   log) -> dict:
    import fastsam_rt

    gen = np.random.default_rng(seed)
    # The IoU and stability filters off, so every prompt's mask goes through upscaling, NMS and RLE.
    generator = fastsam_rt.AutomaticMaskGenerator(model_dir, points_per_side=points_per_side, pred_iou_thresh=0.0,
                                                  stability_score_thresh=0.0, output_mode="coco_rle",
                                                  intra_op_threads=threads)
    samples_calls, samples_rss = [0], [rss_mib()]
    masks = 0
    start = time.perf_counter()
    for i in range(calls):
        masks += len(generator.generate(random_image(gen, 120, 160)))
        if (i + 1) % every == 0:
            samples_calls.append(i + 1)
            samples_rss.append(rss_mib())
            log(f"generate {i + 1}/{calls}: RSS {samples_rss[-1]:.1f} MiB")
    return {"calls": calls, "seconds": time.perf_counter() - start, "masks": masks,
            "points_per_side": points_per_side, "calls_at_sample": samples_calls, "rss_mib": samples_rss}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", required=True, help="a sam-export directory (tests/standalone_model.py)")
    parser.add_argument("--predict-calls", type=int, default=10_000)
    parser.add_argument("--generate-calls", type=int, default=200)
    parser.add_argument("--sample-every", type=int, default=100, help="predict calls between RSS samples")
    parser.add_argument("--generate-sample-every", type=int, default=10, help="generate calls between RSS samples")
    parser.add_argument("--points-per-side", type=int, default=8, help="generator grid (8: 64 prompts per image)")
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads")
    parser.add_argument("--warmup-fraction", type=float, default=0.1, help="share of samples left out of the fit")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="JSON results (e.g. benchmarks/results/bench_soak.json)")
    args = parser.parse_args()

    log = lambda line: print(line, flush=True)  # noqa: E731
    result = {"model_dir": args.model_dir, "machine": platform.processor() or platform.machine(),
              "cpus": os.cpu_count(), "threads": args.threads}
    for name, phase in (
        ("predict", lambda: predict_phase(args.model_dir, args.predict_calls, args.sample_every, args.threads,
                                          args.seed, log)),
        ("generate", lambda: generate_phase(args.model_dir, args.generate_calls, args.generate_sample_every,
                                            args.threads, args.points_per_side, args.seed, log)),
    ):
        data = phase()
        data["trend"] = trend(data["calls_at_sample"], data["rss_mib"], args.warmup_fraction)
        result[name] = data
        t = data["trend"]
        log(f"{name}: {data['calls']} calls in {data['seconds']:.0f} s; RSS {t['rss_first_fitted_mib']:.1f} -> "
            f"{t['rss_last_mib']:.1f} MiB; slope {t['slope_mib_per_1000_calls']:+.3f} MiB/1000 calls "
            f"(predicted rise {t['predicted_rise_mib']:+.2f} MiB, noise {t['residual_std_mib']:.2f} MiB): "
            f"{'flat' if t['flat'] else 'NOT flat'}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1) + "\n")
        log(f"wrote {args.out}")
    return 0 if result["predict"]["trend"]["flat"] and result["generate"]["trend"]["flat"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
