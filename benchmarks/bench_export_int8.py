"""int8 vs fp32 exports: box-prompt mask mIoU on held-out COCO images and the speed ratio.

Exports the model (fp32, no parity gate, no simplification needed for the figures), quantises it
with calibration images from coco128seg ``coco/train`` (accuracy-driven: the most sensitive node
groups stay float until the mIoU on calibration images reaches ``--target``) and evaluates on ``coco/val`` with the
ground-truth object boxes as prompts. The fp32 masks are the reference (this measures what
quantisation changes, not segmentation quality). Prints the figures and writes JSON.

    python benchmarks/bench_export_int8.py --checkpoint mobile_sam.pt --out bench_int8.json
    python benchmarks/bench_export_int8.py --random-weights --seed 0     # no checkpoint at hand
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "coco128seg"


def _coco_boxes(annotation_file: Path) -> dict[str, list[list[float]]]:
    data = json.loads(annotation_file.read_text())
    names = {image["id"]: image["file_name"] for image in data["images"]}
    boxes: dict[str, list[list[float]]] = {}
    for ann in data["annotations"]:
        x, y, w, h = ann["bbox"]
        boxes.setdefault(names[ann["image_id"]], []).append([x, y, x + w, y + h])
    return boxes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", help="checkpoint to export (e.g. mobile_sam.pt)")
    source.add_argument("--random-weights", action="store_true", help="default-initialised model (seeded)")
    parser.add_argument("--model-type", default="vit_t")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="coco128seg folder")
    parser.add_argument("--calib-images", type=int, default=16)
    parser.add_argument("--heldout-images", type=int, default=10)
    parser.add_argument("--max-boxes", type=int, default=8, help="per held-out image")
    parser.add_argument("--target", type=float, default=0.97, help="calibration mIoU the float-kept groups must reach")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--timing-repeats", type=int, default=5)
    parser.add_argument("--work-dir", type=Path, default=None, help="keep the exported files here")
    parser.add_argument("--out", type=Path, default=Path("bench_export_int8.json"))
    args = parser.parse_args(argv)

    import torch

    sys.path.insert(0, str(REPO / "python"))
    from fastsam import build_sam
    from fastsam.export import calibration, int8_search, onnx_export, quantize

    coco = args.data / "coco"
    if not (coco / "val" / "_annotations.coco.json").is_file():
        parser.error(f"coco128seg not found at {args.data} (expected coco/val/_annotations.coco.json)")
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    sam = build_sam(args.model_type, checkpoint=args.checkpoint).eval()
    size = int(sam.image_encoder.img_size)

    work = args.work_dir or Path(tempfile.mkdtemp(prefix="bench_int8_"))
    work.mkdir(parents=True, exist_ok=True)
    fp32 = {key: work / f"{key}.onnx" for key in ("encoder", "decoder")}
    int8 = {key: work / f"{key}.int8.onnx" for key in ("encoder", "decoder")}
    start = time.perf_counter()
    for key, path in fp32.items():
        onnx_export.EXPORTERS[key](sam, path)
    export_s = time.perf_counter() - start

    calib_files = calibration.list_image_files(coco / "train")[: args.calib_images]
    start = time.perf_counter()
    search = int8_search.quantize_accuracy_driven(
        fp32, int8, [lambda f=f: calibration.encoder_input(calibration.read_image(f), size) for f in calib_files],
        target=args.target)
    quantize_s = time.perf_counter() - start

    boxes = _coco_boxes(coco / "val" / "_annotations.coco.json")
    held = []
    for name in sorted(boxes)[: args.heldout_images]:
        image = calibration.read_image(coco / "val" / name)
        x = calibration.encoder_input(image, size)
        scale = x.shape[2] / image.shape[0]
        held.append(quantize.HeldOutImage(name, x, np.array(boxes[name][: args.max_boxes], np.float32) * scale))
    report = quantize.accuracy_report(fp32, int8, held, threads=args.threads, timing_repeats=args.timing_repeats)

    import onnxruntime

    result = {
        "model": args.model_type,
        "weights": args.checkpoint or f"random (default init, seed {args.seed})",
        "calibration_images": len(calib_files),
        "export_s": round(export_s, 1),
        "quantize_s": round(quantize_s, 1),
        **report,
        "search": search,
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(), "onnxruntime": onnxruntime.__version__},
        "command": "python benchmarks/bench_export_int8.py " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    miou, speed, timing = report["miou"], report["speedup"], report["timing"]
    print(f"int8 vs fp32, {report['num_boxes']} box prompts on {report['num_images']} held-out COCO images "
          f"({result['weights']}, {args.threads} threads):")
    print(f"  mIoU end-to-end {miou['end_to_end']:.4f} | encoder int8 only {miou['encoder_int8_only']:.4f} | "
          f"decoder int8 only {miou['decoder_int8_only']:.4f}")
    print(f"  encoder {timing['encoder_fp32_s'] * 1e3:.0f} ms -> {timing['encoder_int8_s'] * 1e3:.0f} ms (x{speed['encoder']:.2f}); "
          f"decoder {timing['decoder_fp32_s'] * 1e3:.1f} ms -> {timing['decoder_int8_s'] * 1e3:.1f} ms (x{speed['decoder']:.2f})")
    print(f"  kept in float: {', '.join(search['excluded_groups']) or 'nothing'}")
    print(f"  wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
