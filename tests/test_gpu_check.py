"""The GPU checks on a machine without a GPU.

benchmarks/gpu_check.py (training): a clear message and exit status 2, nothing written, and its own code path
run on the CPU at a tiny size (so it cannot rot before a GPU runs it). benchmarks/gpu_check.sh (the one command,
deployment then training): says "no GPU" and why, and exits 0.
"""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "gpu_check.py"


@pytest.fixture(scope="module")
def gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_without_cuda_it_says_so_and_exits_2(gpu_check, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = tmp_path / "result.json"
    assert gpu_check.main(["--out", str(out)]) == 2
    assert "gpu_check: no CUDA device" in capsys.readouterr().err
    assert not out.exists()


def test_bad_argument_is_named(gpu_check, capsys):
    with pytest.raises(SystemExit) as exited:
        gpu_check.main(["--steps", "0"])
    assert exited.value.code == 2 and "--steps must be >= 1, got 0" in capsys.readouterr().err


def test_cpu_run_of_the_script_trains_and_records(gpu_check, tmp_path):
    import json

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        out = tmp_path / "cpu.json"
        status = gpu_check.main(["--device", "cpu", "--models", "vit_t", "--steps", "2", "--img-size", "64",
                                 "--batch-size", "1", "--no-ddp", "--out", str(out)])
    finally:
        torch.set_num_threads(before)
    results = json.loads(out.read_text())["results"]
    assert status == 0, results
    assert [r["check"] for r in results] == ["train vit_t"]
    assert results[0]["status"] == "passed" and results[0]["steps"] == 2 and results[0]["s_per_step"] > 0


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
    assert "no GPU: the training check" in result.stdout  # gpu_check.py ran too and said so


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
