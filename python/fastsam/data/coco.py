"""COCO instances JSON (polygons, uncompressed and compressed RLE) decoded with pycocotools."""
from __future__ import annotations

import contextlib
import io
import json
import warnings
from pathlib import Path

import numpy as np

from .records import MaskRef, SampleRecord


def _decode(coco, ann: dict) -> np.ndarray:
    # pycocotools' compiled decoder trips a numpy-2 DeprecationWarning about __array__(copy=...);
    # the result is correct, so that one warning is silenced here only.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"__array__ implementation", category=DeprecationWarning)
        return coco.annToMask(ann).astype(bool)


def coco_records(annotation_file: str | Path, img_dir: str | Path) -> list[SampleRecord]:
    """One record per image listed in the JSON, with its non-crowd annotations as masks.

    Arguments:
      annotation_file: COCO instances JSON (``images``, ``annotations`` with ``segmentation``).
      img_dir: folder holding the ``file_name`` of each image.

    Returns:
      Records sorted by image id; images without annotations get an empty mask list.
    """
    from pycocotools.coco import COCO

    annotation_file, img_dir = Path(annotation_file), Path(img_dir)
    if not annotation_file.is_file():
        raise FileNotFoundError(f"COCO annotation file not found: {annotation_file}")
    if not img_dir.is_dir():
        raise FileNotFoundError(f"image folder not found: {img_dir}")
    try:
        data = json.loads(annotation_file.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"COCO annotation file {annotation_file} is not valid JSON: {err}") from err
    for key in ("images", "annotations"):
        if key not in data:
            raise ValueError(f"COCO annotation file {annotation_file} has no '{key}' list")
    coco = COCO()
    coco.dataset = data
    # pycocotools prints progress to stdout; keep the training log clean.
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    records = []
    for image_id in sorted(coco.imgs):
        info = coco.imgs[image_id]
        anns = [a for a in coco.imgToAnns.get(image_id, []) if not a.get("iscrowd", 0)]
        refs = tuple(
            MaskRef(f"{annotation_file.name} annotation id {a['id']} ({info['file_name']})", _bind(coco, a))
            for a in anns
        )
        records.append(SampleRecord(img_dir / info["file_name"], refs))
    return records


def _bind(coco, ann: dict):
    def load() -> np.ndarray:
        try:
            return _decode(coco, ann)
        except (KeyError, TypeError, ValueError, IndexError) as err:
            raise ValueError(f"could not decode segmentation of annotation id {ann.get('id')}: {err}") from err
    return load
