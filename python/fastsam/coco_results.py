"""Masks as COCO annotations (compressed RLE or polygons) and the one results file of a folder run.

Torch-free (pycocotools and numpy), so the runtime backend writes the same records as the PyTorch one.
"""
from __future__ import annotations

from typing import Any

import numpy as np

FORMATS = ("rle", "polygons")


def mask_annotation(mask: np.ndarray, fmt: str = "rle", *, tolerance: float = 1.0, keep_holes: bool = True,
                    **fields: Any) -> dict[str, Any]:
    """One COCO annotation of an (H, W) bool mask.

    Arguments:
      fmt: "rle" (compressed RLE, exact) or "polygons" (traced and simplified, see fastsam.utils.polygons).
      tolerance, keep_holes: polygon simplification in pixels; whether holes are kept (joined by a cut).
      fields: extra keys (predicted_iou, score, ...), copied into the record.

    Returns:
      {"segmentation", "area" (mask pixels), "bbox" (XYWH as SAM writes it), **fields}.
    """
    from pycocotools import mask as mask_utils

    mask = np.asarray(mask, dtype=bool)
    if fmt == "rle":
        rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
        segmentation: Any = {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}
    elif fmt == "polygons":
        from .utils.polygons import mask_to_polygons

        segmentation = mask_to_polygons(mask, tolerance=tolerance, keep_holes=keep_holes)
    else:
        raise ValueError(f"mask format must be one of {FORMATS}, got {fmt!r}")
    ys, xs = np.nonzero(mask)
    # SAM's XYWH convention (as SamAutomaticMaskGenerator): width = last column - first column.
    bbox = [0, 0, 0, 0] if xs.size == 0 else [int(xs.min()), int(ys.min()),
                                              int(xs.max() - xs.min()), int(ys.max() - ys.min())]
    return {"segmentation": segmentation, "area": int(mask.sum()), "bbox": bbox, **fields}


def segmentation_to_mask(segmentation: Any, height: int, width: int) -> np.ndarray:
    """(H, W) bool mask of a record's segmentation, RLE or polygons (as pycocotools' annToMask reads it)."""
    from pycocotools import mask as mask_utils

    if isinstance(segmentation, list):
        from .utils.polygons import polygons_to_mask

        return polygons_to_mask(segmentation, height, width)
    return mask_utils.decode(segmentation).astype(bool)


class ResultsFile:
    """The COCO document of a folder run: images, annotations (with scores), one category, failures, run info.

    pycocotools' ``COCO()`` reads it; ``errors`` lists the images that were skipped and why.
    """

    def __init__(self, info: dict[str, Any]) -> None:
        self.doc: dict[str, Any] = {"info": info, "images": [], "annotations": [],
                                    "categories": [{"id": 1, "name": "object"}], "errors": []}

    def add_image(self, file_name: str, height: int, width: int, records: list[dict[str, Any]]) -> int:
        image_id = len(self.doc["images"]) + 1
        self.doc["images"].append({"id": image_id, "file_name": file_name, "height": height, "width": width})
        for record in records:
            ann_id = len(self.doc["annotations"]) + 1
            score = record.get("predicted_iou", 1.0)
            self.doc["annotations"].append({"id": ann_id, "image_id": image_id, "category_id": 1,
                                            "iscrowd": 0, "score": score, **record})
        return image_id

    def add_error(self, file_name: str, message: str) -> None:
        self.doc["errors"].append({"file_name": file_name, "error": message})
