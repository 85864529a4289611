"""``sam-train``: finetune a SAM student from a JSON config, or run the built-in demo pipeline.

Single process:  sam-train --config models/configs/mobilesam_decoder_only.json --set num_epochs=3
Seed-003 flags (cli/seed_flags.py; with --config the flags win):
  sam-train --data-root DATA --model-type vit_b --checkpoint sam_vit_b.pth --image-size 512 --steps 2000 \
            --batch-size 4 --metrics-interval 100 --output-dir runs --freeze-image-encoder
Several GPUs or CPU processes (DistributedDataParallel; batch_size is the global batch):
  torchrun --nproc_per_node 2 $(which sam-train) --config ...
No data of your own:  sam-train --demo   (generated data -> finetune the base model -> validate -> export -> fastsam_rt)
"""
from __future__ import annotations

import logging
import os
import time

import click

from .params import version_option
from .seed_flags import seed_options, seed_values


def demo_summary(record: dict, seconds: float) -> str:
    """The demo's closing lines: time, mIoU before -> after, what the runtime did, where the figures are."""
    lines = [f"demo done in {seconds:.0f} s (training {record['train_seconds']:.0f} s): val box-prompt mIoU "
             f"{record['start_miou']:.3f} -> {record['best_miou']:.3f} (base model -> best finetuned epoch)",
             f"exported model: {record['export_dir']}"]
    if "box_miou" in record:
        lines.append(f"fastsam_rt on a validation image: box prompts mIoU {record['box_miou']:.3f}, one click per "
                     f"object {record['point_miou']:.3f}, segment-everything {record['everything_masks']} masks")
        lines.append(f"figures: {record['segmented_image']}, {record['everything_image']}")
    return "\n".join(lines)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=str), default=None,
              help="JSON training config (see models/configs/); optional with the flags below (which win).")
@click.option("--resume", type=click.Path(dir_okay=False, path_type=str), default=None,
              help="Continue from a run's latest_model.pth (or best_model.pth). Not with --demo.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a config key; dotted keys reach nested objects, values are JSON "
                   "(e.g. --set freeze.image_encoder=true).")
@click.option("--demo", is_flag=True, help="The main job end to end on generated data: finetune the project's base "
              "model (vit_t, 256 px) to patterned shapes, validate, export it (parity-gated) and segment a "
              "validation image with fastsam_rt (boxes, clicks, everything). Refuses an --output-dir that holds "
              "an earlier demo run (pass another, or --set overwrite=true).")
@version_option
@seed_options
def main(config_path: str | None, resume: str | None, overrides: tuple[str, ...], demo: bool, **flags) -> None:
    """Train a Segment Anything student as described by --config (or run --demo).

    Two training tasks, chosen by the config's dataset.mode: "prompt" (each object prompted by its box or
    points) and "everything" (every point of a dataset.grid_points grid is a prompt and the candidates are
    Hungarian-matched to all objects of the image, as the automatic mask generator uses the model; see
    models/configs/mobilesam_everything.json).

    A run never silently replaces an earlier one: when its run folder (output_dir/project_name/run_name)
    already holds a checkpoint, sam-train stops and asks for --resume PATH, another run_name, or
    --set overwrite=true (which deletes that run's checkpoints, metrics, curves, log and overlays).

    Every flag below but --output-dir (where --demo writes too, default runs) sets a config key and needs
    training data: --data-root, or a --config naming it.
    """
    from ..train.config import ConfigError, load_config
    from ..train.graceful_stop import TrainingStopped
    from ..train.checkpointing import CheckpointWriteError
    from ..train.nonfinite import NonFiniteStop
    from ..train.run_outputs import RunFolderInUse
    from ..train.trainer import train

    rank = int(os.environ.get("RANK", "0"))
    logging.basicConfig(level=logging.INFO if rank == 0 else logging.WARNING, format="%(message)s")
    values = seed_values(flags)
    output_dir = values.pop("output_dir", None) if demo else values.get("output_dir")
    if demo and values:
        raise click.UsageError(f"--demo trains its own model and data; it takes only --output-dir of the training "
                               f"flags (got {', '.join(sorted(values))}; pass them with --set)")
    if demo and (config_path is not None or resume is not None):
        raise click.UsageError("--demo always starts a fresh demo run and takes no --config or --resume; to continue "
                               "a demo run: sam-train --config RUN_FOLDER/config.json --resume RUN_FOLDER/latest_model.pth")
    if not demo and config_path is None and "data_root" not in values:
        raise click.UsageError("give --config PATH, --data-root DIR (with the other training flags), or --demo")
    try:
        if demo:
            from ..train.demo import run_demo

            t0 = time.perf_counter()
            try:
                record = run_demo(output_dir or "runs", list(overrides))
            except RunFolderInUse as err:
                raise click.ClickException(f"{err.run_dir} already holds an earlier demo run ({err.checkpoint.name}): "
                                           "pass another --output-dir, or --set overwrite=true to replace it") from err
            click.echo(demo_summary(record, time.perf_counter() - t0))
            return
        cfg = load_config(config_path, list(overrides), values)
        record = train(cfg, resume=resume)
    except (ConfigError, FileNotFoundError, ValueError, NonFiniteStop, CheckpointWriteError) as err:
        raise click.ClickException(str(err)) from err
    except TrainingStopped as stopped:
        click.echo(str(stopped), err=True)
        raise SystemExit(130) from None
    if rank == 0 and record:
        click.echo(f"done: val mIoU {record['val_miou']:.4f} (best {record['best_miou']:.4f}); "
                   f"run folder {cfg.run_dir}")


if __name__ == "__main__":
    main()
