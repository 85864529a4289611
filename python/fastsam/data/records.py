"""Sample records (an image plus its object masks) and the up-front check that reports bad samples."""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..image_io import read_rgb

logger = logging.getLogger("fastsam.data")


@dataclass(frozen=True)
class MaskRef:
    """One object's mask: `name` (a file name or annotation id, for messages) and a loader.

    `load()` returns an (H, W) bool array, True = object.
    """

    name: str
    load: Callable[[], np.ndarray]


@dataclass(frozen=True)
class SampleRecord:
    """An image file and the masks of its objects (mask i = object i)."""

    image_path: Path
    masks: tuple[MaskRef, ...]

    @property
    def name(self) -> str:
        return self.image_path.name


def read_binary_mask(path: Path) -> np.ndarray:
    """Read a mask image; any non-zero pixel is object. Raises ValueError if the file cannot be decoded."""
    try:
        with Image.open(path) as img:
            arr, mode = np.asarray(img), img.mode
    except (UnidentifiedImageError, OSError) as err:
        raise ValueError(f"could not read mask {path}: {err}") from err
    if arr.ndim == 3:
        if mode in ("LA", "RGBA"):
            arr = arr[..., :-1]  # an opaque alpha channel would make the whole image object
        arr = arr.any(axis=2)
    return arr != 0


def image_size(path: Path) -> tuple[int, int]:
    """(height, width) of an image file, decoded and converted as training reads it, so truncated, empty,
    floating-point and oversized files are caught here, before the run starts."""
    return read_rgb(path).shape[:2]


def check_records(records: list[SampleRecord], on_bad_sample: str, split: str) -> tuple[list[SampleRecord], list[str]]:
    """Drop unreadable images, unreadable/mis-sized/empty masks, and images left without objects.

    Arguments:
      records: candidate samples.
      on_bad_sample: "skip" logs a warning per problem and keeps the good part; "error" raises one
        ValueError listing every problem (with file names).
      split: "train"/"val", used in messages.

    Returns:
      (kept records, problem messages).
    """
    if on_bad_sample not in ("skip", "error"):
        raise ValueError(f"on_bad_sample must be 'skip' or 'error', got {on_bad_sample!r}")
    kept, problems = [], []
    for rec in records:
        try:
            hw = image_size(rec.image_path)
        except ValueError as err:
            problems.append(str(err))
            continue
        good = []
        for ref in rec.masks:
            try:
                mask = ref.load()
            except ValueError as err:
                problems.append(str(err))
                continue
            if mask.shape != hw:
                problems.append(f"mask {ref.name} is {mask.shape[1]}x{mask.shape[0]} but its image "
                                f"{rec.image_path} is {hw[1]}x{hw[0]}")
            elif not mask.any():
                problems.append(f"mask {ref.name} (image {rec.image_path}) is empty")
            else:
                good.append(ref)
        if good:
            kept.append(SampleRecord(rec.image_path, tuple(good)))
        elif rec.masks:
            problems.append(f"image {rec.image_path} has no usable mask left; skipped")
        else:
            problems.append(f"image {rec.image_path} has no mask")
    if problems and on_bad_sample == "error":
        raise ValueError(f"{len(problems)} bad {split} sample(s) (set on_bad_sample='skip' to skip them):\n  "
                         + "\n  ".join(problems))
    for message in problems:
        logger.warning("%s data: %s", split, message)
    if not kept:
        raise ValueError(f"no usable {split} samples left" + (f"; problems:\n  " + "\n  ".join(problems) if problems else ""))
    return kept, problems
