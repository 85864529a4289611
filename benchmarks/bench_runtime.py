"""PyTorch reference vs fastsam_rt (fp32, and int8 when the export has it) on one machine, one command.

Measures per backend, each in its own process (so peak memory is per backend): encoder latency (median of N;
GFLOP/s with the vit_t encoder's 77.5 GFLOP per 1024^2 image), single-prompt decoder latency (predict with one
point, multimask, masks upscaled to the original size), batched prompts/s (64 box prompts in one call, masks upscaled), automatic
mask generation per image (32x32 grid) and peak RSS. Writes JSON, a Markdown table and a PNG chart.

The generator runs twice: with its defaults, and with pred_iou_thresh=0 (no IoU filter: every mask goes on to
upscaling and the stability filter). fastsam_rt upscales only the prompts with a mask that passes the IoU filter,
so the first run is its best case when few masks pass (the random fixture weights: none does) and the second its
worst case; a trained model lies between.

    python benchmarks/bench_runtime.py --model-dir models/exported/vit_t --threads 2
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ENCODER_GFLOP = 77.5
REPO = Path(__file__).resolve().parents[1]
DEFAULT_CHECKPOINT = REPO.parent / "shared" / "fixtures" / "official_vit_t" / "vit_t_fixture.pth"
DEFAULT_IMAGE = REPO.parent / "shared" / "fixtures" / "official_vit_t" / "groceries.jpg"


def _median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up: first-run allocations and lazy initialisation are not steady state
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _once_seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _grid_boxes(image, n: int = 8):
    import numpy as np

    h, w = image.shape[:2]
    ys, xs = np.meshgrid((np.arange(n) + 0.5) / n * h, (np.arange(n) + 0.5) / n * w, indexing="ij")
    centres = np.stack([xs.ravel(), ys.ravel()], axis=1)
    half = np.array([w, h]) / (2 * n)
    return np.concatenate([centres - half, centres + half], axis=1).astype(np.float32)


def _generator_runs(make, image) -> dict:
    """Seconds and mask counts of one generate() with the defaults and one without the IoU filter."""
    result = {}
    for key, overrides in (("amg", {}), ("amg_no_iou_filter", {"pred_iou_thresh": 0.0})):
        generator = make(**overrides)
        masks = []
        result[f"{key}_s"] = _once_seconds(lambda: masks.extend(generator.generate(image)))
        result[f"{key}_masks"] = len(masks)
    return result


def _worker(backend: str, args) -> dict:
    import numpy as np
    from PIL import Image

    image = np.asarray(Image.open(args.image).convert("RGB"))
    point = np.array([[image.shape[1] * 0.4, image.shape[0] * 0.3]], dtype=np.float32)
    label = np.array([1])
    boxes = _grid_boxes(image)
    result = {"backend": backend}
    if backend == "pytorch":
        import torch

        from fastsam import SamAutomaticMaskGenerator, SamPredictor, build_sam

        torch.set_num_threads(args.threads)
        model = build_sam("vit_t", checkpoint=args.checkpoint).eval()
        predictor = SamPredictor(model)
        with torch.inference_mode():
            result["encoder_s"] = _median_seconds(lambda: predictor.set_image(image), args.repeats)
            result["decoder_s"] = _median_seconds(lambda: predictor.predict(point, label), args.repeats * 4)
            tboxes = predictor.transform.apply_boxes_torch(torch.as_tensor(boxes), image.shape[:2])
            batched = _median_seconds(lambda: predictor.predict_torch(None, None, tboxes, return_logits=True), args.repeats)
            if args.amg:
                result.update(_generator_runs(lambda **kw: SamAutomaticMaskGenerator(model, **kw), image))
    else:
        import fastsam_rt

        precision = "int8" if backend.endswith("int8") else "fp32"
        options = dict(intra_op_threads=args.threads, precision=precision)
        predictor = fastsam_rt.Predictor(str(args.model_dir), **options)
        result["encoder_s"] = _median_seconds(lambda: predictor.set_image(image), args.repeats)
        result["decoder_s"] = _median_seconds(lambda: predictor.predict(point, label), args.repeats * 4)
        batched = _median_seconds(lambda: predictor.predict_boxes(boxes, return_logits=True), args.repeats)
        if args.amg:
            result.update(_generator_runs(lambda **kw: fastsam_rt.AutomaticMaskGenerator(str(args.model_dir), **options, **kw),
                                          image))
    result["batched_prompts_per_s"] = len(boxes) / batched
    result["encoder_gflops"] = ENCODER_GFLOP / result["encoder_s"]
    result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def _markdown(results: list[dict], args) -> str:
    lines = [
        f"Image {Path(args.image).name}, {args.threads} threads, median of {args.repeats} "
        f"(decoder: {args.repeats * 4}); command: `python benchmarks/bench_runtime.py "
        f"--model-dir {args.model_dir} --threads {args.threads}`",
        "",
        "| backend | encoder (s) | encoder GFLOP/s | decoder, 1 prompt (ms) | batched prompts/s | AMG 32x32 (s) "
        "| AMG 32x32, no IoU filter (s) | peak RSS (MiB) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    reference = results[0]
    for r in results:
        amg = {}
        for key in ("amg", "amg_no_iou_filter"):
            seconds = r.get(f"{key}_s")
            ratio = f" ({reference[f'{key}_s'] / seconds:.1f}x)" if seconds and r is not reference else ""
            amg[key] = f"{seconds:.2f}{ratio}, {r[f'{key}_masks']} masks" if seconds is not None else "-"
        lines.append(
            f"| {r['backend']} | {r['encoder_s']:.3f} | {r['encoder_gflops']:.1f} | {r['decoder_s'] * 1000:.1f} | "
            f"{r['batched_prompts_per_s']:.1f} | {amg['amg']} | {amg['amg_no_iou_filter']} | {r['peak_rss_mib']:.0f} |"
        )
    return "\n".join(lines) + "\n"


def _chart(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [("encoder_gflops", "encoder GFLOP/s"), ("batched_prompts_per_s", "batched prompts/s")]
    fig, axes = plt.subplots(1, len(metrics), figsize=(10, 3.5))
    for ax, (key, title) in zip(axes, metrics):
        ax.bar([r["backend"] for r in results], [r[key] for r in results], color=["#888", "#2a7", "#27a"][: len(results)])
        ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path, required=True, help="sam-export output directory")
    parser.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT, help="checkpoint for the PyTorch reference")
    parser.add_argument("--image", type=Path, default=DEFAULT_IMAGE)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-amg", dest="amg", action="store_false", help="skip the (slow) 32x32 generator runs")
    parser.add_argument("--output-dir", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(_worker(args.worker, args)))
        return 0
    if not (args.model_dir / "manifest.json").is_file():
        parser.error(f"--model-dir {args.model_dir}: no manifest.json (run sam-export first)")
    manifest = json.loads((args.model_dir / "manifest.json").read_text())
    backends = ["pytorch", "fastsam_rt_fp32"] + (["fastsam_rt_int8"] if "encoder_int8" in manifest["models"] else [])
    results = []
    for backend in backends:
        cmd = [sys.executable, __file__, "--worker", backend] + [a for a in (argv or sys.argv[1:])]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=os.environ.copy())
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(json.dumps(results[-1]))
    args.output_dir.mkdir(parents=True, exist_ok=True)
    (args.output_dir / "bench_runtime.json").write_text(json.dumps(results, indent=2))
    table = _markdown(results, args)
    (args.output_dir / "bench_runtime.md").write_text(table)
    _chart(results, args.output_dir / "bench_runtime.png")
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
