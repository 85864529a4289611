"""Export a model built at another image size and run it in fastsam_rt: parity, output shapes, times.

    python benchmarks/bench_export_image_size.py --model-type vit_b --image-size 512 --out /tmp/vit_b_512

Random weights (seeded): the point is that the ViT graphs trace and pass the parity gate at that size and that
the runtime takes the manifest's size, not mask quality. Simplification is off (it adds minutes for vit_b).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-type", default="vit_b", choices=("vit_t", "vit_b", "vit_l", "vit_h"))
    parser.add_argument("--image-size", type=int, default=512)
    parser.add_argument("--out", type=Path, required=True, help="export directory (must not exist)")
    args = parser.parse_args()

    import torch

    import fastsam_rt
    from fastsam.export import manifest
    from fastsam.export.pipeline import ExportOptions, run_export
    from fastsam.export.settings import build_model

    torch.manual_seed(0)
    sam, _ = build_model(None, model_type=args.model_type, image_size=args.image_size)
    start = time.perf_counter()
    run_export(sam, ExportOptions(output_dir=args.out, model_type=args.model_type, simplify=False, timing_repeats=1),
               log=lambda line: None)
    export_s = time.perf_counter() - start
    written = manifest.read_manifest(args.out)
    parity_ok = {name: entry["ok"] for name, entry in written["parity"].items()}

    predictor = fastsam_rt.Predictor(str(args.out))
    start = time.perf_counter()
    predictor.set_image(np.zeros((300, 400, 3), dtype=np.uint8))
    encode_s = time.perf_counter() - start
    masks, scores, low_res = predictor.predict(point_coords=np.array([[200.0, 150.0]]), point_labels=np.array([1]))
    print(f"{args.model_type} at {args.image_size}: export {export_s:.0f} s; manifest image_size "
          f"{written['image_size']}; parity {parity_ok}")
    print(f"fastsam_rt image_size {predictor.image_size}: masks {masks.shape}, scores {scores.shape}, "
          f"low-res {low_res.shape}; set_image {encode_s:.1f} s")


if __name__ == "__main__":
    main()
