"""Reading checkpoint files and loading them into a model with one clear error on mismatch."""
from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import torch
from torch import nn

from .checkpoint_resize import checkpoint_image_size, describe, fit_to_model

logger = logging.getLogger("fastsam.checkpoint")

# How many missing/unexpected/mismatched keys an error message names.
_KEYS_SHOWN = 5

# (embed_dim, depth) of the official ViT encoders -> model type.
_VIT_SIGNATURES = {(768, 12): "vit_b", (1024, 24): "vit_l", (1280, 32): "vit_h"}


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a state dict saved with ``torch.save`` (raw, or wrapped under ``"model"``).

    Arguments: path to the file. Returns: the state dict (tensors on the CPU).
    Raises: FileNotFoundError when the file does not exist; RuntimeError when it cannot be
    read as a torch checkpoint or holds no state dict.
    """
    return read_checkpoint(path)[0]


def read_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict]:
    """Read a checkpoint file once: its state dict and what the trainer stored beside it.

    Arguments: path to the file.
    Returns: (state dict, training record); the record is ``{}`` for a bare state dict (official
    checkpoints) and holds ``"config"`` (TrainConfig.to_dict()) and ``"model_type"`` when
    fastsam's trainer wrote the file.
    Raises: as :func:`read_state_dict`.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint file not found: {path}")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for corrupt/foreign files
        raise RuntimeError(
            f"could not read checkpoint {path}: {_load_failure_reason(exc)}; "
            "expected a state dict saved with torch.save"
        ) from exc
    record = {}
    if isinstance(loaded, dict) and isinstance(loaded.get("model"), dict):
        record = {key: loaded[key] for key in ("config", "model_type") if key in loaded}
        loaded = loaded["model"]
    if not isinstance(loaded, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in loaded.items()
    ):
        raise RuntimeError(
            f"could not read checkpoint {path}: it holds a {type(loaded).__name__}, not a mapping of "
            "parameter names to tensors; expected a state dict saved with torch.save"
        )
    return loaded, record


def _load_failure_reason(exc: Exception) -> str:
    """One line saying why torch.load failed, without torch's advice to disable weights_only."""
    text = str(exc).strip()
    marker = "WeightsUnpickler error:"
    if marker in text:
        detail = next((line.strip() for line in text.split(marker, 1)[1].splitlines() if line.strip()), "")
        return f"not a tensors-only torch.save file (unpickler: {detail or 'unsupported content'})"
    if not text:
        return type(exc).__name__
    # First sentence of the first line: torch appends paragraphs of generic advice.
    return text.splitlines()[0].split(". ")[0].rstrip(".")


def guess_model_type(state_dict: dict[str, torch.Tensor]) -> str | None:
    """Which registered model type a state dict looks like ("vit_t", "vit_b", ...), or None."""
    if any(k.startswith("image_encoder.patch_embed.seq.") for k in state_dict):
        return "vit_t"
    block_ids = {
        int(m.group(1)) for k in state_dict if (m := re.match(r"image_encoder\.blocks\.(\d+)\.", k)) is not None
    }
    pos_embed = state_dict.get("image_encoder.pos_embed")
    proj = state_dict.get("image_encoder.patch_embed.proj.weight")
    width = proj.shape[0] if proj is not None else (pos_embed.shape[-1] if pos_embed is not None else None)
    if not block_ids or width is None:
        return None
    return _VIT_SIGNATURES.get((int(width), max(block_ids) + 1))


def _first(keys: list[str]) -> str:
    shown = ", ".join(keys[:_KEYS_SHOWN])
    return shown + (", ..." if len(keys) > _KEYS_SHOWN else "")


def load_checkpoint(model: nn.Module, path: str | os.PathLike, model_type: str) -> nn.Module:
    """Load the checkpoint at ``path`` into ``model`` strictly (ViT size-dependent weights resized).

    Arguments: model: the freshly built model; path: checkpoint file; model_type: the name the
    model was built as (used in messages). Returns: ``model``.
    Raises: FileNotFoundError / RuntimeError (see :func:`read_state_dict`); ValueError listing
    the first missing, unexpected and shape-mismatched keys and the model type the file looks like.
    A ViT checkpoint trained at another image size has its position embedding and global-attention
    rel-pos tables resized to the model's grid (see :mod:`fastsam.checkpoint_resize`; logged).
    """
    return load_state_dict_strictly(model, read_state_dict(path), path, model_type)


def load_state_dict_strictly(model: nn.Module, state_dict: dict[str, torch.Tensor], path: str | os.PathLike,
                             model_type: str, keep_prefix: str | None = None) -> nn.Module:
    """Load an already read ``state_dict`` (from ``path``, named in messages) as :func:`load_checkpoint` does.

    ``keep_prefix``: the model's parameters under this prefix keep their values; the file's are ignored
    (a head rebuilt with another shape).
    """
    expected = model.state_dict()
    if keep_prefix is not None:
        expected = {k: v for k, v in expected.items() if not k.startswith(keep_prefix)}
        state_dict = {k: v for k, v in state_dict.items() if not k.startswith(keep_prefix)}
    trained_size = checkpoint_image_size(state_dict)
    state_dict, resized = fit_to_model(state_dict, expected)
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    mismatched = [
        f"{k} {tuple(state_dict[k].shape)} vs {tuple(expected[k].shape)}"
        for k in expected
        if k in state_dict and state_dict[k].shape != expected[k].shape
    ]
    if missing or unexpected or mismatched:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys ({_first(missing)})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys ({_first(unexpected)})")
        if mismatched:
            parts.append(f"{len(mismatched)} keys with the wrong shape, file vs model ({_first(mismatched)})")
        guess = guess_model_type(state_dict)
        looks = f"it looks like a {guess!r} checkpoint" if guess else "it does not look like any known model type"
        raise ValueError(f"checkpoint {path} does not match model type {model_type!r}: {'; '.join(parts)}; {looks}")
    model.load_state_dict(state_dict, strict=keep_prefix is None)
    if resized:
        logger.info("checkpoint %s: trained at image size %s, loaded at %s: resized %s", path, trained_size,
                    checkpoint_image_size(state_dict), describe(resized))
    return model


