"""``sam-export``: checkpoint -> encoder.onnx, decoder.onnx, decoder_batched.onnx, decoder_head.onnx +
decoder_masks.onnx (the batched decoder in two halves), manifest.json (+ variants)."""
from __future__ import annotations

import time
from pathlib import Path

import click

from ..build_sam import MODEL_TYPES
from .params import version_option


def _image_size(ctx, param, value):
    if value is None:
        return None
    from ..export.settings import check_image_size

    try:
        return check_image_size(value)
    except ValueError as err:
        raise click.BadParameter(str(err), ctx, param) from err


def _load_model(checkpoint: str | None, random_weights: bool, model_type: str | None, image_size: int | None):
    """(Sam in eval mode, ExportSettings): the checkpoint's stored settings unless overridden."""
    from ..export.settings import SettingsError, build_model

    if checkpoint is None and not random_weights:
        raise click.UsageError("give --checkpoint PATH (or --random-weights to export an untrained model on purpose)")
    if checkpoint is not None and random_weights:
        raise click.UsageError("--checkpoint and --random-weights exclude each other")
    if random_weights:
        click.secho("warning: --random-weights: exporting a model with RANDOM weights; its masks are meaningless.",
                    fg="yellow", err=True)
    elif not Path(checkpoint).is_file():
        raise click.ClickException(f"checkpoint file {checkpoint} not found")
    try:
        return build_model(checkpoint, model_type, image_size)
    except (FileNotFoundError, RuntimeError, SettingsError) as err:
        raise click.ClickException(str(err).strip().splitlines()[0]) from err
    except ValueError as err:
        message = str(err).strip().splitlines()[0]
        # e.g. a vit_b checkpoint loaded as vit_t: the loader names the mismatching keys/shapes.
        raise click.ClickException(f"cannot load {checkpoint} as {model_type or 'its model type'}: {message}") from err


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--checkpoint", type=click.Path(dir_okay=False, path_type=str), default=None,
              help="Official (mobile_sam.pt, sam_vit_*.pth) or fastsam-trained checkpoint. This or "
                   "--random-weights is required.")
@click.option("--random-weights", is_flag=True, help="Export an untrained model (instead of --checkpoint); for testing only.")
@click.option("--model-type", type=click.Choice(MODEL_TYPES), default=None,
              help="Architecture of the checkpoint (vit_t = MobileSAM TinyViT). Default: the one a fastsam-trained "
                   "checkpoint stores, else vit_t; contradicting the stored one is an error.")
@click.option("--image-size", type=int, default=None, callback=_image_size,
              help="Model input side in pixels (multiple of 16). Default: the img_size a fastsam-trained checkpoint "
                   "was trained at, else 1024.")
@click.option("--output-dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Directory for the .onnx files and manifest.json (created if missing).")
@click.option("--quantize", is_flag=True, help="Also write int8 variants (static QDQ encoder, dynamic decoders) with an accuracy report.")
@click.option("--calib-dir", type=click.Path(path_type=Path), default=None,
              help="Calibration images for --quantize (default: generated synthetic scenes).")
@click.option("--calib-count", type=click.IntRange(1, 512), default=8, show_default=True,
              help="How many calibration images to use.")
@click.option("--fp16", is_flag=True, help="Also write encoder.fp16.onnx (mixed precision; sensitive ops kept in float32); "
                                           "fastsam_rt precision='fp16' pairs it with the fp32 decoders.")
@click.option("--tensorrt", is_flag=True, help="Also build ONNX Runtime's TensorRT engine cache (tensorrt_cache/, fp16 "
                                               "engines with --fp16) for fastsam_rt provider='tensorrt'; needs "
                                               "onnxruntime-gpu, TensorRT and the serving GPU.")
@click.option("--opset", type=click.IntRange(13, 21), default=17, show_default=True, help="ONNX opset.")
@click.option("--no-simplify", is_flag=True, help="Skip onnxslim/onnxsim graph simplification.")
@click.option("--allow-mismatch", is_flag=True, help="Keep the files even if the parity gate finds outputs beyond tolerance.")
@version_option
def main(checkpoint, random_weights, model_type, image_size, output_dir, quantize, calib_dir, calib_count, fp16, tensorrt,
         opset, no_simplify, allow_mismatch):
    """Export a SAM checkpoint to ONNX for the fastsam C++ runtime (and any SAM ONNX tool).

    Writes encoder.onnx, decoder.onnx (the official SAM ONNX decoder interface), decoder_batched.onnx (many
    prompts per call), decoder_head.onnx + decoder_masks.onnx (the batched decoder in two halves, so the mask
    generator upscales only the prompts it keeps) and manifest.json, after checking every graph against PyTorch.

    Needs --checkpoint PATH or --random-weights. Model type, image size and mask threshold come from a
    fastsam-trained checkpoint's stored config; official checkpoints export at 1024 as --model-type.
    """
    from ..export import calibration
    from ..export.pipeline import ExportOptions, ParityError, check_output_dir, run_export
    from ..export.trt_cache import TensorRTBuildError, TensorRTUnavailable, require_provider

    try:
        check_output_dir(output_dir)
    except OSError as err:
        raise click.ClickException(str(err)) from err
    if calib_dir is not None:
        try:
            calibration.list_image_files(calib_dir)
        except (FileNotFoundError, ValueError) as err:
            raise click.ClickException(str(err)) from err
        if not quantize:
            click.secho("warning: --calib-dir is only used with --quantize", fg="yellow", err=True)
    if tensorrt:
        try:
            require_provider()
        except TensorRTUnavailable as err:
            raise click.ClickException(str(err)) from err

    start = time.perf_counter()
    click.echo(f"loading {checkpoint or 'random weights'} ...")
    sam, settings = _load_model(checkpoint, random_weights, model_type, image_size)
    click.echo(f"settings: {settings.describe()}")
    options = ExportOptions(
        output_dir=output_dir,
        model_type=settings.model_type,
        opset=opset,
        simplify=not no_simplify,
        allow_mismatch=allow_mismatch,
        quantize=quantize,
        calib_dir=calib_dir,
        calib_count=calib_count,
        fp16=fp16,
        tensorrt=tensorrt,
        extra_manifest={"checkpoint": Path(checkpoint).name if checkpoint else None,
                        "settings_source": settings.sources},
    )
    try:
        run_export(sam, options, log=click.echo)
    except ParityError as err:
        raise click.ClickException(str(err)) from err
    except (ValueError, FileNotFoundError, PermissionError, ImportError) as err:
        raise click.ClickException(str(err)) from err
    except (TensorRTUnavailable, TensorRTBuildError) as err:  # one line, with ONNX Runtime's own message
        raise click.ClickException(str(err)) from err
    click.echo(f"sam-export finished in {time.perf_counter() - start:.0f} s: {output_dir}")


if __name__ == "__main__":
    main()
