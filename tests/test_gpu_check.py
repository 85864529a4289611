"""benchmarks/gpu_check.sh on a machine without a GPU: it says "no GPU" and why, and exits 0."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_gpu_check_says_no_gpu_and_exits_zero(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is present: run benchmarks/gpu_check.sh itself")
    env = {**os.environ, "PYTHON": sys.executable,
           "PYTHONPATH": os.pathsep.join([str(REPO / "python"), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_check.sh"), str(tmp_path / "out")],
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    line = next(line for line in result.stdout.splitlines() if line.startswith("no GPU:"))
    assert "sees no CUDA device" in line and "did not run" in line, line
    assert not (tmp_path / "out" / "model").exists()  # stopped before exporting anything


def test_gpu_check_deploy_table_and_parity_verdicts():
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        import gpu_check_deploy as check
    finally:
        sys.path.pop(0)
    import numpy as np

    a = np.zeros((2, 4, 4), bool)
    b = a.copy()
    a[0, :2], b[0, 1:3] = True, True  # IoU 4/12; second pair both empty -> 1
    assert check._miou(a, b) == pytest.approx((4 / 12 + 1) / 2)
    report = {"date": "2026-01-01", "gpu": "G", "model": "m", "image_size": 1024, "parity": {"fp32_ok": True},
              "timings": {"rt_tensorrt": {"encoder_ms": 2.5, "decoder_ms": 0.4, "batch64_ms": 9.0, "generator_ms": 80}}}
    table = check.markdown(report)
    assert "| rt_tensorrt | 2.5 | 0.4 | 9.0 | 80 |" in table and "encoder <= 3.0 ms" in table
    assert set(check.runtime_backends(Path("m"), tensorrt=False)) == {"rt_cuda_fp32", "rt_cuda_fp16", "rt_cuda_int8"}
    assert check.runtime_backends(Path("m"), tensorrt=True)["rt_tensorrt"] == {"provider": "tensorrt"}
