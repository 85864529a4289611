"""Choose the sample source (folder or COCO) for a split and check its samples."""
from __future__ import annotations

import logging

from .coco import coco_records
from .folder import folder_records
from .records import SampleRecord, check_records

logger = logging.getLogger("fastsam.data")


def load_records(img_dir: str, mask_dir: str | None, coco_json: str | None, on_bad_sample: str,
                 split: str) -> tuple[list[SampleRecord], list[str]]:
    """Records of one split from a mask folder or a COCO JSON, bad samples skipped or raised.

    Returns:
      (good records, problem messages naming the files).
    """
    if (mask_dir is None) == (coco_json is None):
        raise ValueError(f"{split} data needs exactly one of a mask folder or a COCO annotation file")
    if coco_json is not None:
        records, extra = coco_records(coco_json, img_dir), []
    else:
        records, orphans = folder_records(img_dir, mask_dir)
        extra = [f"mask {name} in {mask_dir} matches no image in {img_dir}" for name in orphans]
        for message in extra:
            logger.warning("%s data: %s", split, message)
    kept, problems = check_records(records, on_bad_sample, split)
    return kept, extra + problems
