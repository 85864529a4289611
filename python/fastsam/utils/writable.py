"""Output folders checked for writing before any work starts, so a read-only or unwritable destination is one
clear message at the start, not a traceback after minutes of work or a folder left half-written."""
from __future__ import annotations

import os
from pathlib import Path


class NotWritableError(ValueError):
    """An output folder that cannot be created or written (the message names it and what to set instead)."""


def make_writable_dir(path: str | Path, what: str, hint: str) -> Path:
    """Create `path` (parents too) and prove a file can be written there.

    Arguments:
      what: how the user names this folder, e.g. "run folder" or "--output-dir".
      hint: what to do instead, e.g. "set output_dir to a writable folder".
    Raises:
      NotWritableError: naming the folder, the system's reason and `hint`.
    """
    path = Path(path)
    probe = path / f".write-test-{os.getpid()}"
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise NotWritableError(f"{what} {path} is not writable ({err.strerror or err}); {hint}") from err
    return path
