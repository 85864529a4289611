"""fastsam_rt: the fastsam C++ runtime (ONNX Runtime) from Python, without PyTorch.

Mirrors ``fastsam.SamPredictor`` and ``fastsam.SamAutomaticMaskGenerator`` on a directory written by
``sam-export`` (encoder.onnx, decoder_batched.onnx, manifest.json)::

    import fastsam_rt
    predictor = fastsam_rt.Predictor("models/exported/vit_t")
    predictor.set_image(image)                      # HxWx3 uint8 RGB
    masks, scores, logits = predictor.predict(point_coords=[[500, 375]], point_labels=[1])
"""
from __future__ import annotations


def _preload_onnxruntime() -> None:
    """Load the onnxruntime wheel's C library so the extension's libonnxruntime.so.1 dependency resolves.

    The wheel ships the library only as ``capi/libonnxruntime.so.<version>`` (no ``.so.1`` name); once a
    library with SONAME libonnxruntime.so.1 is loaded, the dynamic loader reuses it.
    """
    import ctypes
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("onnxruntime")
    if spec is None or not spec.submodule_search_locations:
        return  # a release-tree or system build finds the library through RPATH / the loader path
    for location in spec.submodule_search_locations:
        candidates = sorted(Path(location, "capi").glob("libonnxruntime.so.*"))
        if candidates:
            ctypes.CDLL(str(candidates[-1]))
            return


_preload_onnxruntime()

from ._core import (  # noqa: E402  (the library must be loaded first)
    AutomaticMaskGenerator,
    Predictor,
    available_providers,
    decode_coco_rle,
    encode_coco_rle,
    resize_longest_side,
)

__version__ = "0.1.0"

__all__ = [
    "AutomaticMaskGenerator",
    "Predictor",
    "available_providers",
    "decode_coco_rle",
    "encode_coco_rle",
    "resize_longest_side",
    "__version__",
]
