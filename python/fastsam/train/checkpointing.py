"""Training checkpoints: one dict (model, optimizer, scheduler, scaler, epoch, step, RNG, config, metrics),
written atomically so a kill never leaves a half-written file.

"epoch" is the number of finished epochs, which is also the log's (1-based) number of the last one; 0 = the
starting weights. A mid-epoch checkpoint adds "partial_epoch" with the 1-based number of the epoch it stopped in.
"""
from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

import numpy as np
import torch


def rng_state() -> dict:
    """Python, numpy and torch RNG states in types torch.load(weights_only=True) accepts."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class CheckpointWriteError(OSError):
    """A checkpoint could not be written (full disk, lost mount, ...); what was on disk before is unchanged."""


def _write_atomic(path: str | Path, write) -> Path:
    """`write(tmp)` a temporary file in the same folder, then rename it over `path` (a failed write leaves
    neither a half-written `path` nor the temporary file).

    Raises:
      CheckpointWriteError: naming `path` and the system's reason, when the write or the rename fails.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        if isinstance(err, OSError) and not isinstance(err, CheckpointWriteError):
            failed = CheckpointWriteError(f"could not write {path}: {err.strerror or err}; the file there before "
                                          "(if any) is unchanged; free space on that disk or set output_dir to "
                                          "another folder, then --resume from latest_model.pth")
            failed.errno = err.errno
            raise failed from err
        raise
    return path


def save_atomic(obj: object, path: str | Path) -> Path:
    """torch.save `obj` to `path` atomically."""
    return _write_atomic(path, lambda tmp: torch.save(obj, tmp))


def copy_atomic(source: str | Path, path: str | Path) -> Path:
    """Give a written checkpoint a second name atomically: a hard link (no bytes written; safe because
    checkpoint files are only ever replaced by rename, never rewritten in place), or a copy where the file
    system has no links."""
    return _write_atomic(path, lambda tmp: _link_or_copy(Path(source), tmp))


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def load_training_checkpoint(path: str | Path) -> dict:
    """Read a checkpoint written by the trainer (needs the full dict, not only weights)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--resume checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for corrupt or foreign files
        raise ValueError(f"could not read --resume checkpoint {path}: {str(err).splitlines()[0]}") from err
    needed = ("model", "optimizer", "scheduler", "epoch", "step", "rng", "config")
    missing = [k for k in needed if not isinstance(ckpt, dict) or k not in ckpt]
    if missing:
        raise ValueError(f"{path} is not a sam-train checkpoint (missing {', '.join(missing)}); "
                         "--resume needs latest_model.pth or best_model.pth from a run folder")
    return ckpt
