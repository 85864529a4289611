"""What an export builds: model type, image size and mask threshold, taken from the checkpoint when its
trainer stored them, else from the command line, else the official defaults."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from ..build_sam import IMAGE_SIZE, MODEL_TYPES
from ..model_types import image_size_problem

DEFAULT_MODEL_TYPE = "vit_t"
DEFAULT_MASK_THRESHOLD = 0.0


class SettingsError(ValueError):
    """A model type or image size that contradicts the checkpoint or that the encoders cannot take."""


@dataclass(frozen=True)
class ExportSettings:
    """Resolved settings and, per setting name, where its value came from (for the log and the manifest)."""

    model_type: str
    image_size: int
    mask_threshold: float
    sources: dict[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        """One line: ``model_type vit_t (checkpoint), image_size 256 (checkpoint), ...``."""
        return ", ".join(f"{name} {getattr(self, name)} ({source})" for name, source in self.sources.items())


def check_image_size(image_size: int) -> int:
    """``image_size`` if the encoders can take it; ValueError naming the rule otherwise."""
    problem = image_size_problem(image_size)
    if problem is not None:
        raise SettingsError(problem)
    return image_size


def resolve_settings(record: dict, checkpoint_name: str | None, model_type: str | None = None,
                     image_size: int | None = None) -> ExportSettings:
    """Settings for exporting a checkpoint.

    Arguments:
      record: what the trainer stored beside the weights (``fastsam.checkpoint.read_checkpoint``;
        ``{}`` for official checkpoints and random weights).
      checkpoint_name: the file's name, for messages (None for random weights).
      model_type, image_size: the user's explicit choices (None = not given).
    Returns:
      ExportSettings; an explicit image size overrides the stored one.
    Raises:
      ValueError: ``model_type`` contradicts the stored one (the weights would not fit), or a stored or
      given value is invalid.
    """
    config = record.get("config") or {}
    stored_type = record.get("model_type", config.get("model_type"))
    stored_size = config.get("img_size")
    stored_threshold = config.get("mask_threshold")
    if stored_type is not None and stored_type not in MODEL_TYPES:
        raise SettingsError(f"checkpoint {checkpoint_name} stores model_type {stored_type!r}, not one of {MODEL_TYPES}")
    if model_type is not None and stored_type is not None and model_type != stored_type:
        raise SettingsError(f"--model-type {model_type} contradicts checkpoint {checkpoint_name}, which was trained as "
                         f"{stored_type}; drop --model-type or pass {stored_type}")
    sources = {}
    resolved_type = _pick(sources, "model_type", model_type, stored_type, DEFAULT_MODEL_TYPE)
    resolved_size = _pick(sources, "image_size", image_size, stored_size, IMAGE_SIZE)
    if image_size is not None and stored_size is not None and image_size != stored_size:
        sources["image_size"] += f", the checkpoint was trained at {stored_size}"
    threshold = _pick(sources, "mask_threshold", None, stored_threshold, DEFAULT_MASK_THRESHOLD)
    try:
        check_image_size(resolved_size)
        threshold = float(threshold)
    except (TypeError, ValueError) as err:
        raise SettingsError(f"checkpoint {checkpoint_name or '(none)'}: {err}") from err
    return ExportSettings(resolved_type, resolved_size, threshold, sources)


def _pick(sources: dict[str, str], name: str, given, stored, default):
    """The given value, else the stored one, else the default; records which in ``sources``."""
    if given is not None:
        sources[name] = "command line"
        return given
    if stored is not None:
        sources[name] = "checkpoint"
        return stored
    sources[name] = "default"
    return default


def build_model(checkpoint: str | None, model_type: str | None = None, image_size: int | None = None):
    """A Sam in eval mode built as the checkpoint was trained (its stored settings unless overridden).

    Arguments:
      checkpoint: official or fastsam-trained checkpoint; None builds random weights.
      model_type, image_size: explicit overrides (None = the checkpoint's, else the defaults).
    Returns:
      (Sam, ExportSettings); ``Sam.mask_threshold`` is set from the settings.
    Raises:
      FileNotFoundError / RuntimeError: the file is missing or unreadable; ValueError: the settings
      contradict the checkpoint, or its weights do not fit the model type (message names the keys).
    """
    from ..build_sam import sam_model_registry
    from ..checkpoint import load_state_dict_strictly, read_checkpoint
    from ..checkpoint_resize import checkpoint_image_size

    state_dict, record = read_checkpoint(checkpoint) if checkpoint is not None else (None, {})
    name = None if checkpoint is None else Path(checkpoint).name
    settings = resolve_settings(record, name, model_type, image_size)
    model = sam_model_registry[settings.model_type](checkpoint=None, image_size=settings.image_size)
    if state_dict is not None:
        load_state_dict_strictly(model, state_dict, checkpoint, settings.model_type)
        trained_size = checkpoint_image_size(state_dict)
        if trained_size is not None and trained_size != settings.image_size:
            # Say it where the user reads the settings (log line and manifest), not only in the log.
            note = f"{settings.sources['image_size']}, weights resized from {trained_size}"
            settings = replace(settings, sources={**settings.sources, "image_size": note})
    # The runtime binarises masks at the manifest's threshold, which the export pipeline reads from the model.
    model.mask_threshold = settings.mask_threshold
    return model.eval(), settings
