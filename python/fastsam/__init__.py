"""fastsam: train Segment Anything models in PyTorch, serve them in C++.

The Python API mirrors segment-anything / MobileSAM, so user code ports by changing one import:
``from fastsam import sam_model_registry, SamPredictor, SamAutomaticMaskGenerator``.
"""
from __future__ import annotations

from .automatic_mask_generator import SamAutomaticMaskGenerator
from .build_sam import build_sam, sam_model_registry
from .predictor import SamPredictor

__version__ = "0.1.0"

__all__ = [
    "SamAutomaticMaskGenerator",
    "SamPredictor",
    "build_sam",
    "sam_model_registry",
    "__version__",
]
