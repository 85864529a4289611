"""Fitting a SAM ViT checkpoint to a model built for another image size.

Only two kinds of ViT weights depend on the image size: the absolute position embedding (one vector
per cell of the img_size/16 grid) and the relative-position tables of the global-attention blocks
(2 * grid - 1 rows). Windowed blocks attend inside 14x14 windows at every size, so their tables keep
their 27 rows; the prompt encoder and mask decoder hold no size-dependent weights (they are built for
the new grid). TinyViT (vit_t) keys its attention biases by window offsets, so its checkpoints load
at any valid size unchanged.
"""
from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F

POS_EMBED_KEY = "image_encoder.pos_embed"
_REL_POS_KEY = re.compile(r"^image_encoder\.blocks\.\d+\.attn\.rel_pos_[hw]$")
_VIT_PATCH_SIZE = 16


@dataclass(frozen=True)
class Resized:
    """One tensor of a state dict that was resized: its key and (old, new) shape."""

    key: str
    old_shape: tuple[int, ...]
    new_shape: tuple[int, ...]


def resize_pos_embed(pos_embed: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """Resample an absolute position embedding to another patch grid.

    Bicubic with antialiasing (align_corners=False), as timm and the SAM finetuners derived from it
    resample SAM's embedding; computed in float32 and returned in the input dtype.
    Arguments: pos_embed (1, H, W, C); grid (h, w). Returns: (1, h, w, C).
    """
    if pos_embed.ndim != 4 or pos_embed.shape[0] != 1:
        raise ValueError(f"pos_embed must have shape (1, H, W, C), got {tuple(pos_embed.shape)}")
    as_image = pos_embed.float().permute(0, 3, 1, 2)
    resized = F.interpolate(as_image, size=tuple(grid), mode="bicubic", align_corners=False, antialias=True)
    return resized.permute(0, 2, 3, 1).to(pos_embed.dtype).contiguous()


def resize_rel_pos(table: torch.Tensor, length: int) -> torch.Tensor:
    """Resample a relative-position table along its length (one row per offset -(n-1)..(n-1)).

    Linear with align_corners=False: the interpolation SAM's attention applies itself when a table
    does not fit its input, so a resized table gives the same attention as the original run on the
    new grid. Arguments: table (L, C); length: the new L (2 * grid - 1). Returns: (length, C).
    """
    if table.ndim != 2:
        raise ValueError(f"a relative-position table must have shape (L, C), got {tuple(table.shape)}")
    as_signal = table.float().t().unsqueeze(0)  # (1, C, L): interpolate runs along the last axis
    resized = F.interpolate(as_signal, size=length, mode="linear", align_corners=False)
    return resized[0].t().to(table.dtype).contiguous()


def checkpoint_image_size(state_dict: Mapping[str, torch.Tensor]) -> int | None:
    """The image size a ViT state dict was trained at (from its position-embedding grid), None for vit_t."""
    pos_embed = state_dict.get(POS_EMBED_KEY)
    if pos_embed is None or pos_embed.ndim != 4:
        return None
    return int(pos_embed.shape[1]) * _VIT_PATCH_SIZE


def fit_to_model(state_dict: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor]
                 ) -> tuple[dict[str, torch.Tensor], list[Resized]]:
    """Resize the size-dependent tensors of ``state_dict`` to the grid of the model's ``expected``.

    Arguments: state_dict: the checkpoint's; expected: the model's own ``state_dict()``.
    Returns: (a new dict holding the same tensor objects except the resized ones, what was resized).
    Nothing is resized unless both hold a position embedding of the same width on different grids;
    then it is resized, and so is every rel-pos table of 2 * old_grid - 1 rows that the model has with
    2 * new_grid - 1 rows (the global-attention blocks). A checkpoint loaded at its own size is never
    touched (bit for bit); any other mismatch is left for the strict load to report.
    """
    fitted = dict(state_dict)
    old, new = state_dict.get(POS_EMBED_KEY), expected.get(POS_EMBED_KEY)
    if old is None or new is None or old.shape == new.shape or not _same_except(old, new, dims=(1, 2)):
        return fitted, []
    fitted[POS_EMBED_KEY] = resize_pos_embed(old, (new.shape[1], new.shape[2]))
    resized = [Resized(POS_EMBED_KEY, tuple(old.shape), tuple(new.shape))]
    for key, tensor in state_dict.items():
        target = expected.get(key)
        if not _REL_POS_KEY.match(key) or target is None or not _same_except(tensor, target, dims=(0,)):
            continue
        axis = 1 if key.endswith("_h") else 2
        if (tensor.shape[0], target.shape[0]) == (2 * old.shape[axis] - 1, 2 * new.shape[axis] - 1):
            fitted[key] = resize_rel_pos(tensor, target.shape[0])
            resized.append(Resized(key, tuple(tensor.shape), tuple(target.shape)))
    return fitted, resized


def _same_except(tensor: torch.Tensor, target: torch.Tensor, dims: tuple[int, ...]) -> bool:
    """Same rank and the same size on every axis not in ``dims`` (only those may be resized)."""
    if tensor.ndim != target.ndim:
        return False
    return all(a == b for i, (a, b) in enumerate(zip(tensor.shape, target.shape)) if i not in dims)


def describe(resized: list[Resized]) -> str:
    """One line saying what was resized from what to what, e.g. for a vit_b loaded at 512:

    ``image_encoder.pos_embed grid 64x64 -> 32x32 (bicubic); 8 rel-pos tables of global-attention
    blocks 127 -> 63 rows (linear)``
    """
    parts = []
    lengths: Counter[tuple[int, int]] = Counter()
    for item in resized:
        if item.key == POS_EMBED_KEY:
            old, new = item.old_shape, item.new_shape
            parts.append(f"{item.key} grid {old[1]}x{old[2]} -> {new[1]}x{new[2]} (bicubic)")
        else:
            lengths[(item.old_shape[0], item.new_shape[0])] += 1
    for (old_rows, new_rows), count in sorted(lengths.items()):
        parts.append(f"{count} rel-pos tables of global-attention blocks {old_rows} -> {new_rows} rows (linear)")
    return "; ".join(parts)
