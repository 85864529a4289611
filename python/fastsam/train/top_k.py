"""The k best validations' checkpoints, named ``{step}-{val_per_mask_iou:.2f}.ckpt`` as the seed-003 finetuner
names them. A new file is written (atomically) before any older one is deleted, so the best copy is never lost."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Callable

_NAME = re.compile(r"^(\d+)-(\d+\.\d+)\.ckpt$")


def ckpt_name(step: int, score: float) -> str:
    return f"{step}-{score:.2f}.ckpt"


def parse_ckpt_name(name: str) -> tuple[int, float] | None:
    """(step, score) of a top-k file name; None for any other name."""
    match = _NAME.match(name)
    return None if match is None else (int(match.group(1)), float(match.group(2)))


class TopKCheckpoints:
    """Keeps at most k checkpoints in `folder`, highest score first (an earlier step wins a tie).

    Files already there (a resumed run) count with the 2-decimal score of their names.
    """

    def __init__(self, folder: str | Path, k: int):
        if k < 0:
            raise ValueError(f"top-k needs k >= 0, got {k}")
        self.folder, self.k = Path(folder), k
        self.kept: list[tuple[float, int, Path]] = []
        for path in self.folder.glob("*.ckpt"):
            parsed = parse_ckpt_name(path.name)
            if parsed is not None:
                self.kept.append((parsed[1], parsed[0], path))
        self._sort()

    def _sort(self) -> None:
        self.kept.sort(key=lambda entry: (-entry[0], entry[1]))

    def paths(self) -> list[Path]:
        return [path for _, _, path in self.kept]

    def discard_after(self, step: int) -> None:
        """Delete files of steps after `step` (a killed run's, written after the checkpoint a resume starts from)."""
        for entry in [e for e in self.kept if e[1] > step]:
            entry[2].unlink(missing_ok=True)
            self.kept.remove(entry)

    def offer(self, step: int, score: float, write: Callable[[Path], Path]) -> Path | None:
        """When `score` is among the k best so far, `write` the checkpoint (atomically) to its top-k path, then
        delete what fell out; returns the new path."""
        if self.k == 0 or (len(self.kept) >= self.k and score <= self.kept[self.k - 1][0]):
            return None
        path = write(self.folder / ckpt_name(step, score))
        self.kept = [e for e in self.kept if e[2] != path] + [(score, step, path)]
        self._sort()
        for _, _, old in self.kept[self.k:]:
            old.unlink(missing_ok=True)
        self.kept = self.kept[:self.k]
        return path
