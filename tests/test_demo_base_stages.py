"""demo_base's stage runner: finished stages are reused, an interrupted one resumes, each starts from the last best."""
from __future__ import annotations

import json

import pytest

from fastsam.train import demo_base


@pytest.fixture()
def fake_train(monkeypatch):
    """Record train() calls instead of training; write what a finished run leaves."""
    calls = []

    def train(cfg, resume=None):
        calls.append({"run": cfg.run_name, "checkpoint": cfg.checkpoint, "resume": resume})
        cfg.run_dir.mkdir(parents=True, exist_ok=True)
        (cfg.run_dir / "best_model.pth").write_bytes(b"x")
        return {"best_miou": 0.5}

    monkeypatch.setattr(demo_base, "train", train)
    return calls


def _stage(tmp_path, name):
    return dict(demo_base.BASE_CONFIG, run_name=name, output_dir=str(tmp_path))


def test_stages_chain_and_finished_ones_are_reused(tmp_path, fake_train):
    first = demo_base.run_stage(_stage(tmp_path, "one"), None)
    second = demo_base.run_stage(_stage(tmp_path, "two"), first)
    assert fake_train == [{"run": "one", "checkpoint": None, "resume": None},
                          {"run": "two", "checkpoint": str(first), "resume": None}]
    assert json.loads((second.parent / "stage_done.json").read_text()) == {"best_miou": 0.5}
    # A rerun trains nothing: both stages say they finished.
    assert demo_base.run_stage(_stage(tmp_path, "one"), None) == first
    assert demo_base.run_stage(_stage(tmp_path, "two"), first) == second
    assert len(fake_train) == 2


def test_interrupted_stage_resumes_from_its_latest_checkpoint(tmp_path, fake_train):
    run_dir = tmp_path / demo_base.BASE_CONFIG["project_name"] / "one"
    run_dir.mkdir(parents=True)
    (run_dir / "latest_model.pth").write_bytes(b"partial")  # left by Ctrl-C, no stage_done.json
    demo_base.run_stage(_stage(tmp_path, "one"), None)
    assert fake_train[0]["resume"] == run_dir / "latest_model.pth"

