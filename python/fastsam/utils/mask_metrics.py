"""Agreement of boolean masks (numpy), shared by the export's parity/quantisation checks and the demo's scores."""
from __future__ import annotations

import numpy as np


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two boolean masks; two empty masks agree perfectly (1.0)."""
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)
