"""The whole ``sam-export`` run: export, simplify, parity gate, variants, manifest."""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from . import calibration, io_spec, manifest, parity, simplify
from .onnx_export import DEFAULT_OPSET, EXPORTERS

Log = Callable[[str], None]


class ParityError(RuntimeError):
    """An exported graph disagrees with the PyTorch model beyond tolerance."""


@dataclass
class ExportOptions:
    """What ``sam-export`` was asked to do (see ``fastsam.cli.export``)."""

    output_dir: Path
    model_type: str = "vit_t"
    opset: int = DEFAULT_OPSET
    simplify: bool = True
    allow_mismatch: bool = False
    quantize: bool = False
    calib_dir: Path | None = None
    calib_count: int = 8
    heldout_count: int = 4
    fp16: bool = False
    tensorrt: bool = False
    extra_manifest: dict = field(default_factory=dict)


def check_output_dir(output_dir: Path) -> Path:
    """Create ``output_dir`` if needed and make sure files can be written there.

    Raises:
      PermissionError / NotADirectoryError: with a message naming the directory.
    """
    output_dir = Path(output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise NotADirectoryError(f"output directory {output_dir} exists and is not a directory")
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        probe = output_dir / f".sam-export-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise PermissionError(f"output directory {output_dir} is not writable ({err.strerror or err})") from err
    return output_dir


def parity_inputs(image_size: int) -> dict[str, np.ndarray]:
    """Encoder inputs for the parity gate: uniform noise (portrait) and a generated scene (landscape)."""
    rng = np.random.default_rng(0)
    noise = rng.uniform(0, 255, size=(1, 3, image_size, image_size * 3 // 4)).astype(np.float32)
    scene = calibration.encoder_input(calibration.generate_image(seed=10_000, long_side=image_size), image_size)
    return {"noise": noise, "generated_scene": scene}


def _timed(log: Log, message: str, func, *args, **kwargs):
    log(f"{message} ...")
    start = time.perf_counter()
    result = func(*args, **kwargs)
    log(f"  done in {time.perf_counter() - start:.1f} s")
    return result


def _gate(checks: list[parity.ParityCheck], options: ExportOptions, log: Log) -> None:
    for check in checks:
        log("  " + check.line())
    failed = parity.failures(checks)
    if failed and not options.allow_mismatch:
        worst = max(failed, key=lambda c: c.max_abs)
        raise ParityError(
            f"parity gate failed: {len(failed)} of {len(checks)} outputs beyond tolerance, worst "
            f"{worst.model}/{worst.output} ({worst.case}) max|diff| {worst.max_abs:.3e} > {worst.tolerance:.0e}; "
            "no manifest.json was written (rerun with --allow-mismatch to keep the files anyway)"
        )
    if failed:
        log(f"warning: {len(failed)} parity mismatches accepted because of --allow-mismatch")


def run_export(sam, options: ExportOptions, log: Log = print) -> dict:
    """Write the graphs, check them and write ``manifest.json``; returns the manifest.

    Arguments:
      sam: a ``Sam`` model in eval mode (it is left in eval mode).
      options: ExportOptions.
      log: receives one progress line at a time.
    Raises:
      ParityError: a graph is beyond tolerance and ``allow_mismatch`` is False.
    """
    sam.eval()
    output_dir = check_output_dir(options.output_dir)
    image_size = int(sam.image_encoder.img_size)
    specs = io_spec.model_specs(image_size)
    timings: dict[str, float] = {}

    paths = {}
    for key in io_spec.BASE_MODELS:
        path = output_dir / io_spec.variant_file(key, "fp32")
        start = time.perf_counter()
        _timed(log, f"export {key} -> {path}", EXPORTERS[key], sam, path, options.opset)
        timings[f"export_{key}_s"] = round(time.perf_counter() - start, 2)
        paths[key] = path

    simplified = {}
    if options.simplify:
        for key, path in paths.items():
            result = _timed(log, f"simplify {path.name}", simplify.simplify_onnx_file, path)
            if result.tool is None:
                log(f"warning: {path.name}: {result.message}")
            else:
                log(f"  {result.message}")
            simplified[key] = result.message
    else:
        log("simplify: skipped (--no-simplify)")

    log("parity gate: ONNX Runtime vs PyTorch ...")
    images = parity_inputs(image_size)
    references = {case: parity.torch_embedding(sam, image) for case, image in images.items()}
    checks = parity.check_encoder(sam, paths[io_spec.ENCODER], images, references=references)
    embeddings = {"scene_embedding": references["generated_scene"],
                  "random_embedding": np.random.default_rng(1).normal(size=references["noise"].shape).astype(np.float32)}
    orig_size = (images["generated_scene"].shape[2] * 3 // 2, images["generated_scene"].shape[3] * 3 // 2)
    checks += parity.check_decoder(sam, paths[io_spec.DECODER], embeddings, orig_size)
    checks += parity.check_decoder_batched(sam, paths[io_spec.DECODER_BATCHED], embeddings)
    _gate(checks, options, log)

    models = {key: manifest.model_entry(output_dir, specs[key], paths[key].name, "fp32") for key in paths}
    result = manifest.build_manifest(
        model_type=options.model_type,
        image_size=image_size,
        mask_threshold=float(getattr(sam, "mask_threshold", 0.0)),
        pixel_mean=sam.pixel_mean.flatten().tolist(),
        pixel_std=sam.pixel_std.flatten().tolist(),
        opset=options.opset,
        models=models,
        parity=parity.summarize(checks),
        extra={"simplification": simplified, "timings": timings, **options.extra_manifest},
    )
    path = manifest.write_manifest(output_dir, result)
    log(f"wrote {path}")
    sam.eval()
    return result
