"""The whole ``sam-export`` run: export, simplify, parity gate, variants, manifest."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from . import calibration, io_spec, manifest, parity, simplify
from .onnx_export import DEFAULT_OPSET, EXPORTERS
from .output_dir import check_output_dir, publish, staging_dir
from .variants import variant_table

__all__ = ["ExportOptions", "ParityError", "check_output_dir", "run_export"]

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
    timing_repeats: int = 3
    fp16: bool = False
    tensorrt: bool = False
    extra_manifest: dict = field(default_factory=dict)


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
        worst = max(failed, key=lambda c: c.badness)
        raise ParityError(
            f"parity gate failed: {len(failed)} of {len(checks)} outputs beyond tolerance, worst {worst.failure()}; "
            "nothing was written to the output directory (rerun with --allow-mismatch to keep the files anyway)"
        )
    if failed:
        log(f"warning: {len(failed)} parity mismatches accepted because of --allow-mismatch")


INT8_MIOU_TARGET = 0.97


def calibration_sets(options: ExportOptions, image_size: int) -> tuple[list, list]:
    """(calibration inputs as a lazy list of thunks, held-out ``quantize.HeldOutImage`` list).

    With ``calib_dir`` the last ``heldout_count`` images (at most a fifth of them, at least one)
    are held out and the first ``calib_count`` of the others calibrate; a folder with a single
    image uses it for both. Without it both sets are generated scenes with disjoint seeds.
    """
    from .quantize import HeldOutImage, random_boxes

    if options.calib_dir is not None:
        files = calibration.list_image_files(options.calib_dir)
        held_count = min(options.heldout_count, max(1, len(files) // 5)) if len(files) > 1 else 0
        held_files = files[len(files) - held_count:] if held_count else files[:1]
        calib_files = files[: len(files) - held_count][: options.calib_count]
        calib = [lambda f=f: calibration.encoder_input(calibration.read_image(f), image_size) for f in calib_files]
        held_images = [(f.name, calibration.read_image(f)) for f in held_files]
    else:
        calib = [lambda i=i: calibration.encoder_input(calibration.generate_image(i, image_size), image_size)
                 for i in range(options.calib_count)]
        held_images = [(f"generated_{i}", calibration.generate_image(50_000 + i, image_size))
                       for i in range(options.heldout_count)]
    held = []
    for index, (name, image) in enumerate(held_images):
        x = calibration.encoder_input(image, image_size)
        held.append(HeldOutImage(name, x, random_boxes(index, x.shape[2], x.shape[3], 8)))
    return calib, held


def write_int8_variants(sam, options: ExportOptions, paths: dict[str, Path], log: Log) -> tuple[dict, dict]:
    """Write encoder/decoder/decoder_batched .int8.onnx and measure them; returns (paths, report)."""
    from . import int8_search, quantize

    image_size = int(sam.image_encoder.img_size)
    calib, held = calibration_sets(options, image_size)
    out = {key: paths[key].with_name(io_spec.variant_file(key, "int8")) for key in io_spec.BASE_MODELS}
    search = _timed(log, f"quantize: static int8 QDQ encoder ({len(calib)} calibration images, "
                         f"{options.calib_dir or 'generated'}), dynamic int8 decoders, accuracy-driven float groups",
                    int8_search.quantize_accuracy_driven, paths, out, calib, INT8_MIOU_TARGET, log)
    log(f"int8 accuracy: box-prompt mask IoU vs fp32 on {len(held)} held-out images ...")
    report = quantize.accuracy_report(paths, out, held, timing_repeats=options.timing_repeats, progress=log)
    report.update(target_miou=INT8_MIOU_TARGET, calibration_images=len(calib),
                  calibration_source=str(options.calib_dir) if options.calib_dir else "generated",
                  heldout_images=[image.name for image in held], search=search)
    miou, speed = report["miou"], report["speedup"]
    log(f"  int8 mIoU vs fp32: end-to-end {miou['end_to_end']:.4f}, encoder-only {miou['encoder_int8_only']:.4f}, "
        f"decoder-only {miou['decoder_int8_only']:.4f} (target >= {INT8_MIOU_TARGET})")
    log(f"  speed-up int8 vs fp32 on this machine: encoder x{speed['encoder']:.2f}, decoder x{speed['decoder']:.2f}")
    if miou["end_to_end"] < INT8_MIOU_TARGET:
        log(f"warning: int8 end-to-end mIoU {miou['end_to_end']:.4f} is below the target {INT8_MIOU_TARGET}; "
            "prefer the fp32 files for accuracy")
    return out, report


def write_fp16_encoder(sam, options: ExportOptions, paths: dict[str, Path], images: dict, references: dict,
                       log: Log) -> tuple[Path, list[parity.ParityCheck]]:
    """encoder.fp16.onnx, checked against the torch encoder with the fp16 tolerance."""
    from .fp16 import convert_to_fp16

    path = paths[io_spec.ENCODER].with_name(io_spec.variant_file(io_spec.ENCODER, "fp16"))
    _timed(log, f"convert encoder to mixed fp16 -> {path}", convert_to_fp16, paths[io_spec.ENCODER], path)
    log("parity gate (fp16 encoder) ...")
    checks = parity.check_encoder(sam, path, images, precision="fp16", references=references)
    return path, checks


def run_export(sam, options: ExportOptions, log: Log = print) -> dict:
    """Write the graphs, check them and write ``manifest.json``; returns the manifest.

    Everything is written into a staging directory beside ``options.output_dir`` and moved there only
    when the export succeeded: a failed export leaves the output directory as it was.

    Arguments:
      sam: a ``Sam`` model in eval mode (it is left in eval mode); its ``mask_threshold`` and encoder
        image size go into the manifest.
      options: ExportOptions.
      log: receives one progress line at a time.
    Raises:
      ParityError: a graph is beyond tolerance and ``allow_mismatch`` is False.
    """
    output_dir = check_output_dir(options.output_dir)
    with staging_dir(output_dir) as staging:
        log(f"writing into {staging} (moved to {output_dir} when every step passed)")
        result = _write_export(sam, options, staging, log)
        publish(staging, output_dir)
    log(f"wrote {output_dir / manifest.MANIFEST_NAME}")
    return result


def _write_export(sam, options: ExportOptions, output_dir: Path, log: Log) -> dict:
    sam.eval()
    image_size = int(sam.image_encoder.img_size)
    specs = io_spec.model_specs(image_size)
    timings: dict[str, float] = {}

    paths = {}
    for key in io_spec.EXPORTED_MODELS:
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
    checks += parity.check_split_decoder(sam, paths[io_spec.DECODER_HEAD], paths[io_spec.DECODER_MASKS], embeddings)
    _gate(checks, options, log)

    models = {key: manifest.model_entry(output_dir, specs[key], paths[key].name, "fp32") for key in paths}
    if options.fp16:
        fp16_path, fp16_checks = write_fp16_encoder(sam, options, paths, images, references, log)
        for check in fp16_checks:
            check.model = io_spec.variant_key(io_spec.ENCODER, "fp16")
        _gate(fp16_checks, options, log)
        checks += fp16_checks
        models[io_spec.variant_key(io_spec.ENCODER, "fp16")] = manifest.model_entry(
            output_dir, specs[io_spec.ENCODER], fp16_path.name, "fp16")
    quantization = {}
    if options.quantize:
        int8_paths, quantization = write_int8_variants(sam, options, paths, log)
        for key, path in int8_paths.items():
            models[io_spec.variant_key(key, "int8")] = manifest.model_entry(output_dir, specs[key], path.name, "int8")
    tensorrt = {}
    if options.tensorrt:
        from .trt_cache import build_cache

        tensorrt = build_cache(output_dir, models, image_size, options.fp16, log)
    result = manifest.build_manifest(
        model_type=options.model_type,
        image_size=image_size,
        mask_threshold=float(getattr(sam, "mask_threshold", 0.0)),
        pixel_mean=sam.pixel_mean.flatten().tolist(),
        pixel_std=sam.pixel_std.flatten().tolist(),
        opset=options.opset,
        models=models,
        parity=parity.summarize(checks),
        quantization=quantization,
        extra={"variants": variant_table(models), "simplification": simplified, "timings": timings,
               "tensorrt": tensorrt, **options.extra_manifest},
    )
    manifest.write_manifest(output_dir, result)
    sam.eval()
    return result
