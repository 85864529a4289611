"""fastsam: train Segment Anything models in PyTorch, serve them in C++.

The Python API mirrors segment-anything / MobileSAM, so user code ports by changing one import:
``from fastsam import sam_model_registry, SamPredictor, SamAutomaticMaskGenerator``.

The names below are imported on first use (PEP 562), so torch-free parts of the package (``sam-segment
--backend runtime``, ``sam-app`` on an exported model) can be imported where PyTorch is not installed.
"""
from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_LAZY = {
    "SamAutomaticMaskGenerator": ".automatic_mask_generator",
    "SamPredictor": ".predictor",
    "build_sam": ".build_sam",
    "sam_model_registry": ".build_sam",
}

__all__ = [*_LAZY, "__version__"]

if TYPE_CHECKING:
    from .automatic_mask_generator import SamAutomaticMaskGenerator
    from .build_sam import build_sam, sam_model_registry
    from .predictor import SamPredictor


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module 'fastsam' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


class _Package(types.ModuleType):
    """Keeps `fastsam.build_sam` the function: importing the submodule of the same name (which any
    `from .build_sam import ...` does) makes the import system set the package attribute to the module."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "build_sam" and isinstance(value, types.ModuleType):
            value = value.build_sam
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
