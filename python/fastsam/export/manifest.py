"""``manifest.json``: what the runtime needs to know about an export directory."""
from __future__ import annotations

import hashlib
import json
import platform
from pathlib import Path

from . import io_spec

MANIFEST_NAME = "manifest.json"


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def library_versions() -> dict[str, str]:
    """Versions of the libraries that shaped the exported graphs."""
    import numpy
    import onnx
    import onnxruntime
    import torch

    from .. import __version__

    return {
        "fastsam": __version__,
        "torch": torch.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
        "numpy": numpy.__version__,
        "python": platform.python_version(),
    }


def model_entry(output_dir: Path, spec: io_spec.ModelSpec, file_name: str, precision: str) -> dict:
    """The manifest record of one written graph (names/shapes from ``spec``, sha256 of the file)."""
    path = Path(output_dir) / file_name
    if not path.is_file():
        raise FileNotFoundError(f"cannot list {path} in the manifest: file not found")
    return {
        "file": file_name,
        "inputs": [t.to_json() for t in spec.inputs],
        "outputs": [t.to_json() for t in spec.outputs],
        "sha256": sha256_file(path),
        "bytes": path.stat().st_size,
        "precision": precision,
    }


def _shortest_float32(value) -> float:
    # The model keeps mean/std as float32 buffers; write 123.675, not 123.67500305175781.
    import numpy

    return float(str(numpy.float32(value)))


def build_manifest(
    *,
    model_type: str,
    image_size: int,
    mask_threshold: float,
    pixel_mean: list[float],
    pixel_std: list[float],
    opset: int,
    models: dict[str, dict],
    parity: dict,
    quantization: dict | None = None,
    extra: dict | None = None,
) -> dict:
    """Assemble the manifest dict (format in notes/onnx_interface.md, ``format_version`` 1)."""
    manifest = {
        "format_version": io_spec.FORMAT_VERSION,
        "model_type": model_type,
        "image_size": int(image_size),
        "mask_threshold": float(mask_threshold),
        "pixel_mean": [_shortest_float32(v) for v in pixel_mean],
        "pixel_std": [_shortest_float32(v) for v in pixel_std],
        "opset": int(opset),
        "models": models,
        "versions": library_versions(),
        "parity": parity,
        "quantization": quantization or {},
    }
    manifest.update(extra or {})
    return manifest


def write_manifest(output_dir: Path, manifest: dict) -> Path:
    """Write ``manifest.json`` into ``output_dir``; returns its path."""
    path = Path(output_dir) / MANIFEST_NAME
    path.write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n")
    return path


def read_manifest(output_dir: Path) -> dict:
    """Read and minimally validate ``manifest.json`` from an export directory.

    Raises:
      FileNotFoundError: no manifest.json in ``output_dir``.
      ValueError: unsupported ``format_version`` or no ``models`` entry.
    """
    path = Path(output_dir) / MANIFEST_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: is {output_dir} a sam-export output directory?")
    manifest = json.loads(path.read_text())
    if manifest.get("format_version") != io_spec.FORMAT_VERSION:
        raise ValueError(
            f"{path}: format_version {manifest.get('format_version')!r} is not supported "
            f"(expected {io_spec.FORMAT_VERSION})"
        )
    if not isinstance(manifest.get("models"), dict) or not manifest["models"]:
        raise ValueError(f"{path}: 'models' must be a non-empty object")
    return manifest
