"""Validation and what follows from it, the same whether it runs per epoch or every metrics_interval steps:
the collapse warning, the best score, best_model.pth, the top-k .ckpt files, previews, metrics.jsonl and the
curves."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from .checkpointing import copy_atomic, save_atomic
from .run_outputs import RunOutputs
from .tasks import Task
from .top_k import TopKCheckpoints
from .validation import val_record, warn_if_collapsed


class Evaluator:
    """Runs validation (`validate` returns (figures, previews)) and keeps the checkpoints it decides.

    Only the process holding `outputs` (rank 0) writes; every rank must call `run` (validation is a collective).
    curves.png is redrawn at most every `plot_every_s` seconds and at the last step (drawing costs about a
    second, as much as a small validation).
    """

    def __init__(self, validate: Callable[[], tuple[dict, list[dict]]], task: Task, outputs: RunOutputs | None,
                 save_top_k: int, is_main: bool, total_steps: int, plot_every_s: float = 60.0):
        self.validate, self.task, self.outputs, self.is_main = validate, task, outputs, is_main
        self.total_steps, self.plot_every_s, self.plotted_at = total_steps, plot_every_s, time.monotonic()
        self.top_k = TopKCheckpoints(outputs.run_dir, save_top_k) if outputs else None
        self.best_miou = -1.0
        self.collapse: str | None = None
        self.last: dict | None = None  # the latest validation's figures

    def run(self, record: dict, make_checkpoint: Callable[[dict], dict], epoch: int, save_latest: bool = False,
            before_saving: Callable[[dict], None] | None = None) -> tuple[dict, bool]:
        """Validate, then write what the result calls for.

        Arguments:
          record: the metrics record so far (epoch, step, lr, train figures); validation figures are added.
          make_checkpoint: the checkpoint dict holding the finished record (called once, rank 0 only).
          epoch: epochs trained, for preview names (0 = the starting weights).
          save_latest: also write latest_model.pth.
          before_saving: called with the validation figures before the checkpoint is made (every rank), for
            state that follows validation (the dynamic distillation lambda).
        Returns:
          (the full record, whether it is a new best).
        """
        val, previews = self.validate()
        self.last = val
        if before_saving is not None:
            before_saving(val)
        if self.is_main and record["step"] > 0:
            self.collapse = warn_if_collapsed(val, self.collapse)
        is_best = val["miou"] > self.best_miou
        self.best_miou = max(self.best_miou, val["miou"])
        record = {**record, **val_record(val), "best_miou": self.best_miou}
        if self.outputs:
            self._save(make_checkpoint(record), record["step"], val["miou"], save_latest, is_best)
            self.task.write_previews(self.outputs, previews, epoch, is_best)
            self.outputs.metrics(record)
            if record["step"] == self.total_steps or time.monotonic() - self.plotted_at >= self.plot_every_s:
                self.outputs.plot_curves()
                self.plotted_at = time.monotonic()
        return record, is_best

    def _save(self, ckpt: dict, step: int, score: float, save_latest: bool, is_best: bool) -> None:
        """Serialize the checkpoint once; every further file is a copy of the first."""
        written: Path | None = None

        def write(path: Path) -> Path:
            nonlocal written
            written = save_atomic(ckpt, path) if written is None else copy_atomic(written, path)
            return written

        # best before latest: a kill between the two then redoes this validation from the previous latest,
        # which writes the best again.
        if is_best:
            write(self.outputs.run_dir / "best_model.pth")
        if save_latest:
            write(self.outputs.run_dir / "latest_model.pth")
        if step > 0:  # the starting weights are the first best, not a finetuned checkpoint
            self.top_k.offer(step, score, write)
