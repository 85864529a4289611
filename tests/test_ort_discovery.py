"""CMake finds ONNX Runtime inside either Python wheel (``onnxruntime`` or ``onnxruntime-gpu``).

Both wheels install the same ``onnxruntime`` package with ``capi/libonnxruntime.so.<version>`` (since ONNX
Runtime 1.19); the GPU one adds the CUDA/TensorRT provider libraries beside it. A fake GPU-wheel layout (the
real CPU library under the GPU wheel's files) is put first on PYTHONPATH and only CMake's configure step runs
(cpp/cmake/FastsamOnnxRuntime.cmake), so no multi-GB download and no compiler run is needed.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _headers() -> Path:
    for base in (os.environ.get("FASTSAM_ORT_HEADERS_DIR"), Path.home() / ".cache/fastsam/ort-headers",
                 "/usr/include/onnxruntime"):
        if base and Path(base).is_dir():
            hits = sorted(Path(base).rglob("onnxruntime_cxx_api.h"))
            if hits:
                return hits[0].parent
    pytest.skip("no ONNX Runtime headers here (cpp/scripts/fetch_ort_headers.sh fetches them)")


def _real_library() -> Path:
    import onnxruntime

    libs = sorted(Path(onnxruntime.__file__).parent.glob("capi/libonnxruntime.so.*"))
    if not libs:
        pytest.skip("the installed onnxruntime wheel has no capi/libonnxruntime.so.* (ONNX Runtime < 1.19)")
    return libs[-1]


def _fake_gpu_wheel(site: Path, version: str) -> Path:
    """site/onnxruntime as onnxruntime-gpu lays it out; returns its library."""
    capi = site / "onnxruntime" / "capi"
    capi.mkdir(parents=True)
    (site / "onnxruntime" / "__init__.py").write_text(f"__version__ = {version!r}\n")
    library = capi / f"libonnxruntime.so.{version}"
    library.symlink_to(_real_library())
    for provider in ("cuda", "tensorrt", "shared"):
        (capi / f"libonnxruntime_providers_{provider}.so").write_bytes(b"")
    dist = site / f"onnxruntime_gpu-{version}.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: onnxruntime-gpu\nVersion: {version}\n")
    return library


def _configure(tmp_path: Path, site: Path) -> subprocess.CompletedProcess:
    if shutil.which("cmake") is None:
        pytest.skip("cmake is not installed")
    project = tmp_path / "project"
    project.mkdir()
    (project / "CMakeLists.txt").write_text(
        "cmake_minimum_required(VERSION 3.18)\nproject(ort_discovery NONE)\n"
        f'include("{REPO}/cpp/cmake/FastsamOnnxRuntime.cmake")\nfastsam_find_onnxruntime()\n'
        'message(STATUS "found=${FASTSAM_ORT_SOURCE}|${FASTSAM_ORT_LIBRARY}")\n')
    python = tmp_path / "python"  # the interpreter CMake asks, with the fake wheel first on its path
    python.write_text(f'#!/bin/sh\nPYTHONPATH="{site}" exec "{sys.executable}" "$@"\n')
    python.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k not in ("ONNXRUNTIME_ROOT", "FASTSAM_ORT_HEADERS_DIR")}
    return subprocess.run(
        ["cmake", "-S", str(project), "-B", str(tmp_path / "build"), f"-DPython_EXECUTABLE={python}",
         f"-DONNXRUNTIME_INCLUDE_DIR={_headers()}", "-DFASTSAM_FETCH_ORT_HEADERS=OFF",
         "-DFASTSAM_REQUIRE_ONNXRUNTIME=ON", "-DCMAKE_DISABLE_FIND_PACKAGE_onnxruntime=ON"],
        capture_output=True, text=True, env=env, timeout=120)


def test_cmake_finds_the_library_of_the_gpu_wheel(tmp_path):
    import onnxruntime

    site = tmp_path / "site"
    library = _fake_gpu_wheel(site, onnxruntime.__version__)
    result = _configure(tmp_path, site)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"found=python|{library}" in result.stdout, result.stdout
    # The loader name the extension links against points at the wheel's versioned file.
    staged = tmp_path / "build" / "_onnxruntime" / "lib" / "libonnxruntime.so.1"
    assert staged.resolve() == library.resolve()


def test_cmake_refuses_a_wheel_older_than_the_headers(tmp_path):
    site = tmp_path / "site"
    _fake_gpu_wheel(site, "1.5.0")  # API 5: older than any headers the project uses
    result = _configure(tmp_path, site)
    assert result.returncode != 0
    assert "newer than the onnxruntime 1.5.0 library" in result.stdout + result.stderr
