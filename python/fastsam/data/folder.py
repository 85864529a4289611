"""Folder datasets: images and single-channel masks matched by file stem.

For an image ``<stem>.<ext>`` the masks are any of ``<stem>.<ext>`` (one object), ``<stem>_<k>.<ext>``
(object k) and ``<stem>/<anything>.<ext>`` (a folder per image); non-zero mask pixels are object.
"""
from __future__ import annotations

import re
from functools import partial
from pathlib import Path

from .records import MaskRef, SampleRecord, read_binary_mask

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
_OBJECT_SUFFIX = re.compile(r"^(.*)_(\d+)$")


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _natural_key(path: Path) -> tuple:
    match = _OBJECT_SUFFIX.match(path.stem)
    return (match.group(1), int(match.group(2))) if match else (path.stem, -1)


def folder_records(img_dir: str | Path, mask_dir: str | Path) -> tuple[list[SampleRecord], list[str]]:
    """Pair every image with its masks.

    Arguments:
      img_dir: folder of images (not searched recursively).
      mask_dir: folder of masks named as described in the module docstring.

    Returns:
      (records sorted by image name, names of mask files that match no image). Images without
      masks are returned with an empty mask list so the caller reports them.
    """
    img_dir, mask_dir = Path(img_dir), Path(mask_dir)
    for label, folder in (("image folder", img_dir), ("mask folder", mask_dir)):
        if not folder.is_dir():
            raise FileNotFoundError(f"{label} not found: {folder}")
    images = _image_files(img_dir)
    by_stem: dict[str, list[Path]] = {p.stem: [] for p in images}
    orphans = []
    for mask in _image_files(mask_dir):
        match = _OBJECT_SUFFIX.match(mask.stem)
        if mask.stem in by_stem:
            by_stem[mask.stem].append(mask)
        elif match and match.group(1) in by_stem:
            by_stem[match.group(1)].append(mask)
        else:
            orphans.append(mask.name)
    for sub in sorted(p for p in mask_dir.iterdir() if p.is_dir()):
        if sub.name in by_stem:
            by_stem[sub.name].extend(_image_files(sub))
        else:
            orphans.append(sub.name + "/")
    records = [
        SampleRecord(p, tuple(MaskRef(str(m), partial(read_binary_mask, m)) for m in sorted(by_stem[p.stem], key=_natural_key)))
        for p in images
    ]
    return records, orphans
