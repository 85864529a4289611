"""The parity gate: exported graphs in ONNX Runtime against the PyTorch model.

The encoder is compared with ``sam.image_encoder(sam.preprocess(x))`` (the path SamPredictor
takes), the decoders with their torch wrappers, on random inputs and on real-looking images.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import io_spec
from .onnx_models import BatchedDecoderOnnxModel, DecoderHeadOnnxModel, DecoderOnnxModel

# Max abs difference allowed per precision (fp32 outputs are O(1) logits/embeddings).
TOLERANCES = {"fp32": 1e-4, "fp16": 2e-2}


@dataclass
class ParityCheck:
    """One compared output: ``max_abs`` = max |onnx - torch| over the case's elements."""

    model: str
    case: str
    output: str
    max_abs: float
    tolerance: float

    @property
    def ok(self) -> bool:
        return bool(np.isfinite(self.max_abs)) and self.max_abs <= self.tolerance

    def line(self) -> str:
        verdict = "ok" if self.ok else "MISMATCH"
        return f"{self.model:<16} {self.case:<26} {self.output:<17} max|diff| {self.max_abs:.3e} (tol {self.tolerance:.0e}) {verdict}"


def ort_session(path: Path, threads: int | None = None):
    """A CPU ONNX Runtime session for ``path`` (``threads`` intra-op threads, default ORT's)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _max_abs(a, b) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return float("inf")
    return float(np.abs(a - b).max()) if a.size else 0.0


def torch_embedding(sam: torch.nn.Module, image: np.ndarray) -> np.ndarray:
    """Reference embedding of an encoder input (1,3,h,w) float32 0..255 through Sam.preprocess."""
    sam.eval()
    with torch.no_grad():
        x = torch.from_numpy(np.ascontiguousarray(image))
        return sam.image_encoder(sam.preprocess(x)).numpy()


def check_encoder(sam, path: Path, images: dict[str, np.ndarray], precision: str = "fp32",
                  references: dict[str, np.ndarray] | None = None) -> list[ParityCheck]:
    """Compare encoder.onnx with the torch encoder.

    Arguments:
      sam: Sam model.
      path: encoder .onnx file.
      images: case name -> encoder input (1,3,h,w) float32 0..255, max(h,w) == image_size.
      precision: selects the tolerance.
      references: optional case name -> precomputed torch embedding (saves an encoder run).
    Returns:
      one ParityCheck per case.
    """
    session = ort_session(path)
    checks = []
    for case, image in images.items():
        expected = references[case] if references and case in references else torch_embedding(sam, image)
        (got,) = session.run(None, {io_spec.IMAGE: image.astype(np.float32)})
        checks.append(ParityCheck(io_spec.ENCODER, case, io_spec.IMAGE_EMBEDDINGS, _max_abs(got, expected),
                                  TOLERANCES[precision]))
    return checks


def random_prompts(seed: int, num_prompts: int, num_points: int, image_size: int = 1024,
                   with_mask: bool = False) -> dict[str, np.ndarray]:
    """Batched decoder inputs (without the embedding): points inside the image, labels -1..3,
    and for ``with_mask`` random mask logits with has_mask_input = 1."""
    rng = np.random.default_rng(seed)
    low_res = image_size // 4
    labels = rng.integers(-1, 4, size=(num_prompts, num_points))
    labels[:, 0] = 1  # at least one real point per prompt
    mask = rng.normal(0, 3, size=(num_prompts, 1, low_res, low_res)) if with_mask else np.zeros((num_prompts, 1, low_res, low_res))
    return {
        io_spec.POINT_COORDS: (rng.random((num_prompts, num_points, 2)) * image_size).astype(np.float32),
        io_spec.POINT_LABELS: labels.astype(np.float32),
        io_spec.MASK_INPUT: mask.astype(np.float32),
        io_spec.HAS_MASK_INPUT: np.array([1.0 if with_mask else 0.0], dtype=np.float32),
    }


def _torch_outputs(module, feed: dict[str, np.ndarray], names: list[str]) -> list[np.ndarray]:
    with torch.no_grad():
        outputs = module(*(torch.from_numpy(feed[name]) for name in names))
    return [o.numpy() for o in outputs]


def _compare_case(spec: io_spec.ModelSpec, module, session, case: str, feed: dict,
                  tolerance: float) -> tuple[list[ParityCheck], list[np.ndarray]]:
    """One feed through ``session`` and ``module``: a check per output, and the ONNX outputs."""
    expected = _torch_outputs(module, feed, spec.input_names)
    got = session.run(spec.output_names, feed)
    checks = [ParityCheck(spec.key, case, name, _max_abs(g, e), tolerance)
              for name, g, e in zip(spec.output_names, got, expected)]
    return checks, got


def _compare_decoder(spec: io_spec.ModelSpec, module, session, feeds: dict[str, dict], tolerance: float) -> list[ParityCheck]:
    return [check for case, feed in feeds.items() for check in _compare_case(spec, module, session, case, feed, tolerance)[0]]


def check_decoder(sam, path: Path, embeddings: dict[str, np.ndarray], orig_im_size: tuple[int, int],
                  precision: str = "fp32") -> list[ParityCheck]:
    """Compare decoder.onnx with the torch ``DecoderOnnxModel`` (reference formulation, not the exported
    ``decoder_graph`` layout) on point, box and mask-input prompts.

    Arguments:
      embeddings: case name -> (1,256,64,64) image embedding.
      orig_im_size: (H, W) fed as ``orig_im_size``.
    """
    size = int(sam.image_encoder.img_size)
    feeds = {}
    for case, embedding in embeddings.items():
        for seed, (num_points, with_mask) in enumerate(((1, False), (3, False), (2, True))):
            feed = random_prompts(seed, 1, num_points, size, with_mask)
            feed[io_spec.IMAGE_EMBEDDINGS] = embedding.astype(np.float32)
            feed[io_spec.ORIG_IM_SIZE] = np.array(orig_im_size, dtype=np.float32)
            feeds[f"{case}/{num_points}pt{'+mask' if with_mask else ''}"] = feed
    reference = DecoderOnnxModel(sam, optimized_graph=False)
    return _compare_decoder(io_spec.decoder_spec(size), reference, ort_session(path), feeds, TOLERANCES[precision])


def _batched_feeds(embeddings: dict[str, np.ndarray], image_size: int) -> dict[str, dict]:
    # B=5 prompts x N=3 points, without and with mask input.
    feeds = {}
    for case, embedding in embeddings.items():
        for seed, with_mask in enumerate((False, True)):
            feed = random_prompts(10 + seed, 5, 3, image_size, with_mask)
            feed[io_spec.IMAGE_EMBEDDINGS] = embedding.astype(np.float32)
            feeds[f"{case}/5x3{'+mask' if with_mask else ''}"] = feed
    return feeds


def check_decoder_batched(sam, path: Path, embeddings: dict[str, np.ndarray],
                          precision: str = "fp32") -> list[ParityCheck]:
    """Compare decoder_batched.onnx with the torch ``BatchedDecoderOnnxModel`` (reference formulation;
    B=5 prompts x N=3 points)."""
    size = int(sam.image_encoder.img_size)
    reference = BatchedDecoderOnnxModel(sam, optimized_graph=False)
    return _compare_decoder(io_spec.decoder_batched_spec(size), reference, ort_session(path),
                            _batched_feeds(embeddings, size), TOLERANCES[precision])


def check_split_decoder(sam, head_path: Path, masks_path: Path, embeddings: dict[str, np.ndarray]) -> list[ParityCheck]:
    """Compare decoder_head.onnx with the torch ``DecoderHeadOnnxModel``, and decoder_head followed by
    decoder_masks (fed the head's ONNX outputs) with the reference ``BatchedDecoderOnnxModel``."""
    size = int(sam.image_encoder.img_size)
    feeds = _batched_feeds(embeddings, size)
    head_spec = io_spec.decoder_head_spec(size)
    head, head_module = ort_session(head_path), DecoderHeadOnnxModel(sam)
    masks = ort_session(masks_path)
    reference = BatchedDecoderOnnxModel(sam, optimized_graph=False)
    checks = []
    for case, feed in feeds.items():
        head_checks, (iou, weights, tokens) = _compare_case(head_spec, head_module, head, case, feed, TOLERANCES["fp32"])
        checks += head_checks
        expected_iou, expected_masks = _torch_outputs(reference, feed, head_spec.input_names)
        (low_res,) = masks.run([io_spec.LOW_RES_MASKS], {io_spec.IMAGE_TOKENS: tokens, io_spec.MASK_WEIGHTS: weights})
        checks.append(ParityCheck(io_spec.DECODER_MASKS, f"{case} head->masks", io_spec.LOW_RES_MASKS,
                                  _max_abs(low_res, expected_masks), TOLERANCES["fp32"]))
        checks.append(ParityCheck(io_spec.DECODER_HEAD, f"{case} vs batched", io_spec.IOU_PREDICTIONS,
                                  _max_abs(iou, expected_iou), TOLERANCES["fp32"]))
    return checks


def summarize(checks: list[ParityCheck]) -> dict:
    """Manifest form: per model, per output, the worst max_abs and whether all passed."""
    summary: dict = {}
    for check in checks:
        model = summary.setdefault(check.model, {"ok": True, "tolerance": check.tolerance, "max_abs": {}})
        model["ok"] = model["ok"] and check.ok
        model["max_abs"][check.output] = max(model["max_abs"].get(check.output, 0.0), check.max_abs)
    return summary


def failures(checks: list[ParityCheck]) -> list[ParityCheck]:
    return [c for c in checks if not c.ok]
