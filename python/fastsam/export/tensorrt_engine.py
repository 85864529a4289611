"""TensorRT engines (``encoder.engine``, ``decoder.engine``) built from the exported ONNX graphs.

- ``encoder.engine`` from encoder.onnx: one optimisation profile over batch, height and width.
- ``decoder.engine`` from decoder_batched.onnx: profiles over the number of prompts and points.
  The official decoder's ``orig_im_size`` cannot go into an engine: its VALUES set the output
  shape, and TensorRT only accepts that for integer shape tensors computed with integer ops,
  while SAM's interface feeds it as float32 and rescales it in float. The engine therefore ends
  at the 256x256 low-res logits and the runtime upscales (as it does for decoder_batched.onnx).
- precision ``fp16`` or ``int8``; int8 uses an entropy calibrator over the same calibration
  images as ``--quantize`` (layers TensorRT cannot run in int8 fall back to fp16).

Needs the ``tensorrt`` package, a CUDA GPU and a CUDA build of torch (for the calibrator's device
buffers). This module imports TensorRT lazily so the rest of the export works without it.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from . import io_spec


class TensorRTUnavailable(RuntimeError):
    """TensorRT or a CUDA GPU is missing; the message is one line saying which."""


class TensorRTBuildError(RuntimeError):
    """TensorRT could not parse a graph or build an engine; the message carries its errors."""


def _cuda_device_count() -> int:
    try:
        import torch

        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    except Exception:  # a broken CUDA install counts as no GPU
        return 0


def require_tensorrt():
    """Return the ``tensorrt`` module, or raise TensorRTUnavailable with a one-line reason."""
    try:
        import tensorrt
    except ImportError as err:
        raise TensorRTUnavailable(
            "--tensorrt needs the TensorRT Python package and an NVIDIA GPU: 'import tensorrt' failed "
            f"({err}); install it with 'pip install tensorrt' on a CUDA machine"
        ) from None
    if _cuda_device_count() == 0:
        raise TensorRTUnavailable("--tensorrt needs an NVIDIA GPU, but CUDA reports no device on this machine")
    return tensorrt


@dataclass(frozen=True)
class Profile:
    """min/opt/max shapes of one dynamic input."""

    name: str
    min: tuple[int, ...]
    opt: tuple[int, ...]
    max: tuple[int, ...]


def encoder_profiles(image_size: int = 1024, max_batch: int = 4) -> list[Profile]:
    """Batch 1..max_batch, H and W from image_size/4 up to image_size (one side equals it in use)."""
    low = image_size // 4
    return [Profile(io_spec.IMAGE, (1, 3, low, low), (1, 3, image_size * 3 // 4, image_size),
                    (max_batch, 3, image_size, image_size))]


def decoder_profiles(image_size: int = 1024, max_prompts: int = 256, max_points: int = 16) -> list[Profile]:
    """Prompts 1..max_prompts (opt 64: one AMG batch), points 1..max_points (opt 2: box or point+pad)."""
    m = image_size // 4
    opt_prompts = min(64, max_prompts)
    return [
        Profile(io_spec.POINT_COORDS, (1, 1, 2), (opt_prompts, 2, 2), (max_prompts, max_points, 2)),
        Profile(io_spec.POINT_LABELS, (1, 1), (opt_prompts, 2), (max_prompts, max_points)),
        Profile(io_spec.MASK_INPUT, (1, 1, m, m), (opt_prompts, 1, m, m), (max_prompts, 1, m, m)),
    ]


class _DeviceBatches:
    """Calibration batches copied to one reusable CUDA buffer (torch owns the memory)."""

    def __init__(self, batches: Iterable[np.ndarray], shape: tuple[int, ...]) -> None:
        import torch

        self._iterator = iter(batches)
        self._shape = shape
        self._buffer = torch.empty(shape, dtype=torch.float32, device="cuda")

    def next_pointer(self) -> int | None:
        import torch

        batch = next(self._iterator, None)
        if batch is None:
            return None
        if tuple(batch.shape) != self._shape:
            raise ValueError(f"calibration batch has shape {batch.shape}, expected {self._shape}")
        self._buffer.copy_(torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)))
        return int(self._buffer.data_ptr())


def make_calibrator(trt, batches: Iterable[np.ndarray], shape: tuple[int, ...], cache_file: Path):
    """An ``IInt8EntropyCalibrator2`` over encoder inputs of one fixed ``shape`` (the calibration profile).

    Arguments:
      trt: the tensorrt module.
      batches: float32 arrays of ``shape`` (B,3,H,W), 0..255.
      cache_file: calibration cache (reused when it exists, so rebuilding skips calibration).
    """
    class EncoderCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self) -> None:
            super().__init__()
            self._batches = _DeviceBatches(batches, shape)

        def get_batch_size(self) -> int:
            return shape[0]

        def get_batch(self, names):
            pointer = self._batches.next_pointer()
            return None if pointer is None else [pointer]

        def read_calibration_cache(self):
            return cache_file.read_bytes() if cache_file.is_file() else None

        def write_calibration_cache(self, cache) -> None:
            cache_file.write_bytes(bytes(cache))

    return EncoderCalibrator()


def _parse(trt, builder, logger, onnx_path: Path):
    network = builder.create_network(0 if int(trt.__version__.split(".")[0]) >= 10
                                      else 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(Path(onnx_path).read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise TensorRTBuildError(f"TensorRT could not parse {onnx_path}: {errors}")
    return network, parser


def build_engine(onnx_path: Path, engine_path: Path, profiles: list[Profile], precision: str = "fp16",
                 calibration_batches: Callable[[], Iterable[np.ndarray]] | None = None,
                 calibration_shape: tuple[int, ...] | None = None, workspace_gib: int = 4) -> Path:
    """Build and serialise one TensorRT engine.

    Arguments:
      onnx_path: fp32 ONNX graph.
      engine_path: output .engine file.
      profiles: one optimisation profile's min/opt/max per dynamic input.
      precision: "fp16" or "int8" (int8 also enables fp16 for layers without int8 kernels).
      calibration_batches: for int8, a callable returning fresh calibration arrays of ``calibration_shape``.
      workspace_gib: builder workspace limit.
    Returns:
      engine_path.
    """
    if precision not in ("fp16", "int8"):
        raise ValueError(f"precision must be 'fp16' or 'int8', got {precision!r}")
    if precision == "int8" and (calibration_batches is None or calibration_shape is None):
        raise ValueError("int8 engines need calibration_batches and calibration_shape")
    trt = require_tensorrt()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    # The parser owns weights the network points to: keep it alive until the build is done.
    network, _parser = _parse(trt, builder, logger, onnx_path)
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_gib << 30)
    config.set_flag(trt.BuilderFlag.FP16)
    profile = builder.create_optimization_profile()
    for item in profiles:
        profile.set_shape(item.name, item.min, item.opt, item.max)
    config.add_optimization_profile(profile)
    if precision == "int8":
        config.set_flag(trt.BuilderFlag.INT8)
        calib_profile = builder.create_optimization_profile()
        name = network.get_input(0).name
        calib_profile.set_shape(name, calibration_shape, calibration_shape, calibration_shape)
        config.set_calibration_profile(calib_profile)
        config.int8_calibrator = make_calibrator(trt, calibration_batches(), calibration_shape,
                                                 Path(engine_path).with_suffix(".calib.cache"))
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise TensorRTBuildError(f"TensorRT failed to build an engine from {onnx_path} (see its log above)")
    Path(engine_path).write_bytes(bytes(serialized))
    return Path(engine_path)


def calibration_batches_for_engine(inputs: Iterable[np.ndarray], image_size: int = 1024) -> Iterable[np.ndarray]:
    """Encoder inputs (1,3,h,w) resized to the fixed (1,3,S,S) calibration shape TensorRT needs.

    Stretching keeps every pixel's value range, which is what entropy calibration measures.
    """
    import torch
    from torch.nn import functional as F

    for x in inputs:
        tensor = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        yield F.interpolate(tensor, size=(image_size, image_size), mode="bilinear", align_corners=False).numpy()


def build_engines(output_dir: Path, image_size: int, precision: str,
                  calibration_inputs: Callable[[], Iterable[np.ndarray]] | None, log: Callable[[str], None]) -> dict:
    """Build encoder.engine and decoder.engine next to the ONNX files; returns a manifest fragment."""
    output_dir = Path(output_dir)
    engines = {}
    shape = (1, 3, image_size, image_size)
    log(f"tensorrt: building encoder.engine ({precision}) ...")
    build_engine(output_dir / "encoder.onnx", output_dir / "encoder.engine", encoder_profiles(image_size), precision,
                 (lambda: calibration_batches_for_engine(calibration_inputs(), image_size)) if calibration_inputs else None,
                 shape if calibration_inputs else None)
    engines["encoder_engine"] = {"file": "encoder.engine", "source": "encoder.onnx", "precision": precision,
                                 "profiles": [p.__dict__ for p in encoder_profiles(image_size)]}
    # The decoders' int8 comes from --quantize; the engine keeps fp16 (its activations are tiny).
    log("tensorrt: building decoder.engine (fp16, from decoder_batched.onnx) ...")
    build_engine(output_dir / "decoder_batched.onnx", output_dir / "decoder.engine", decoder_profiles(image_size), "fp16")
    engines["decoder_engine"] = {"file": "decoder.engine", "source": "decoder_batched.onnx", "precision": "fp16",
                                 "profiles": [p.__dict__ for p in decoder_profiles(image_size)]}
    return engines
