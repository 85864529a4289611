"""What a run writes for people: training_log.txt (via logging), metrics.jsonl, curves PNG, overlays."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from ..image_io import write_png
from ..utils.writable import make_writable_dir
from ..visualize import overlay_masks
from .top_k import parse_ckpt_name


# What one run leaves in its folder; a fresh run removes an earlier run's copies so none outlive their run.
CHECKPOINTS = ("latest_model.pth", "best_model.pth")
RUN_FILES = CHECKPOINTS + ("metrics.jsonl", "curves.png", "training_log.txt")


class RunFolderInUse(ValueError):
    """A fresh run was pointed at a folder holding an earlier run's checkpoint."""

    def __init__(self, run_dir: Path, checkpoint: Path):
        self.run_dir, self.checkpoint = run_dir, checkpoint
        super().__init__(f"run folder {run_dir} already holds an earlier run ({checkpoint.name}): pass --resume "
                         f"{run_dir / 'latest_model.pth'} to continue it, choose another run_name "
                         "(--set run_name=NAME), or --set overwrite=true to replace it")


def check_run_folder_free(run_dir: Path, overwrite: bool) -> None:
    """Refuse to start a run over an earlier one's checkpoints unless `overwrite` says to replace them."""
    held = [Path(run_dir) / name for name in CHECKPOINTS if (Path(run_dir) / name).is_file()]
    if held and not overwrite:
        raise RunFolderInUse(Path(run_dir), held[0])


class EarlyRecords(logging.Handler):
    """Keeps the fastsam log records of the checks made before the run folder exists (bad samples, a random-init
    warning), so training_log.txt can start with them (RunOutputs.attach_log_file)."""

    def __init__(self):
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def __enter__(self) -> "EarlyRecords":
        logging.getLogger("fastsam").addHandler(self)
        return self

    def __exit__(self, *exc) -> None:
        logging.getLogger("fastsam").removeHandler(self)


class RunOutputs:
    """Appends to the run folder's metrics file, redraws the curves, writes overlays."""

    def __init__(self, run_dir: Path):
        self.run_dir = make_writable_dir(run_dir, "run folder", "set output_dir (--set output_dir=DIR) to a "
                                         "writable folder")
        self.metrics_path = self.run_dir / "metrics.jsonl"
        # A kill -9 during save_atomic leaves its temporary file (never a checkpoint's own name): remove it.
        for stale in self.run_dir.glob(".*.tmp*"):
            stale.unlink(missing_ok=True)

    def clear_previous_run(self) -> None:
        """Remove an earlier run's checkpoints, metrics, curves, log and overlays (a fresh run's figures must
        not be appended to, or shown next to, those of a run it replaces)."""
        for name in RUN_FILES:
            (self.run_dir / name).unlink(missing_ok=True)
        for overlay in (self.run_dir / "overlays").glob("best_epoch*_val*.png"):
            overlay.unlink()
        for path in self.run_dir.glob("*.ckpt"):
            if parse_ckpt_name(path.name) is not None:  # the top-k checkpoints (train/top_k.py)
                path.unlink()

    def attach_log_file(self, earlier: list[logging.LogRecord] = ()) -> logging.Handler:
        """Send the fastsam loggers (epoch lines, bad-sample and random-init warnings) to training_log.txt, which
        starts with the `earlier` records (logged before the run folder existed)."""
        handler = logging.FileHandler(self.run_dir / "training_log.txt")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S"))
        for record in earlier:
            handler.handle(record)
        root = logging.getLogger("fastsam")
        root.addHandler(handler)
        if root.getEffectiveLevel() > logging.INFO:
            root.setLevel(logging.INFO)  # the epoch lines are INFO; the file must hold them
        return handler

    def metrics(self, record: dict) -> None:
        with open(self.metrics_path, "a") as f:
            f.write(json.dumps(record) + "\n")  # one write: a kill can only cut the last line (see restore_metrics)

    def read_metrics(self, tolerate_cut_line: bool = False) -> list[dict]:
        """The records of metrics.jsonl; `tolerate_cut_line` drops a last line a kill cut short."""
        if not self.metrics_path.is_file():
            return []
        lines = [line for line in self.metrics_path.read_text().splitlines() if line.strip()]
        if tolerate_cut_line and lines:
            try:
                json.loads(lines[-1])
            except json.JSONDecodeError:
                lines.pop()
        return [json.loads(line) for line in lines]

    def restore_metrics(self, step: int, record: dict) -> None:
        """On resume, make metrics.jsonl end at the checkpoint's step: drop records the killed run logged after it
        (and a line cut short by the kill), add the checkpoint's own `record` if the kill came before it was logged."""
        kept = [r for r in self.read_metrics(tolerate_cut_line=True) if r["step"] <= step]
        if record and not any(r["step"] == record["step"] for r in kept):
            kept.append(record)
        tmp = self.metrics_path.with_name(".metrics.jsonl.tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in kept))
        tmp.replace(self.metrics_path)

    def plot_curves(self) -> Path:
        """Train and val loss, and val mIoU / Dice, over optimizer steps as curves.png (matplotlib, Agg
        backend: no display needed). Records are per epoch or per metrics_interval, whichever the run logs."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        records = self.read_metrics()
        fig, (ax_loss, ax_iou) = plt.subplots(1, 2, figsize=(10, 4))
        for key, label, marker in (("train_loss", "train loss", "o"), ("val_loss", "val loss", "s")):
            shown = [r for r in records if r.get(key) is not None]
            ax_loss.plot([r["step"] for r in shown], [r[key] for r in shown], marker=marker, label=label)
        ax_loss.set_xlabel("optimizer step")
        ax_loss.set_title("loss (focal + dice + IoU-MSE, as configured)")
        ax_loss.legend()
        validated = [r for r in records if "val_miou" in r]
        ax_iou.plot([r["step"] for r in validated], [r["val_miou"] for r in validated], marker="o", label="val mIoU")
        ax_iou.plot([r["step"] for r in validated], [r["val_dice"] for r in validated], marker="s", label="val Dice")
        ax_iou.set_xlabel("optimizer step (0 = before training)")
        ax_iou.set_ylim(0, 1)
        ax_iou.set_title("validation")
        ax_iou.legend()
        fig.tight_layout()
        path = self.run_dir / "curves.png"
        tmp = path.with_name(".curves.tmp.png")
        fig.savefig(tmp, dpi=80)
        plt.close(fig)
        tmp.replace(path)
        return path

    def overlays(self, previews: list[dict], epoch: int) -> list[Path]:
        """Write ground truth (left) next to prediction with its box prompt (right) per preview image, titled, with
        one legend line per object (its IoU on the right) in the same colour on both sides.

        Arguments:
          previews: dicts with image (H, W, 3) uint8, gt (N, H, W) bool, pred (N, H, W) bool, boxes (N, 4) or None
            in original-image pixels.
          epoch: epochs trained (0 = the starting weights); names the files best_epoch{epoch:03d}_val{i}.png.
        """
        folder = self.run_dir / "overlays"
        when = "before training" if epoch == 0 else f"after epoch {epoch}"
        paths = []
        for i, p in enumerate(previews):
            boxes = [] if p["boxes"] is None else p["boxes"].tolist()
            inter = (p["gt"] & p["pred"]).reshape(len(p["gt"]), -1).sum(1)
            union = (p["gt"] | p["pred"]).reshape(len(p["gt"]), -1).sum(1)
            ious = inter / np.maximum(union, 1)
            left = overlay_masks(p["image"], list(p["gt"]), boxes=boxes, title="ground truth",
                                 labels=[f"object {k + 1}" for k in range(len(ious))])
            right = overlay_masks(p["image"], list(p["pred"]), boxes=boxes, title=f"prediction {when}",
                                  labels=[f"object {k + 1}: IoU {iou:.2f}" for k, iou in enumerate(ious)])
            gap = np.full((left.shape[0], 8, 3), 255, dtype=np.uint8)
            paths.append(write_png(folder / f"best_epoch{epoch:03d}_val{i}.png", np.concatenate([left, gap, right], 1)))
        return paths
