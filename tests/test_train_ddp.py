"""Two gloo processes launched by torchrun train the same model as one process with the same global batch (prompt
mode, and everything mode, whose chunked backward takes gradients inside the DDP-wrapped forward)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import fastsam
from fastsam.data.synthetic import generate_synthetic_dataset


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["prompt", "everything"])
def test_two_process_ddp_equals_single_process(tmp_path, mode):
    from fastsam.train.config import load_config
    from fastsam.train.trainer import train
    from test_train_everything import _everything_layout

    root = generate_synthetic_dataset(tmp_path / "data", num_train=4, num_val=2, size=64, objects=(2, 3), seed=7)
    train_dir, val_dir = (root / "train", root / "val") if mode == "prompt" else (
        _everything_layout(root, "train"), _everything_layout(root, "val"))
    images, masks = ("images", "masks") if mode == "prompt" else ("image", "mask")
    config = {
        "output_dir": str(tmp_path / "runs"), "train_img_dir": str(train_dir / images),
        "train_mask_dir": str(train_dir / masks), "val_img_dir": str(val_dir / images),
        "val_mask_dir": str(val_dir / masks), "img_size": 64, "batch_size": 2, "num_epochs": 2,
        "freeze": {"image_encoder": True, "prompt_encoder": True}, "learning_rate": 1e-3, "box_jitter": 0.1,
        "num_val_overlays": 0, "device": "cpu",
        # 3 x 3 grid points decoded 4 at a time: three chunks per image
        **({"dataset": {"mode": "everything", "grid_points": 3}, "prediction_batch_size": 4} if mode == "everything" else {}),
    }
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    env = dict(os.environ, OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(Path(fastsam.__file__).parents[1]), os.environ.get("PYTHONPATH", "")]))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "fastsam.cli.train", "--config", str(path), "--set", "run_name=ddp"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        single = load_config(path, ["run_name=single"])
        record = train(single)
    finally:
        torch.set_num_threads(before)
    ddp_dir = single.run_dir.parent / "ddp"
    ddp_metrics = [json.loads(line) for line in (ddp_dir / "metrics.jsonl").read_text().splitlines()]
    assert ddp_metrics[-1]["val_objects"] == record["val_objects"]  # every val object counted once over ranks
    assert ddp_metrics[-1]["val_miou"] == pytest.approx(record["val_miou"], abs=1e-4)
    assert ddp_metrics[-1]["train_loss"] == pytest.approx(record["train_loss"], rel=1e-4)
    a = torch.load(ddp_dir / "latest_model.pth", map_location="cpu", weights_only=False)["model"]
    b = torch.load(single.run_dir / "latest_model.pth", map_location="cpu", weights_only=False)["model"]
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-5), key
