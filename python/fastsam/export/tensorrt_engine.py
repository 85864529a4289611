"""TensorRT engines (``encoder.engine``, ``decoder.engine``) built from the exported ONNX graphs."""
from __future__ import annotations


class TensorRTUnavailable(RuntimeError):
    """TensorRT or a CUDA GPU is missing; the message is one line saying which."""


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
