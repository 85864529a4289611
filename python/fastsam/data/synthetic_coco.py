"""Generated scenes written as a Roboflow-style COCO export (the seed-003 layout, data/coco_root.py):
``out/{train,val}/_annotations.coco.json`` with the images beside it and compressed-RLE segmentations.
For tests, benchmarks and the README's seed-003 example; no data of one's own needed."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..image_io import write_png
from .coco_root import ANNOTATION_NAME
from .synthetic import make_scene


def _rle(mask: np.ndarray) -> dict:
    from pycocotools import mask as mask_utils

    encoded = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(s) for s in encoded["size"]], "counts": encoded["counts"].decode("ascii")}


def write_coco_export(out_dir: str | Path, num_train: int = 2, num_val: int = 1, size: int = 96,
                      objects: tuple[int, int] = (1, 3), seed: int = 0) -> Path:
    """Write the export under `out_dir`; returns it (the --data-root to pass).

    Arguments:
      size: image side (square images); objects: inclusive range of shapes per image.
    """
    if num_train < 1 or num_val < 1:
        raise ValueError(f"num_train and num_val must be >= 1, got {num_train} and {num_val}")
    out_dir, rng = Path(out_dir), np.random.default_rng(seed)
    for split, count in (("train", num_train), ("val", num_val)):
        images, annotations = [], []
        for i in range(count):
            image, masks = make_scene(rng, size, size, int(rng.integers(objects[0], objects[1] + 1)))
            name = f"{split}_{i:04d}.png"
            write_png(out_dir / split / name, image)
            images.append({"id": i, "file_name": name, "height": size, "width": size})
            for mask in masks:
                ys, xs = np.nonzero(mask)
                annotations.append({"id": len(annotations) + 1, "image_id": i, "category_id": 1, "iscrowd": 0,
                                    "segmentation": _rle(mask), "area": int(mask.sum()),
                                    "bbox": [int(xs.min()), int(ys.min()), int(np.ptp(xs)) + 1, int(np.ptp(ys)) + 1]})
        data = {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "shape"}]}
        (out_dir / split / ANNOTATION_NAME).write_text(json.dumps(data))
    return out_dir
