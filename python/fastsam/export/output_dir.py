"""Where an export is written: a staging directory beside the output directory, moved into place only
when the export succeeded, so a failed run never leaves (or spoils) something that looks like a model."""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .manifest import MANIFEST_NAME

STAGING_PREFIX = ".sam-export-partial-"


def check_output_dir(output_dir: Path) -> Path:
    """Check that ``output_dir`` can receive an export: not a file, and its parent (created if missing)
    writable, since the staging directory is made there. The output directory itself is created only
    when an export succeeds.

    Raises:
      PermissionError / NotADirectoryError: with a message naming the directory.
    """
    output_dir = Path(output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise NotADirectoryError(f"output directory {output_dir} exists and is not a directory")
    try:
        output_dir.parent.mkdir(parents=True, exist_ok=True)
        probe = output_dir.parent / f"{STAGING_PREFIX}write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise PermissionError(f"output directory {output_dir} is not writable ({err.strerror or err})") from err
    return output_dir


@contextmanager
def staging_dir(output_dir: Path) -> Iterator[Path]:
    """A fresh directory beside ``output_dir`` (same file system, so moving out of it is a rename);
    it is removed on leaving, whether the export succeeded or not."""
    output_dir = Path(output_dir)
    staging = Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{output_dir.name}-", dir=output_dir.parent))
    # mkdtemp makes it private (0700); the published output directory gets the usual umask permissions.
    umask = os.umask(0)
    os.umask(umask)
    staging.chmod(0o777 & ~umask)
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def publish(staging: Path, output_dir: Path) -> None:
    """Move a finished export from ``staging`` into ``output_dir``.

    A new (or empty) output directory is one rename. An existing one keeps files that are not part of an
    export; the old export's manifest goes first and the new one lands last, so at no moment does the
    directory hold a manifest that disagrees with its model files.
    """
    staging, output_dir = Path(staging), Path(output_dir)
    if output_dir.is_dir() and not any(output_dir.iterdir()):
        output_dir.rmdir()
    if not output_dir.exists():
        os.replace(staging, output_dir)
        return
    stale = _exported_files(output_dir)
    (output_dir / MANIFEST_NAME).unlink(missing_ok=True)
    new_files = [path for path in staging.iterdir() if path.name != MANIFEST_NAME]
    for path in new_files:
        os.replace(path, output_dir / path.name)
    for name in stale - {path.name for path in new_files}:
        (output_dir / name).unlink(missing_ok=True)
    os.replace(staging / MANIFEST_NAME, output_dir / MANIFEST_NAME)


def _exported_files(directory: Path) -> set[str]:
    """Model and engine file names listed in ``directory``'s manifest (empty when it has none or it is unreadable)."""
    try:
        old = json.loads((directory / MANIFEST_NAME).read_text())
        entries = [*old.get("models", {}).values(), *(old.get("tensorrt") or {}).values()]
        return {Path(entry["file"]).name for entry in entries}
    except (OSError, ValueError, AttributeError, KeyError, TypeError):
        return set()
