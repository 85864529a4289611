"""NaN/inf during training (on_nonfinite): a bad step never reaches the weights or a checkpoint; "skip" names the
batch and counts it in metrics.jsonl, "stop" ends the run with the batch named and a non-zero exit."""
from __future__ import annotations

import json
import logging

import pytest
import torch
from click.testing import CliRunner
from torch import nn

from fastsam.data.synthetic import generate_synthetic_dataset
from fastsam.train.nonfinite import NonFiniteGuard, NonFiniteStop, check_finite_weights

ITEMS = [{"image_path": "data/a.png"}, {"image_path": "data/b.png"}]


def test_skip_policy_skips_counts_and_names_the_batch(caplog):
    guard = NonFiniteGuard("skip", max_in_a_row=3)
    with caplog.at_level(logging.WARNING, logger="fastsam.train"):
        assert guard.loss_ok(torch.tensor(0.5), ITEMS, step=0)
        assert not guard.loss_ok(torch.tensor(float("nan")), ITEMS, step=4)
        assert not guard.loss_ok(torch.tensor(float("inf")), ITEMS, step=5)
    assert guard.epoch_count == 2
    assert "non-finite loss nan at step 5, images data/a.png, data/b.png: step skipped" in caplog.text
    assert guard.loss_ok(torch.tensor(1.0), ITEMS, step=6)  # a finite step ends the streak...
    assert not guard.loss_ok(torch.tensor(float("nan")), ITEMS, step=7)
    assert not guard.loss_ok(torch.tensor(float("nan")), ITEMS, step=8)
    with pytest.raises(NonFiniteStop, match=r"step 10, images data/a.png.*3 steps in a row.*max_nonfinite_in_a_row=3"):
        guard.loss_ok(torch.tensor(float("nan")), ITEMS, step=9)  # ...so only now are three in a row
    guard.start_epoch()
    assert guard.epoch_count == 0


def test_stop_policy_raises_at_the_first_bad_value_and_checks_gradients():
    guard = NonFiniteGuard("stop", max_in_a_row=5)
    good, bad = nn.Parameter(torch.ones(2)), nn.Parameter(torch.ones(2))
    good.grad, bad.grad = torch.ones(2), torch.tensor([1.0, float("inf")])
    assert guard.grads_ok([good], ITEMS, step=0)
    with pytest.raises(NonFiniteStop, match=r"non-finite gradient at step 3, images data/a.png, data/b.png "
                                            r"\(on_nonfinite='stop'\).*checkpoints on disk are from earlier"):
        guard.grads_ok([good, bad], ITEMS, step=2)
    with pytest.raises(ValueError, match="on_nonfinite must be 'skip' or 'stop'"):
        NonFiniteGuard("ignore", 1)


def test_a_checkpoint_with_nonfinite_weights_is_refused():
    model = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2))
    check_finite_weights(model, "ckpt")
    with torch.no_grad():
        model[1].bias[0] = float("nan")
    with pytest.raises(NonFiniteStop, match=r"refusing to write ckpt: 1 weight tensor\(s\) hold NaN/inf \(1.bias\)"):
        check_finite_weights(model, "ckpt")


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return generate_synthetic_dataset(tmp_path_factory.mktemp("nan"), num_train=3, num_val=1, size=64,
                                      objects=(1, 2), seed=7)


def _config(root, tmp_path, **extra) -> dict:
    return dict(output_dir=str(tmp_path / "runs"), train_img_dir=str(root / "train/images"),
                train_mask_dir=str(root / "train/masks"), val_img_dir=str(root / "val/images"),
                val_mask_dir=str(root / "val/masks"), img_size=64, batch_size=1, num_epochs=1, learning_rate=1e-3,
                freeze={"image_encoder": True, "prompt_encoder": True}, num_val_overlays=0, **extra)


def _poison_step(monkeypatch, bad_step: int, watched: list):
    """Make global step `bad_step`'s loss NaN (still attached to the graph, so a backward would spread it),
    and record a decoder weight before and after every step."""
    import fastsam.train.trainer as trainer

    real = trainer.guarded_step

    def step(guard, loss, items, step, optimizer, *rest):
        param = optimizer.param_groups[0]["params"][0]
        before = param.detach().clone()
        if step == bad_step:
            loss = loss * float("nan")
        result = real(guard, loss, items, step, optimizer, *rest)
        watched.append((step, result, torch.equal(before, param.detach())))
        return result

    monkeypatch.setattr(trainer, "guarded_step", step)


def test_skip_run_leaves_the_weights_alone_for_the_bad_step_and_logs_it(root, tmp_path, monkeypatch, caplog):
    from fastsam.train.config import config_from_dict
    from fastsam.train.trainer import train

    watched = []
    _poison_step(monkeypatch, 1, watched)
    with caplog.at_level(logging.WARNING, logger="fastsam.train"):
        record = train(config_from_dict(_config(root, tmp_path)))
    assert [(s, trained, same) for s, trained, same in watched] == [(0, True, False), (1, False, True), (2, True, False)]
    assert record["nonfinite_steps"] == 1 and torch.isfinite(torch.tensor(record["train_loss"]))
    assert "non-finite loss nan at step 2, images" in caplog.text and "train_" in caplog.text
    rows = [json.loads(line) for line in (tmp_path / "runs/fastsam/run/metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["nonfinite_steps"] == 1
    ckpt = torch.load(tmp_path / "runs/fastsam/run/latest_model.pth", map_location="cpu", weights_only=True)
    assert all(torch.isfinite(t).all() for t in ckpt["model"].values() if t.is_floating_point())


def test_stop_run_exits_non_zero_naming_the_batch_and_keeps_earlier_checkpoints(root, tmp_path, monkeypatch):
    from fastsam.cli.train import main

    _poison_step(monkeypatch, 1, [])
    path = tmp_path / "c.json"
    path.write_text(json.dumps(_config(root, tmp_path, on_nonfinite="stop", checkpoint_every_steps=1)))
    result = CliRunner().invoke(main, ["--config", str(path)])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    assert "Error: non-finite loss nan at step 2, images" in result.output and "on_nonfinite='stop'" in result.output
    run = tmp_path / "runs/fastsam/run"
    latest = torch.load(run / "latest_model.pth", map_location="cpu", weights_only=True)
    assert latest["step"] == 1  # the last finite step's checkpoint; nothing was written after the bad one
    assert all(torch.isfinite(t).all() for t in latest["model"].values() if t.is_floating_point())
