"""``sam-segment``: segment one image or a folder with point/box prompts or segment everything, on the PyTorch
reference (a checkpoint) or the C++ runtime (an exported model directory; PyTorch is then never imported)."""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click

from .params import BoxType, PointType, checkpoint_option, model_type_option, version_option

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def _load_backend(backend, model_dir, checkpoint, model_type, threads, demo):
    from ..backends import ModelLoadError, load_backend

    description = None
    if demo and model_dir is None and checkpoint is None:
        from ..demo_model import default_demo_checkpoint, demo_export_dir

        if backend == "runtime":
            model_dir = demo_export_dir()
            if not (model_dir / "manifest.json").is_file():
                raise click.ClickException(f"no demo export in {model_dir}: run `sam-train --demo` first, "
                                           "or use --backend torch (the base demo model)")
            description = f"the demo's exported model {model_dir}"
        else:
            path, description = default_demo_checkpoint()
            checkpoint = str(path)
    if checkpoint is None and model_dir is None and backend != "runtime":
        click.secho(
            "warning: no --checkpoint given: the model has RANDOM weights, so its masks are meaningless. "
            "Pass --checkpoint mobile_sam.pt (or a fastsam-trained checkpoint) for real results.",
            fg="yellow",
            err=True,
        )
    try:
        loaded = load_backend(backend, model_dir=model_dir, checkpoint=checkpoint, model_type=model_type,
                              threads=threads, description=description)
    except ModelLoadError as err:
        raise click.ClickException(str(err)) from err
    click.echo(f"model: {loaded.description} ({loaded.name} backend, {loaded.model_type} at {loaded.image_size} px)")
    return loaded


def _list_images(folder: Path) -> list[Path]:
    images = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise click.ClickException(f"no images ({', '.join(IMAGE_SUFFIXES)}) in folder {folder}")
    return images


def _prompts_for(name, width, height, points, box, prompt_map):
    """The prompts of one image: from --prompts FILE, else --points/--box, else the image centre."""
    from ..prompts_file import ImagePrompts

    if prompt_map is not None:
        if name not in prompt_map:
            raise ValueError(f"no entry for {name!r} in the prompts file")
        return prompt_map[name]
    if not points and box is None:
        points = ((width / 2.0, height / 2.0, 1),)
    return ImagePrompts(points=tuple(points), boxes=() if box is None else (tuple(box),))


def _segment(backend, predictor, rgb, name, args, progress=False):
    """(records, overlay, prompts) of one image; ValueError/RuntimeError for a prompt or image it cannot take."""
    from ..coco_results import mask_annotation
    from ..prompts_file import ImagePrompts
    from ..segment_image import draw, segment_everything, segment_prompts

    h, w = rgb.shape[:2]
    if args["everything"]:
        prompts = ImagePrompts()
        result = segment_everything(backend, rgb, args["everything_settings"], progress=progress)
    else:
        prompts = _prompts_for(name, w, h, args["points"], args["box"], args["prompt_map"])
        result = segment_prompts(predictor, rgb, prompts, multimask=args["multimask"])
    records = [mask_annotation(m, args["fmt"], tolerance=args["tolerance"], keep_holes=args["keep_holes"], **f)
               for m, f in zip(result.masks, result.fields)]
    return records, draw(rgb, result, prompts, name), prompts


def _write_json(path: Path, data) -> Path:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(path)
    return path


def _run_one(image, rgb, load, out_dir, args):
    """One image into overlay.png and masks.json; ``load()`` gives the backend (after the prompts are checked)."""
    from ..image_io import write_png
    from ..segment_image import check_prompts_inside

    h, w = rgb.shape[:2]
    if not args["everything"] and args["prompt_map"] is None:
        try:
            check_prompts_inside(_prompts_for(image.name, w, h, args["points"], args["box"], None), w, h)
        except ValueError as err:  # before the model loads: a wrong prompt should not cost a model load
            raise click.BadParameter(str(err), param_hint="--points" if "point" in str(err) else "--box") from err
    backend = load()
    start = time.perf_counter()
    try:
        records, overlay, prompts = _segment(backend, backend.new_predictor(), rgb, image.name, args, progress=True)
    except (ValueError, TypeError) as err:
        raise click.ClickException(str(err)) from err
    elapsed = time.perf_counter() - start
    overlay_path = write_png(out_dir / "overlay.png", overlay)
    json_path = _write_json(out_dir / "masks.json", {
        "image": str(image),
        "image_size": [h, w],
        "model_type": backend.model_type,
        "model": backend.description,
        "backend": backend.name,
        "format": args["fmt"],
        "mode": "everything" if args["everything"] else "prompt",
        "prompts": {"points": [list(p) for p in prompts.points], "boxes": [list(b) for b in prompts.boxes]},
        "annotations": records,
    })
    click.echo(f"{len(records)} mask(s) from {backend.model_type} on {w}x{h} image in {elapsed:.2f} s")
    for i, rec in enumerate(records[:10]):
        extra = f", stability {rec['stability_score']:.3f}" if "stability_score" in rec else ""
        click.echo(f"  mask {i}: area {rec['area']} px, bbox {rec['bbox']}, predicted IoU {rec['predicted_iou']:.3f}{extra}")
    if len(records) > 10:
        click.echo(f"  ... {len(records) - 10} more in {json_path}")
    click.echo(f"wrote {overlay_path} and {json_path}")


def _run_folder(folder, load, out_dir, args):
    """Every image of the folder into one COCO results file plus an overlay each; a bad image is reported and skipped."""
    from tqdm import tqdm

    from ..coco_results import ResultsFile
    from ..image_io import read_rgb, write_png

    images = _list_images(folder)
    backend = load()
    predictor = backend.new_predictor()
    results = ResultsFile({"folder": str(folder), "model": backend.description, "backend": backend.name,
                           "model_type": backend.model_type, "format": args["fmt"],
                           "mode": "everything" if args["everything"] else "prompt"})
    start = time.perf_counter()
    for path in tqdm(images, desc="segmenting", unit="image", file=sys.stderr):
        try:
            rgb = read_rgb(path)
            records, overlay, _ = _segment(backend, predictor, rgb, path.name, args)
        except (ValueError, TypeError, RuntimeError) as err:
            results.add_error(path.name, str(err))
            tqdm.write(f"skipped {path.name}: {str(err).splitlines()[0]}", file=sys.stderr)
            continue
        results.add_image(path.name, rgb.shape[0], rgb.shape[1], records)
        write_png(out_dir / "overlays" / f"{path.stem}.png", overlay)
    elapsed = time.perf_counter() - start
    json_path = _write_json(out_dir / "results.json", results.doc)
    done, failed = len(results.doc["images"]), len(results.doc["errors"])
    click.echo(f"{done} image(s), {len(results.doc['annotations'])} mask(s) in {elapsed:.1f} s"
               + (f"; {failed} skipped (listed under 'errors')" if failed else ""))
    click.echo(f"wrote {json_path} and {out_dir / 'overlays'}/")


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("image", type=click.Path(path_type=Path), required=False)
@checkpoint_option
@model_type_option
@click.option("--model-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Exported model directory (sam-export, sam-train --demo) for the runtime backend.")
@click.option("--backend", type=click.Choice(["torch", "runtime"]), default=None,
              help="torch: PyTorch on --checkpoint. runtime: the C++ runtime (fastsam_rt) on --model-dir, without "
                   "importing PyTorch. Default: runtime when --model-dir is given, else torch.")
@click.option("--threads", type=click.IntRange(0), default=0, show_default=True,
              help="Runtime backend: ONNX Runtime threads per operator (0 = its default).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("runs/segment"),
              show_default=True, help="Output folder (created if missing): overlay.png and masks.json for an image, "
                                      "results.json and overlays/ for a folder.")
@click.option("--points", "points", type=PointType(), multiple=True,
              help="Prompt point 'x,y' (foreground) or 'x,y,0' (background), in image pixels "
                   "(0 <= x <= width, 0 <= y <= height). Repeatable.")
@click.option("--box", type=BoxType(), default=None, help="Box prompt 'x0,y0,x1,y1' in image pixels, inside the image.")
@click.option("--prompts", "prompts_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="JSON file of prompts per image file name: "
                   "{\"a.png\": {\"boxes\": [[x0,y0,x1,y1], ...], \"points\": [[x,y,label], ...]}}; each box gives one mask.")
@click.option("--everything", is_flag=True, help="Segment everything with the automatic mask generator.")
@click.option("--single-mask", is_flag=True, help="Prompt mode: return one mask instead of three candidates.")
@click.option("--format", "fmt", type=click.Choice(["rle", "polygons"]), default="rle", show_default=True,
              help="Mask encoding in the JSON: COCO compressed RLE (exact) or COCO polygons (simplified).")
@click.option("--tolerance", type=click.FloatRange(0.0), default=1.0, show_default=True,
              help="--format polygons: simplification tolerance in pixels (0 keeps every traced vertex).")
@click.option("--holes/--no-holes", "keep_holes", default=True, show_default=True,
              help="--format polygons: keep holes (joined to the outline by a zero-width cut) or fill them.")
@click.option("--points-per-side", type=click.IntRange(1, 128), default=32, show_default=True,
              help="--everything: grid density.")
@click.option("--pred-iou-thresh", type=click.FloatRange(0.0, 1.0), default=0.88, show_default=True,
              help="--everything: keep masks whose predicted IoU is above this.")
@click.option("--stability-score-thresh", type=click.FloatRange(0.0, 1.0), default=0.95, show_default=True,
              help="--everything: keep masks whose stability score is above this.")
@click.option("--demo", is_flag=True, help="Segment a generated demo image (no IMAGE needed); without a model it "
              "uses the demo's: torch backend: the finetuned checkpoint of `sam-train --demo` (runs/demo) if that has "
              "run, else fastsam's base demo model; runtime backend: the demo run's export.")
@version_option
def main(image, checkpoint, model_type, model_dir, backend, threads, out_dir, points, box, prompts_file, everything,
         single_mask, fmt, tolerance, keep_holes, points_per_side, pred_iou_thresh, stability_score_thresh, demo):
    """Segment IMAGE (a file, or a folder of images) with a SAM model.

    An image gives overlay.png and masks.json; a folder gives one COCO results.json (images, annotations
    with scores, and the images it skipped with the reason) and overlays/NAME.png, with a progress bar.
    Prompt with --points and/or --box (every image), --prompts FILE (per image), or --everything. With
    no prompt, the image centre is a foreground point. Coordinates are in original image pixels.

    \b
    Examples:
      sam-segment photo.jpg --checkpoint mobile_sam.pt --points 420,300
      sam-segment photo.jpg --checkpoint mobile_sam.pt --box 100,80,520,400 --format polygons
      sam-segment photos/ --model-dir runs/demo/finetune/export --prompts boxes.json
      sam-segment photos/ --model-dir models/exported/vit_t --everything
      sam-segment --demo --everything
    """
    from ..image_io import read_rgb, write_png
    from ..segment_image import EverythingSettings

    if everything and (points or box is not None or prompts_file is not None):
        raise click.UsageError("--everything cannot be combined with --points, --box or --prompts")
    if prompts_file is not None and (points or box is not None):
        raise click.UsageError("--prompts cannot be combined with --points or --box")
    if demo and image is not None:
        raise click.UsageError("give either IMAGE or --demo, not both")
    if image is None and not demo:
        raise click.UsageError("missing IMAGE (or pass --demo to segment a generated image)")
    if backend == "runtime" and checkpoint is not None:
        raise click.UsageError("--backend runtime runs an exported --model-dir, not a --checkpoint")
    if backend == "torch" and model_dir is not None:
        raise click.UsageError("--backend torch runs a --checkpoint, not an exported --model-dir")
    prompt_map = None
    if prompts_file is not None:
        from ..prompts_file import PromptsFileError, read_prompts_file

        try:
            prompt_map = read_prompts_file(prompts_file)
        except PromptsFileError as err:
            raise click.ClickException(str(err)) from err
    args = {"everything": everything, "points": points, "box": box, "prompt_map": prompt_map,
            "multimask": not single_mask, "fmt": fmt, "tolerance": tolerance, "keep_holes": keep_holes,
            "everything_settings": EverythingSettings(points_per_side, pred_iou_thresh, stability_score_thresh)}
    load = lambda: _load_backend(backend, model_dir, checkpoint, model_type, threads, demo)  # noqa: E731

    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise click.ClickException(f"cannot create the output directory {out_dir} ({err.strerror or err}); "
                                   "pass a writable --out") from err
    if image is not None and image.is_dir():
        _run_folder(image, load, out_dir, args)
        return
    if demo:
        from ..demo_image import make_demo_image

        rgb = make_demo_image()
        image = write_png(out_dir / "demo_input.png", rgb)
        click.echo(f"generated demo image {image}")
    else:
        try:
            rgb = read_rgb(image)
        except (FileNotFoundError, ValueError) as err:
            raise click.ClickException(str(err)) from err
    _run_one(image, rgb, load, out_dir, args)
