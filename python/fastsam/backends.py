"""The two engines behind ``sam-segment`` and ``sam-app``: the C++ runtime on an exported model directory
(``fastsam_rt``, no PyTorch import) or the PyTorch reference on a checkpoint.

Both give predictors with the SamPredictor interface (``set_image``, ``predict``) plus ``predict_boxes`` for a
batch of boxes, and a segment-everything call; results are numpy arrays in original-image pixels.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

BACKENDS = ("torch", "runtime")


class ModelLoadError(RuntimeError):
    """A model directory or checkpoint that cannot be loaded; the message is one line that says what to do."""


class RuntimeBackend:
    """``fastsam_rt`` on a directory written by ``sam-export`` (or ``sam-train --demo``)."""

    name = "runtime"

    def __init__(self, model_dir: str | Path, *, threads: int = 0, description: str | None = None) -> None:
        """Arguments: model_dir: export directory (manifest.json + .onnx files); threads: ONNX Runtime
        intra-op threads (0 = its default); description: what these weights are, for the user."""
        model_dir = Path(model_dir)
        if not (model_dir / "manifest.json").is_file():
            raise ModelLoadError(f"{model_dir} is not an exported model directory (no manifest.json); "
                                 "write one with `sam-export` or `sam-train --demo`")
        try:
            import fastsam_rt
        except ImportError as err:
            raise ModelLoadError(f"the C++ runtime module fastsam_rt is not installed ({err}); "
                                 "reinstall fastsam with ONNX Runtime headers (see README, Install)") from err
        self._rt = fastsam_rt
        self.model_dir = model_dir
        self.threads = threads
        self._generator_key: tuple | None = None
        self._generator: Any = None
        first = self.new_predictor()  # loads and checks every file now, so a bad directory fails here
        self.image_size = first.image_size
        self.model_type = first.model_type
        self._spare = first
        self.description = description or f"exported model {model_dir}"

    def new_predictor(self):
        """A fastsam_rt.Predictor on this model (each holds one image embedding)."""
        if getattr(self, "_spare", None) is not None:
            spare, self._spare = self._spare, None
            return spare
        try:
            return self._rt.Predictor(str(self.model_dir), intra_op_threads=self.threads)
        except (FileNotFoundError, RuntimeError, ValueError) as err:
            raise ModelLoadError(f"cannot load the exported model in {self.model_dir}: {_first_line(err)}") from err

    def generate(self, image: np.ndarray, *, points_per_side: int = 32, pred_iou_thresh: float = 0.88,
                 stability_score_thresh: float = 0.95, progress: bool = False) -> list[dict[str, Any]]:
        """Segment everything: SamAutomaticMaskGenerator records with (H, W) bool segmentations."""
        key = (points_per_side, pred_iou_thresh, stability_score_thresh)
        if key != self._generator_key:  # thresholds are constructor arguments; keep the last generator
            self._generator = self._rt.AutomaticMaskGenerator(
                str(self.model_dir), points_per_side=points_per_side, pred_iou_thresh=pred_iou_thresh,
                stability_score_thresh=stability_score_thresh, output_mode="binary_mask",
                intra_op_threads=self.threads)
            self._generator_key = key
        return self._generator.generate(image)


class TorchBackend:
    """The PyTorch reference on an official or fastsam-trained checkpoint (imports torch)."""

    name = "torch"

    def __init__(self, checkpoint: str | Path | None, model_type: str | None = None, *,
                 description: str | None = None) -> None:
        from .export.settings import SettingsError, build_model

        try:
            self.model, settings = build_model(None if checkpoint is None else str(checkpoint), model_type)
        except (FileNotFoundError, RuntimeError, SettingsError, ValueError) as err:
            raise ModelLoadError(_first_line(err)) from err
        self.checkpoint = checkpoint
        self.model_type = settings.model_type
        self.image_size = settings.image_size
        self.description = description or (f"checkpoint {checkpoint}" if checkpoint is not None
                                           else "RANDOM weights (no checkpoint given)")

    def new_predictor(self):
        return _TorchPredictor(self.model)

    def generate(self, image: np.ndarray, *, points_per_side: int = 32, pred_iou_thresh: float = 0.88,
                 stability_score_thresh: float = 0.95, progress: bool = False) -> list[dict[str, Any]]:
        from .automatic_mask_generator import SamAutomaticMaskGenerator

        generator = SamAutomaticMaskGenerator(self.model, points_per_side=points_per_side,
                                              pred_iou_thresh=pred_iou_thresh,
                                              stability_score_thresh=stability_score_thresh,
                                              output_mode="binary_mask")
        return generator.generate(image, progress=progress)


class _TorchPredictor:
    """SamPredictor plus ``predict_boxes`` with fastsam_rt's signature, so callers treat both backends alike."""

    def __init__(self, model) -> None:
        from .predictor import SamPredictor

        self._predictor = SamPredictor(model)

    def __getattr__(self, name: str):
        return getattr(self._predictor, name)

    def predict_boxes(self, boxes, multimask_output: bool = True):
        """Masks for B boxes (B, 4) XYXY in original pixels: (B, C, H, W) bool, (B, C) IoU, (B, C, L, L) logits."""
        import torch

        from .utils.validation import check_box, check_prompts_inside

        p = self._predictor
        if not p.is_image_set:
            raise RuntimeError("An image must be set with .set_image(...) before predict_boxes.")
        boxes = np.asarray(boxes, dtype=np.float32)
        if boxes.ndim != 2 or boxes.shape[1] != 4 or len(boxes) == 0:
            raise ValueError(f"boxes must be (B, 4) XYXY with B >= 1, got shape {boxes.shape}")
        for box in boxes:
            check_prompts_inside(None, check_box(box), p.original_size)
        boxes_t = p.transform.apply_boxes_torch(torch.as_tensor(boxes), p.original_size)
        masks, scores, logits = p.predict_torch(None, None, boxes=boxes_t, multimask_output=multimask_output)
        return masks.numpy(), scores.numpy(), logits.numpy()


def load_backend(backend: str | None, *, model_dir: str | Path | None = None, checkpoint: str | Path | None = None,
                 model_type: str | None = None, threads: int = 0, description: str | None = None):
    """RuntimeBackend or TorchBackend. ``backend`` None picks runtime when a model_dir is given, else torch."""
    backend = backend or ("runtime" if model_dir is not None else "torch")
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "runtime":
        if model_dir is None:
            raise ModelLoadError("the runtime backend needs an exported model directory (--model-dir)")
        if checkpoint is not None:
            raise ModelLoadError("give --model-dir for the runtime backend or --checkpoint for torch, not both")
        return RuntimeBackend(model_dir, threads=threads, description=description)
    if model_dir is not None:
        raise ModelLoadError("--model-dir is an exported model, which the torch backend cannot run; "
                             "use --backend runtime, or --checkpoint for torch")
    return TorchBackend(checkpoint, model_type, description=description)


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
