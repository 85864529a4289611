"""``sam-export --tensorrt``: ONNX Runtime's TensorRT-provider engine cache, built beside the ONNX files.

The runtime (``fastsam_rt``, ``provider="tensorrt"``) runs the same ``.onnx`` files through ONNX Runtime's
TensorRT execution provider; TensorRT engines are built on first use, which takes minutes. This module
builds them at export time into ``tensorrt_cache/`` with the options the runtime later passes (cache path,
fp16, and one optimisation profile per model, all read from the manifest's ``tensorrt`` section), so a
deployment loads the engines instead of building them. A cached engine is only reused under the same
profile, precision, ONNX Runtime/TensorRT versions and GPU model: build the cache on the serving GPU.

One engine story only: fastsam does not build or run standalone ``.engine`` files.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from . import io_spec

CACHE_DIR = "tensorrt_cache"
PROVIDER = "TensorrtExecutionProvider"
# The models the runtime opens: encoder, batched decoder, and the split decoder of the mask generator.
CACHED_ROLES = (io_spec.ENCODER, io_spec.DECODER_BATCHED, io_spec.DECODER_HEAD, io_spec.DECODER_MASKS)


class TensorRTUnavailable(RuntimeError):
    """ONNX Runtime's TensorRT provider or a GPU is missing; the message is one line saying which."""


class TensorRTBuildError(RuntimeError):
    """ONNX Runtime's TensorRT provider failed on a graph; the message names the file and carries ORT's error."""


def dim_ranges(image_size: int, max_batch: int = 1, max_prompts: int = 256, max_points: int = 16) -> dict:
    """(min, opt, max) of every symbolic dimension in io_spec, as the runtime feeds them.

    The encoder input's longer side is ``image_size`` and the shorter one anything down to one
    16-pixel patch; prompts come in generator batches of 64; a box is two points (+1 padding point).
    """
    return {
        io_spec.BATCH: (1, 1, max_batch),
        io_spec.HEIGHT: (16, image_size, image_size),
        io_spec.WIDTH: (16, image_size, image_size),
        io_spec.NUM_PROMPTS: (1, min(64, max_prompts), max_prompts),
        io_spec.NUM_POINTS: (1, 2, max_points),
        io_spec.NUM_TOKENS: (1, io_spec.NUM_MASK_TOKENS, io_spec.NUM_MASK_TOKENS),
    }


def profile(spec: io_spec.ModelSpec, ranges: dict) -> dict[str, str]:
    """{"min", "opt", "max"}: ONNX Runtime's ``trt_profile_*_shapes`` strings ("name:1x3x16x16,...").

    Only inputs with a symbolic dimension are listed (TensorRT wants every dynamic input, and only those).
    Raises:
      ValueError: a symbolic dimension without a range (io_spec and ``dim_ranges`` disagree).
    """
    out = {}
    for index, which in enumerate(("min", "opt", "max")):
        parts = []
        for tensor in spec.inputs:
            if not tensor.dynamic_axes():
                continue
            unknown = [d for d in tensor.shape if isinstance(d, str) and d not in ranges]
            if unknown:
                raise ValueError(f"{spec.key}.{tensor.name}: no TensorRT profile range for dimension {unknown[0]!r}")
            dims = [ranges[d][index] if isinstance(d, str) else d for d in tensor.shape]
            parts.append(f"{tensor.name}:" + "x".join(str(d) for d in dims))
        out[which] = ",".join(parts)
    return out


def provider_options(cache_dir: Path, fp16: bool, model_profile: dict[str, str], device_id: int = 0) -> dict:
    """The TensorRT provider options, the same the runtime passes (cpp/src/onnx_session.cpp)."""
    return {
        "device_id": str(device_id),
        "trt_fp16_enable": "1" if fp16 else "0",
        "trt_engine_cache_enable": "1",
        "trt_engine_cache_path": str(cache_dir),
        "trt_profile_min_shapes": model_profile["min"],
        "trt_profile_opt_shapes": model_profile["opt"],
        "trt_profile_max_shapes": model_profile["max"],
    }


def require_provider() -> None:
    """Raise TensorRTUnavailable unless the installed ONNX Runtime has the TensorRT provider."""
    import onnxruntime

    available = onnxruntime.get_available_providers()
    if PROVIDER not in available:
        raise TensorRTUnavailable(
            f"--tensorrt needs ONNX Runtime's {PROVIDER}, which this onnxruntime {onnxruntime.__version__} "
            f"lacks (available: {', '.join(available)}); on an NVIDIA GPU machine install the GPU build "
            "(pip install .[gpu], see the README's GPU section) and TensorRT")


def opt_inputs(spec: io_spec.ModelSpec, ranges: dict) -> dict[str, np.ndarray]:
    """Zero inputs at the profile's opt shapes (the engine build does not depend on values)."""
    inputs = {}
    for tensor in spec.inputs:
        shape = [ranges[d][1] if isinstance(d, str) else d for d in tensor.shape]
        inputs[tensor.name] = np.zeros(shape, dtype=np.float32)
    return inputs


def _build_one(path: Path, options: dict, inputs: dict[str, np.ndarray]) -> None:
    """Open ``path`` in the TensorRT provider and run it once, which writes its engine into the cache."""
    import onnxruntime

    try:
        session = onnxruntime.InferenceSession(str(path), providers=[(PROVIDER, options), "CUDAExecutionProvider"])
        providers = session.get_providers()
        if PROVIDER in providers:
            session.run(None, inputs)
    except Exception as err:  # ONNX Runtime's own exception classes derive from Exception only
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise TensorRTBuildError(f"TensorRT engine for {path.name} failed: {first_line}") from err
    if PROVIDER not in providers:
        raise TensorRTUnavailable(f"ONNX Runtime could not start its TensorRT provider for {path.name} "
                                  f"(session providers: {providers}); check the TensorRT install")


def build_cache(output_dir: Path, models: dict, image_size: int, fp16: bool, log: Callable[[str], None]) -> dict:
    """Build the engines of the fp32 models into ``output_dir/tensorrt_cache``; returns the manifest section.

    Arguments:
      models: the manifest's ``models`` (file names per key); CACHED_ROLES are cached from their fp32 files.
      fp16: let TensorRT pick fp16 kernels (the runtime then passes the same flag).
    Raises:
      TensorRTUnavailable: no TensorRT provider; TensorRTBuildError: a graph failed (ONNX Runtime's message).
    """
    import onnxruntime

    require_provider()
    cache_dir = Path(output_dir) / CACHE_DIR
    cache_dir.mkdir(exist_ok=True)
    specs = io_spec.model_specs(image_size)
    ranges = dim_ranges(image_size)
    profiles = {key: profile(specs[key], ranges) for key in CACHED_ROLES}
    for key in CACHED_ROLES:
        log(f"tensorrt: building the {'fp16' if fp16 else 'fp32'} engine of {models[key]['file']} (profile {profiles[key]['max']} max) ...")
        _build_one(Path(output_dir) / models[key]["file"], provider_options(cache_dir, fp16, profiles[key]),
                   opt_inputs(specs[key], ranges))
    return {"cache_dir": CACHE_DIR, "fp16": fp16, "source_precision": "fp32",
            "onnxruntime": onnxruntime.__version__, "profiles": profiles}
