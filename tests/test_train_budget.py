"""Step budget, interval metrics and top-k checkpoints: the bookkeeping as units, then tiny vit_t runs
(64 px, encoder frozen, 6 training images at batch 2 = 3 steps per epoch)."""
from __future__ import annotations

import json

import pytest
import torch

from fastsam.data.synthetic import generate_synthetic_dataset
from fastsam.train.config import ConfigError, config_from_dict
from fastsam.train.distributed import DistInfo
from fastsam.train.interval_metrics import IntervalMetrics
from fastsam.train.schedule import get_lr, step_budget
from fastsam.train.top_k import TopKCheckpoints, parse_ckpt_name

ONE = DistInfo(rank=0, local_rank=0, world_size=1)


def test_step_budget_derives_epochs_and_cuts_the_last():
    budget = step_budget(3, num_epochs=10, max_steps=7)
    assert budget.num_epochs == 3 and [budget.steps_in_epoch(e) for e in range(3)] == [3, 3, 1]
    assert step_budget(3, num_epochs=2, max_steps=None).total_steps == 6
    assert step_budget(3, num_epochs=2, max_steps=6).num_epochs == 2
    with pytest.raises(ValueError, match="at least one step"):
        step_budget(0, 1, 7)


@pytest.mark.parametrize("key", ["max_steps", "metrics_interval"])
def test_budget_keys_reject_zero(key):
    with pytest.raises(ConfigError, match=f"'{key}' must be >= 1"):
        config_from_dict({key: 0})


def test_interval_metrics_average_since_the_last_record_and_close_at_the_budget():
    intervals = IntervalMetrics(3, ("focal",), total_steps=7, info=ONE)
    for step, (loss, focal) in enumerate([(1.0, 0.5), (2.0, 0.25), (6.0, 0.0)], start=1):
        intervals.add(loss, {"focal": focal})
        assert intervals.due(step) == (step == 3)
    assert intervals.flush() == {"train_loss": 3.0, "train_focal": 0.25, "train_steps": 3}
    assert [s for s in range(4, 8) if intervals.due(s)] == [6, 7]
    intervals.add(4.0, {"focal": 1.0})
    state = intervals.state()
    fresh = IntervalMetrics(3, ("focal",), total_steps=7, info=ONE)
    fresh.load_state(state)
    fresh.add(2.0, {"focal": 0.0})
    assert fresh.flush()["train_loss"] == 3.0


def test_top_k_keeps_the_best_and_deletes_the_rest(tmp_path):
    from fastsam.train.checkpointing import save_atomic

    def saver(value):
        return lambda path: save_atomic({"s": value}, path)

    top = TopKCheckpoints(tmp_path, 2)
    assert top.offer(10, 0.5, saver(10)).name == "10-0.50.ckpt"
    top.offer(20, 0.7, saver(20))
    assert top.offer(30, 0.4, saver(30)) is None  # below both kept ones: not written
    top.offer(40, 0.6, saver(40))  # pushes out 10-0.50
    assert sorted(p.name for p in tmp_path.iterdir()) == ["20-0.70.ckpt", "40-0.60.ckpt"]
    assert torch.load(tmp_path / "40-0.60.ckpt")["s"] == 40
    assert top.offer(50, 0.6, saver(50)) is None  # a tie goes to the earlier step
    # A resumed run finds the files; those after the resume step belong to the killed run.
    again = TopKCheckpoints(tmp_path, 2)
    assert [p.name for p in again.paths()] == ["20-0.70.ckpt", "40-0.60.ckpt"]
    again.discard_after(30)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["20-0.70.ckpt"]
    assert TopKCheckpoints(tmp_path, 0).offer(60, 0.9, saver(60)) is None
    assert parse_ckpt_name("best_model.pth") is None and parse_ckpt_name("7-0.25.ckpt") == (7, 0.25)


@pytest.fixture(scope="module")
def three_step_root(tmp_path_factory):
    return generate_synthetic_dataset(tmp_path_factory.mktemp("budget"), num_train=6, num_val=1, size=64,
                                      objects=(1, 2), seed=3)


def _cfg(root, out, **extra):
    data = dict(output_dir=str(out), train_img_dir=str(root / "train/images"), train_mask_dir=str(root / "train/masks"),
                val_img_dir=str(root / "val/images"), val_mask_dir=str(root / "val/masks"), img_size=64,
                freeze={"image_encoder": True, "prompt_encoder": True}, batch_size=2, num_epochs=10, max_steps=7,
                metrics_interval=3, save_top_k=2, learning_rate=1e-3, scheduler={"end_lr": 1e-5},
                num_val_overlays=0, seed=0)
    data.update(extra)
    return config_from_dict(data)


def _metrics(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_budget_of_7_steps_with_interval_metrics_and_resume_at_4(three_step_root, tmp_path):
    from fastsam.train.graceful_stop import TrainingStopped
    from fastsam.train.trainer import train

    torch.set_num_threads(1)
    unbroken = _cfg(three_step_root, tmp_path, run_name="unbroken")
    train(unbroken)
    run = unbroken.run_dir
    ckpt = torch.load(run / "latest_model.pth", map_location="cpu", weights_only=False)
    # 7 optimizer steps: the step counter and AdamW's own count of updates per parameter.
    assert ckpt["step"] == 7 and ckpt["epoch"] == 3
    assert {int(s["step"]) for s in ckpt["optimizer"]["state"].values()} == {7}
    records = _metrics(run)
    assert [r["step"] for r in records] == [0, 3, 6, 7]
    assert [r["train_steps"] for r in records[1:]] == [3, 3, 1]
    # The LR decays linearly over the 7-step budget and reaches end_lr at it; each record holds the
    # rate of its last update (0-based step - 1).
    for r in records[1:]:
        assert r["lr"] == pytest.approx(1e-5 + (1e-3 - 1e-5) * (1 - (r["step"] - 1) / 7), rel=1e-9)
    assert get_lr(7, 7, 1e-3, 1e-5) == pytest.approx(1e-5)
    for r in records:  # validation loss beside mIoU, as the training loss is computed
        assert r["val_loss"] == pytest.approx(r["val_loss_focal"] + r["val_loss_dice"] + r["val_loss_iou_mse"], rel=1e-6)
    kept = sorted(p.name for p in run.glob("*.ckpt"))
    assert len(kept) == 2  # of 3 validations after the start
    scores = sorted(((r["val_miou"], -r["step"]) for r in records[1:]), reverse=True)[:2]
    assert kept == sorted(f"{-s}-{m:.2f}.ckpt" for m, s in scores)
    assert (run / "best_model.pth").is_file() and (run / "curves.png").is_file()

    # Stopped at step 4, inside epoch 2 and inside the 4-6 metrics interval: both continue on resume.
    broken = _cfg(three_step_root, tmp_path, run_name="broken")
    with pytest.raises(TrainingStopped):
        train(broken, stop_after_step=4)
    resumed = train(broken, resume=broken.run_dir / "latest_model.pth")
    assert resumed["step"] == 7
    again = _metrics(broken.run_dir)
    assert [r["step"] for r in again] == [0, 3, 6, 7] and again[2]["train_steps"] == 3
    for a, b in zip(records[1:], again[1:]):
        assert (a["train_loss"], a["val_miou"]) == pytest.approx((b["train_loss"], b["val_miou"]), rel=1e-6)
    end = torch.load(broken.run_dir / "latest_model.pth", map_location="cpu", weights_only=False)
    for key, value in ckpt["model"].items():
        assert torch.allclose(value, end["model"][key], atol=1e-6), key


def test_copy_atomic_survives_the_source_being_replaced(tmp_path):
    from fastsam.train.checkpointing import copy_atomic, save_atomic

    best = save_atomic({"s": 1}, tmp_path / "best_model.pth")
    copy_atomic(best, tmp_path / "1-0.50.ckpt")
    save_atomic({"s": 2}, best)  # a later best replaces the file by rename
    assert torch.load(tmp_path / "1-0.50.ckpt")["s"] == 1 and torch.load(best)["s"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["1-0.50.ckpt", "best_model.pth"]  # no temporaries left
