"""kill -9 and resume: a run SIGKILLed at random steps and inside a checkpoint write, resumed each time with
--resume, ends with the same weights and metrics as an unbroken run, and no checkpoint on disk is ever
half-written.

The run is forked from this process (torch already imported, so a child starts in milliseconds) and the child
kills itself with SIGKILL at the chosen moment: no handler, no cleanup, exactly what kill -9 does.
"""
from __future__ import annotations

import json
import os
import random
import signal
import sys
import traceback
from pathlib import Path

import pytest
import torch

from fastsam.data.synthetic import generate_synthetic_dataset
from fastsam.train.config import config_from_dict

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")

TIMING_KEYS = ("steps_per_s",)  # wall-clock figures, the only metrics a kill may change


def _cfg(root: Path, out: Path, run_name: str):
    return config_from_dict(dict(
        output_dir=str(out), run_name=run_name, train_img_dir=str(root / "train/images"),
        train_mask_dir=str(root / "train/masks"), val_img_dir=str(root / "val/images"),
        val_mask_dir=str(root / "val/masks"), img_size=64, batch_size=1, num_epochs=3, box_jitter=0.2,
        freeze={"image_encoder": True, "prompt_encoder": True}, learning_rate=1e-3, num_val_overlays=0,
        checkpoint_every_steps=2, seed=0))


def _in_child(run) -> int:
    """Run `run()` in a forked child; returns the signal that ended it (0 when it exited normally)."""
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        code = 1
        try:
            run()
            code = 0
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        return os.WTERMSIG(status)
    assert os.WEXITSTATUS(status) == 0, "the training child failed (traceback above)"
    return 0


def _kill_at_step(kill_step: int):
    """Make this (child) process SIGKILL itself inside global step `kill_step` (0-based), after the forward pass."""
    import fastsam.train.trainer as trainer

    real = trainer.guarded_step

    def step(guard, loss, items, step, *rest):
        if step == kill_step:
            os.kill(os.getpid(), signal.SIGKILL)
        return real(guard, loss, items, step, *rest)

    trainer.guarded_step = step


def _kill_in_checkpoint_write(nth: int):
    """SIGKILL this (child) process halfway through writing its `nth` checkpoint file (1-based)."""
    real, calls = torch.save, []

    def save(obj, path, *args, **kwargs):
        calls.append(path)
        real(obj, path, *args, **kwargs)
        if len(calls) == nth:
            data = Path(path).read_bytes()
            Path(path).write_bytes(data[: len(data) // 2])
            os.kill(os.getpid(), signal.SIGKILL)

    torch.save = save


def _every_checkpoint_loads(run_dir: Path) -> list[str]:
    names = sorted(p.name for p in run_dir.glob("*.pth"))
    for name in names:
        ckpt = torch.load(run_dir / name, map_location="cpu", weights_only=True)
        assert {"model", "optimizer", "step", "rng"} <= set(ckpt), name
    return names


def _resume_point(run_dir: Path) -> Path | None:
    for name in ("latest_model.pth", "best_model.pth"):
        if (run_dir / name).is_file():
            return run_dir / name
    return None  # killed before the first checkpoint: start afresh


def _metrics(run_dir: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in row.items() if k not in TIMING_KEYS} for row in rows]


def test_sigkill_at_random_steps_and_inside_a_checkpoint_write_then_resume_matches_unbroken(tmp_path):
    from fastsam.train.trainer import train

    root = generate_synthetic_dataset(tmp_path / "data", num_train=4, num_val=1, size=64, objects=(1, 2), seed=3)
    torch.set_num_threads(1)
    unbroken = _cfg(root, tmp_path, "unbroken")
    train(unbroken)  # in this process: the lazy imports (optimizer, plots) are then done once for every child
    total_steps = 12  # 4 images, batch 1, 3 epochs

    broken = _cfg(root, tmp_path, "broken")
    rng = random.Random(15)
    kills = sorted(rng.sample(range(1, total_steps), 2))  # fixed seed: the same "random" steps every run
    # Each entry arms one kill in the child before training (or resuming): two at random steps, then one
    # halfway through the second checkpoint file the resumed child writes.
    arming = [lambda k=k: _kill_at_step(k) for k in kills] + [lambda: _kill_in_checkpoint_write(2)]
    for arm in arming:
        resume = _resume_point(broken.run_dir)

        def killed_run():
            arm()
            train(broken, resume=resume)

        assert _in_child(killed_run) == signal.SIGKILL
        _every_checkpoint_loads(broken.run_dir)
    assert list(broken.run_dir.glob(".*.tmp*")), "the last kill should have hit a checkpoint write"
    final_resume = _resume_point(broken.run_dir)
    assert _in_child(lambda: train(broken, resume=final_resume)) == 0
    assert not list(broken.run_dir.glob(".*.tmp*"))  # the resumed run removed the dead write's temporary file

    assert _every_checkpoint_loads(broken.run_dir) == ["best_model.pth", "latest_model.pth"]
    for name in ("latest_model.pth", "best_model.pth"):
        a = torch.load(unbroken.run_dir / name, map_location="cpu", weights_only=True)
        b = torch.load(broken.run_dir / name, map_location="cpu", weights_only=True)
        assert a["step"] == b["step"] and a["epoch"] == b["epoch"], name
        for key, value in a["model"].items():
            assert torch.equal(value, b["model"][key]), f"{name}: {key}"  # bit-identical (CPU, one thread)
    assert _metrics(broken.run_dir) == _metrics(unbroken.run_dir)
    assert [r["epoch"] for r in _metrics(broken.run_dir)] == [0, 1, 2, 3]
