"""``sam-extract-features``: run a teacher image encoder over the training images and save one block's
features and the final image embedding per image (plus a manifest) for distillation in sam-train."""
from __future__ import annotations

import logging
from pathlib import Path

import click

from .params import version_option


def extract_features(cfg, image_dir: str | Path, output_dir: str | Path, teacher: str | None = None) -> dict:
    """Save teacher block ``cfg.distill_feature_level`` features (``<stem>.pt``) and the final image embedding
    (``<stem>.embedding.pt``) of every image in `image_dir`.

    Arguments:
      cfg: TrainConfig (distillation.teacher or one of distillation.teachers when the block is on, else
        teacher_model_type and teacher_checkpoint; distill_feature_level, img_size).
      teacher: the name of the distillation.teachers entry to run (needed when there are several).
    Returns:
      The manifest written to `output_dir`/manifest.json.
    """
    import torch

    from ..build_sam import sam_model_registry
    from ..data.dataset import file_digest
    from ..data.folder import IMAGE_SUFFIXES
    from ..data.geometry import resize_image
    from ..data.records import image_size
    from ..utils.writable import make_writable_dir
    from ..image_io import read_rgb
    from ..train.distill import MANIFEST_NAME, FeatureHook, feature_blocks, resolve_level, teacher_weights_record, write_manifest
    from ..train.distillation.teacher import EMBEDDING_SUFFIX

    image_dir, output_dir = Path(image_dir), Path(output_dir)
    if not image_dir.is_dir():
        raise FileNotFoundError(f"--image-dir not found: {image_dir}")
    images = sorted(p for p in image_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise ValueError(f"--image-dir {image_dir} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    # Every image and the output folder are checked before the teacher runs: no half-made features folder.
    unreadable = []
    for path in images:
        try:
            image_size(path)
        except ValueError as err:
            unreadable.append(str(err))
    if unreadable:
        raise ValueError(f"{len(unreadable)} image(s) in --image-dir cannot be read; fix or remove them:\n  "
                         + "\n  ".join(unreadable))
    make_writable_dir(output_dir, "--output-dir", "pass a writable --output-dir")
    (output_dir / MANIFEST_NAME).unlink(missing_ok=True)  # an earlier teacher's manifest must not vouch for new files
    # The distillation block names its own teacher; the flat teacher_* keys serve use_distill runs.
    block = _block_teacher(cfg.distillation, teacher) if cfg.distillation.enable else None
    model_type = block.model_type if block else cfg.teacher_model_type
    checkpoint = block.checkpoint if block else cfg.teacher_checkpoint
    if checkpoint is None:
        logging.getLogger("fastsam.train").warning(
            "NO teacher checkpoint: the teacher %s has RANDOM weights; its features teach nothing", model_type)
    try:
        teacher = sam_model_registry[model_type](checkpoint=checkpoint, image_size=cfg.img_size)
    except RuntimeError as err:  # an unreadable file (ValueError: a file of another model type)
        raise ValueError(f"teacher checkpoint: {err}") from err
    teacher.eval()
    level = resolve_level(teacher.image_encoder, cfg.distill_feature_level, "distill_feature_level")
    hook = FeatureHook(teacher.image_encoder, level)
    manifest = {"teacher_model_type": model_type, **teacher_weights_record(checkpoint),
                "feature_level": level, "num_blocks": len(feature_blocks(teacher.image_encoder)),
                "img_size": cfg.img_size, "images": {}}
    with torch.no_grad():
        for path in images:
            rgb = torch.from_numpy(read_rgb(path)).permute(2, 0, 1).float()  # the trainer's conversion
            x = teacher.preprocess(resize_image(rgb, cfg.img_size))[None]
            embedding = teacher.image_encoder(x)[0].to(torch.float16).contiguous()
            feats = hook.output[0].to(torch.float16).contiguous()
            torch.save(feats, output_dir / f"{path.stem}.pt")
            # The final embedding too: distillation.teacher.embeddings_dir then skips the teacher's encoder.
            torch.save(embedding, output_dir / f"{path.stem}{EMBEDDING_SUFFIX}")
            manifest["images"][path.stem] = file_digest(path)
            manifest["shape"] = list(feats.shape)
            manifest["embedding_shape"] = list(embedding.shape)
    hook.remove()
    write_manifest(output_dir, manifest)
    return manifest


def _block_teacher(block, name: str | None):
    """The distillation block's teacher to extract: the only one, or the one named `name`."""
    from ..train.distillation.config import teacher_configs, teacher_name

    teachers = {teacher_name(t): t for _, t in teacher_configs(block)}
    if name is None:
        if len(teachers) > 1:
            raise ValueError(f"the config lists {len(teachers)} teachers (distillation.teachers): pass --teacher with "
                             f"one of {', '.join(teachers)}, one extraction folder per teacher")
        return next(iter(teachers.values()))
    if name not in teachers:
        raise ValueError(f"--teacher {name!r}: no such teacher in distillation.teachers; expected one of "
                         f"{', '.join(teachers)}")
    return teachers[name]


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False, path_type=str),
              help="The training config (distillation.teacher or teacher_model_type/teacher_checkpoint, "
                   "distill_feature_level, img_size).")
@click.option("--image-dir", required=True, type=click.Path(file_okay=False, path_type=str),
              help="Training images to run the teacher over.")
@click.option("--output-dir", required=True, type=click.Path(file_okay=False, path_type=str),
              help="Where the per-image features, embeddings and manifest.json go (train_img_dir_teacher_features "
                   "or distillation.teacher.embeddings_dir).")
@click.option("--teacher", default=None, metavar="NAME",
              help="Which of distillation.teachers to run (its name, default its model_type); needed when there are several.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a config key (as in sam-train).")
@version_option
def main(config_path: str, image_dir: str, output_dir: str, teacher: str | None, overrides: tuple[str, ...]) -> None:
    """Extract teacher features for distillation."""
    from ..train.config import ConfigError, check_paths, load_config

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        cfg = load_config(config_path, list(overrides))
        check_paths(cfg, for_extraction=True, options={"--image-dir": image_dir})
        manifest = extract_features(cfg, image_dir, output_dir, teacher)
    except (ConfigError, FileNotFoundError, ValueError) as err:
        raise click.ClickException(str(err)) from err
    click.echo(f"saved {manifest['teacher_model_type']} block {manifest['feature_level']} features "
               f"{tuple(manifest.get('shape', ()))} for {len(manifest['images'])} images in {output_dir}")


if __name__ == "__main__":
    main()
