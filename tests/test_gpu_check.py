"""benchmarks/gpu_check.py on a machine without a GPU: a clear message and exit status 2, nothing written; and
its own code path run on the CPU at a tiny size (so the script cannot rot before a GPU runs it)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"


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
