"""``sam-segment``: segment one image with point/box prompts or segment everything."""
from __future__ import annotations

import json
import time
from pathlib import Path

import click
import numpy as np

from .params import BoxType, PointType, checkpoint_option, model_type_option, version_option


def _load_model(model_type: str | None, checkpoint: str | None):
    """(Sam in eval mode, its model type), built at the checkpoint's stored image size and type unless --model-type says otherwise."""
    from ..export.settings import SettingsError, build_model

    if checkpoint is None:
        click.secho(
            "warning: no --checkpoint given: the model has RANDOM weights, so its masks are meaningless. "
            "Pass --checkpoint mobile_sam.pt (or a fastsam-trained checkpoint) for real results.",
            fg="yellow",
            err=True,
        )
    try:
        model, settings = build_model(checkpoint, model_type)
    except (FileNotFoundError, RuntimeError, SettingsError) as err:
        raise click.ClickException(str(err).strip().splitlines()[0]) from err
    except ValueError as err:
        raise click.ClickException(str(err)) from err
    return model, settings.model_type


def _mask_record(mask: np.ndarray, **fields) -> dict:
    from ..utils.amg import area_from_rle, coco_encode_rle, mask_to_rle_pytorch
    import torch

    rle = mask_to_rle_pytorch(torch.from_numpy(mask[None]))[0]
    ys, xs = np.nonzero(mask)
    bbox = [0, 0, 0, 0] if xs.size == 0 else [int(xs.min()), int(ys.min()), int(xs.max() - xs.min()), int(ys.max() - ys.min())]
    return {"segmentation": coco_encode_rle(rle), "area": int(area_from_rle(rle)), "bbox": bbox, **fields}


def _check_prompts_inside(points, box, width: int, height: int) -> None:
    """Fail before the model loads when a prompt lies outside the image (SAM would answer it with a meaningless mask)."""
    valid = f"outside the {width}x{height} image: x must be in [0, {width}] and y in [0, {height}] (pixels)"
    for x, y, _ in points:
        if not (0 <= x <= width and 0 <= y <= height):
            raise click.BadParameter(f"point {x:g},{y:g} is {valid}", param_hint="--points")
    if box is not None and (box[0] < 0 or box[1] < 0 or box[2] > width or box[3] > height):
        raise click.BadParameter(f"box {','.join(f'{c:g}' for c in box)} is {valid}", param_hint="--box")


def _run_prompts(model, image, points, box, multimask):
    from ..predictor import SamPredictor

    predictor = SamPredictor(model)
    predictor.set_image(image)
    coords = labels = None
    if points:
        coords = np.array([[p[0], p[1]] for p in points], dtype=np.float32)
        labels = np.array([p[2] for p in points], dtype=np.int64)
    box_arr = None if box is None else np.array(box, dtype=np.float32)
    try:
        masks, scores, _ = predictor.predict(
            point_coords=coords, point_labels=labels, box=box_arr, multimask_output=multimask
        )
    except (ValueError, TypeError) as err:
        raise click.ClickException(str(err)) from err
    order = np.argsort(-scores)
    return [_mask_record(masks[i], predicted_iou=float(scores[i])) for i in order], [masks[i] for i in order]


def _run_everything(model, image, points_per_side, pred_iou_thresh, stability_score_thresh):
    from ..automatic_mask_generator import SamAutomaticMaskGenerator

    try:
        generator = SamAutomaticMaskGenerator(
            model,
            points_per_side=points_per_side,
            pred_iou_thresh=pred_iou_thresh,
            stability_score_thresh=stability_score_thresh,
            output_mode="binary_mask",
        )
    except (ValueError, TypeError) as err:
        raise click.ClickException(str(err)) from err
    results = generator.generate(image, progress=True)
    records = [
        _mask_record(
            r["segmentation"],
            predicted_iou=float(r["predicted_iou"]),
            stability_score=float(r["stability_score"]),
            point_coords=r["point_coords"],
        )
        for r in results
    ]
    return records, [r["segmentation"] for r in results]


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("image", type=click.Path(dir_okay=False, path_type=Path), required=False)
@checkpoint_option
@model_type_option
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("runs/segment"),
              show_default=True, help="Folder for overlay.png and masks.json (created if missing).")
@click.option("--points", "points", type=PointType(), multiple=True,
              help="Prompt point 'x,y' (foreground) or 'x,y,0' (background), in image pixels "
                   "(0 <= x <= width, 0 <= y <= height). Repeatable.")
@click.option("--box", type=BoxType(), default=None, help="Box prompt 'x0,y0,x1,y1' in image pixels, inside the image.")
@click.option("--everything", is_flag=True, help="Segment everything with the automatic mask generator.")
@click.option("--single-mask", is_flag=True, help="Prompt mode: return one mask instead of three candidates.")
@click.option("--points-per-side", type=click.IntRange(1, 128), default=32, show_default=True,
              help="--everything: grid density.")
@click.option("--pred-iou-thresh", type=click.FloatRange(0.0, 1.0), default=0.88, show_default=True,
              help="--everything: keep masks whose predicted IoU is above this.")
@click.option("--stability-score-thresh", type=click.FloatRange(0.0, 1.0), default=0.95, show_default=True,
              help="--everything: keep masks whose stability score is above this.")
@click.option("--demo", is_flag=True, help="Segment a generated demo image (no IMAGE needed); without --checkpoint "
              "it uses the demo's model: the finetuned one from `sam-train --demo` (runs/demo) if that has run, "
              "else fastsam's base demo model.")
@version_option
def main(image, checkpoint, model_type, out_dir, points, box, everything, single_mask,
         points_per_side, pred_iou_thresh, stability_score_thresh, demo):
    """Segment IMAGE with a SAM model and write an overlay PNG and COCO-RLE masks.

    Prompt with --points and/or --box, or use --everything for automatic
    mask generation over a grid of points. With no prompt, the image centre is
    used as a foreground point. Coordinates are in original image pixels.

    \b
    Examples:
      sam-segment photo.jpg --checkpoint mobile_sam.pt --points 420,300
      sam-segment photo.jpg --checkpoint mobile_sam.pt --box 100,80,520,400
      sam-segment photo.jpg --checkpoint mobile_sam.pt --everything
      sam-segment --demo --everything
    """
    from ..demo_image import make_demo_image
    from ..image_io import read_rgb, write_png
    from ..visualize import overlay_masks

    if everything and (points or box is not None):
        raise click.UsageError("--everything cannot be combined with --points or --box")
    if demo and image is not None:
        raise click.UsageError("give either IMAGE or --demo, not both")
    if image is None and not demo:
        raise click.UsageError("missing IMAGE (or pass --demo to segment a generated image)")

    out_dir.mkdir(parents=True, exist_ok=True)
    if demo:
        rgb = make_demo_image()
        image = write_png(out_dir / "demo_input.png", rgb)
        click.echo(f"generated demo image {image}")
        if checkpoint is None:
            from ..demo_model import default_demo_checkpoint

            path, which = default_demo_checkpoint()
            checkpoint = str(path)
            click.echo(f"model: {which}")
    else:
        try:
            rgb = read_rgb(image)
        except (FileNotFoundError, ValueError) as err:
            raise click.ClickException(str(err)) from err
    h, w = rgb.shape[:2]
    _check_prompts_inside(points, box, w, h)
    if not everything and not points and box is None:
        points = ((w / 2.0, h / 2.0, 1),)
        click.echo(f"no prompt given: using the image centre ({w / 2:.0f},{h / 2:.0f}) as a foreground point")

    model, model_type = _load_model(model_type, checkpoint)
    start = time.perf_counter()
    if everything:
        records, masks = _run_everything(model, rgb, points_per_side, pred_iou_thresh, stability_score_thresh)
    else:
        records, masks = _run_prompts(model, rgb, points, box, multimask=not single_mask)
    elapsed = time.perf_counter() - start

    shown = masks if everything else masks[:1]
    if everything:
        title, labels = f"{Path(image).name}: {len(records)} masks (segment everything)", None
    else:
        title = f"{Path(image).name}: best of {len(records)} mask(s) for the prompt"
        labels = [f"predicted IoU {records[0]['predicted_iou']:.3f}"]
    overlay = overlay_masks(
        rgb, shown,
        boxes=[box] if box is not None else [],
        points=[p[:2] for p in points],
        point_labels=[p[2] for p in points],
        title=title, labels=labels,
    )
    overlay_path = write_png(out_dir / "overlay.png", overlay)
    result = {
        "image": str(image),
        "image_size": [h, w],
        "model_type": model_type,
        "checkpoint": checkpoint,
        "mode": "everything" if everything else "prompt",
        "prompts": {"points": [list(p) for p in points], "box": list(box) if box is not None else None},
        "annotations": records,
    }
    json_path = out_dir / "masks.json"
    tmp = json_path.with_name(json_path.name + ".tmp")
    tmp.write_text(json.dumps(result, indent=1))
    tmp.replace(json_path)

    click.echo(f"{len(records)} mask(s) from {model_type} on {w}x{h} image in {elapsed:.2f} s")
    for i, rec in enumerate(records[:10]):
        extra = f", stability {rec['stability_score']:.3f}" if "stability_score" in rec else ""
        click.echo(f"  mask {i}: area {rec['area']} px, bbox {rec['bbox']}, predicted IoU {rec['predicted_iou']:.3f}{extra}")
    if len(records) > 10:
        click.echo(f"  ... {len(records) - 10} more in {json_path}")
    click.echo(f"wrote {overlay_path} and {json_path}")
