"""The parity gate: exported graphs in ONNX Runtime against the PyTorch model.

The encoder is compared with ``sam.image_encoder(sam.preprocess(x))`` (the path SamPredictor
takes), the decoders with their torch wrappers, on random inputs and on real-looking images.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from . import io_spec
from .onnx_models import BatchedDecoderOnnxModel, DecoderHeadOnnxModel, DecoderOnnxModel



@dataclass(frozen=True)
class Tolerance:
    """An output passes when max|onnx - torch| <= atol + rtol * max|torch|.

    Float rounding error grows with the values' magnitude: a trained checkpoint's mask logits reach tens,
    where the same graph differs by more than at the O(1) logits of random weights. ``atol`` covers small
    outputs, ``rtol`` large ones.
    """

    atol: float
    rtol: float

    def limit(self, scale: float) -> float:
        """The allowed max|diff| for an output whose largest reference magnitude is ``scale``."""
        return self.atol + self.rtol * scale

    def __str__(self) -> str:
        return f"{self.atol:.0e}+{self.rtol:.0e}*max|ref|"


# fp32: ORT and torch round differently (summation order, resize arithmetic). Measured on a vit_t at 256 with
# mask logits up to ~50 (tests/test_export.py, trainer checkpoint): up to 6e-6 of the output's magnitude for the
# upscaled masks, 1e-6 elsewhere; a 0.1 % change of one decoder weight tensor moves them by 5e-5 to 1.3e-4 of it.
# fp16: 2e-2 absolute as before, plus 5e-3 relative since fp16 keeps about three significant digits.
TOLERANCES = {"fp32": Tolerance(atol=1e-4, rtol=2e-5), "fp16": Tolerance(atol=2e-2, rtol=5e-3)}

# Outputs that are mask logits: also compared after binarising at the model's mask threshold.
MASK_OUTPUTS = (io_spec.MASKS, io_spec.LOW_RES_MASKS)


@dataclass
class MaskAgreement:
    """ONNX vs torch masks binarised at the mask threshold.

    ``differing`` counts pixels on opposite sides of the threshold, except those whose reference logit
    lies within the tolerance of the threshold (``ambiguous``: either side is within tolerance there).
    ``min_iou`` is the lowest IoU of one ONNX mask with its torch mask over all pixels (1 for two empty masks).
    """

    min_iou: float
    differing: int
    ambiguous: int


@dataclass
class ParityCheck:
    """One compared output: ``max_abs`` = max |onnx - torch| over the case's elements, ``scale`` =
    max |torch| (sets the allowed difference), ``mask`` = agreement at the threshold for mask logits."""

    model: str
    case: str
    output: str
    max_abs: float
    tolerance: Tolerance
    scale: float = 0.0
    mask: MaskAgreement | None = None

    @property
    def limit(self) -> float:
        return self.tolerance.limit(self.scale)

    @property
    def ok(self) -> bool:
        close = bool(np.isfinite(self.max_abs)) and self.max_abs <= self.limit
        return close and (self.mask is None or self.mask.differing == 0)

    def line(self) -> str:
        verdict = "ok" if self.ok else "MISMATCH"
        masks = (f" masks IoU>={self.mask.min_iou:.4f} {self.mask.differing} px differ"
                 if self.mask is not None else "")
        return (f"{self.model:<16} {self.case:<26} {self.output:<17} max|diff| {self.max_abs:.3e} "
                f"(limit {self.limit:.2e} at max|ref| {self.scale:.3g}){masks} {verdict}")

    def failure(self) -> str:
        """Why the check failed, in one phrase."""
        where = f"{self.model}/{self.output} ({self.case})"
        if not self.max_abs <= self.limit:
            return (f"{where} max|diff| {self.max_abs:.3e} > {self.limit:.3e} "
                    f"(tolerance {self.tolerance} with max|ref| {self.scale:.3g})")
        return f"{where}: {self.mask.differing} mask pixels on the other side of the threshold"

    @property
    def badness(self) -> float:
        """How far beyond the limit (>1 fails), to name the worst failure."""
        if not np.isfinite(self.max_abs) or (self.max_abs > 0 and self.limit <= 0):
            return float("inf")
        ratio = self.max_abs / self.limit if self.limit > 0 else 0.0
        return max(ratio, float(self.mask.differing if self.mask else 0))


def compare(model: str, case: str, output: str, got, expected, tolerance: Tolerance,
            mask_threshold: float = 0.0) -> ParityCheck:
    """A ParityCheck of ``got`` (ONNX) against ``expected`` (torch); mask outputs also at ``mask_threshold``."""
    got, expected = np.asarray(got, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    if got.shape != expected.shape:
        return ParityCheck(model, case, output, float("inf"), tolerance)
    if not expected.size:
        return ParityCheck(model, case, output, 0.0, tolerance)
    check = ParityCheck(model, case, output, float(np.abs(got - expected).max()), tolerance,
                        scale=float(np.abs(expected).max()))
    if output in MASK_OUTPUTS:
        check.mask = mask_agreement(got, expected, mask_threshold, check.limit)
    return check


def mask_agreement(got: np.ndarray, expected: np.ndarray, threshold: float, band: float) -> MaskAgreement:
    """Binarise both at ``threshold``; pixels with |expected - threshold| <= ``band`` are not counted as differing."""
    side, expected_side = got > threshold, expected > threshold
    ambiguous = np.abs(expected - threshold) <= band
    differing = int(((side != expected_side) & ~ambiguous).sum())
    height, width = expected.shape[-2:]
    side, expected_side = side.reshape(-1, height * width), expected_side.reshape(-1, height * width)
    intersection = (side & expected_side).sum(axis=1)
    union = (side | expected_side).sum(axis=1)
    ious = np.where(union > 0, intersection / np.maximum(union, 1), 1.0)
    return MaskAgreement(float(ious.min()), differing, int(ambiguous.sum()))


def ort_session(path: Path, threads: int | None = None):
    """A CPU ONNX Runtime session for ``path`` (``threads`` intra-op threads, default ORT's)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


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
        checks.append(compare(io_spec.ENCODER, case, io_spec.IMAGE_EMBEDDINGS, got, expected, TOLERANCES[precision]))
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


def _mask_threshold(sam) -> float:
    return float(getattr(sam, "mask_threshold", 0.0))


def _compare_case(spec: io_spec.ModelSpec, module, session, case: str, feed: dict, tolerance: Tolerance,
                  mask_threshold: float) -> tuple[list[ParityCheck], list[np.ndarray]]:
    """One feed through ``session`` and ``module``: a check per output, and the ONNX outputs."""
    expected = _torch_outputs(module, feed, spec.input_names)
    got = session.run(spec.output_names, feed)
    checks = [compare(spec.key, case, name, g, e, tolerance, mask_threshold)
              for name, g, e in zip(spec.output_names, got, expected)]
    return checks, got


def _compare_decoder(spec: io_spec.ModelSpec, module, session, feeds: dict[str, dict], tolerance: Tolerance,
                     mask_threshold: float) -> list[ParityCheck]:
    return [check for case, feed in feeds.items()
            for check in _compare_case(spec, module, session, case, feed, tolerance, mask_threshold)[0]]


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
    return _compare_decoder(io_spec.decoder_spec(size), reference, ort_session(path), feeds, TOLERANCES[precision],
                            _mask_threshold(sam))


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
                            _batched_feeds(embeddings, size), TOLERANCES[precision], _mask_threshold(sam))


def check_split_decoder(sam, head_path: Path, masks_path: Path, embeddings: dict[str, np.ndarray]) -> list[ParityCheck]:
    """Compare decoder_head.onnx with the torch ``DecoderHeadOnnxModel``, and decoder_head followed by
    decoder_masks (fed the head's ONNX outputs) with the reference ``BatchedDecoderOnnxModel``."""
    size = int(sam.image_encoder.img_size)
    feeds = _batched_feeds(embeddings, size)
    head_spec = io_spec.decoder_head_spec(size)
    head, head_module = ort_session(head_path), DecoderHeadOnnxModel(sam)
    masks = ort_session(masks_path)
    reference = BatchedDecoderOnnxModel(sam, optimized_graph=False)
    tolerance, threshold = TOLERANCES["fp32"], _mask_threshold(sam)
    checks = []
    for case, feed in feeds.items():
        head_checks, (iou, weights, tokens) = _compare_case(head_spec, head_module, head, case, feed, tolerance,
                                                            threshold)
        checks += head_checks
        expected_iou, expected_masks = _torch_outputs(reference, feed, head_spec.input_names)
        (low_res,) = masks.run([io_spec.LOW_RES_MASKS], {io_spec.IMAGE_TOKENS: tokens, io_spec.MASK_WEIGHTS: weights})
        checks.append(compare(io_spec.DECODER_MASKS, f"{case} head->masks", io_spec.LOW_RES_MASKS, low_res,
                              expected_masks, tolerance, threshold))
        checks.append(compare(io_spec.DECODER_HEAD, f"{case} vs batched", io_spec.IOU_PREDICTIONS, iou, expected_iou,
                              tolerance))
    return checks


def summarize(checks: list[ParityCheck]) -> dict:
    """Manifest form: per model whether all passed, its tolerance, and per output the worst max_abs, the
    largest reference magnitude and, for masks, the lowest IoU and most differing pixels at the threshold."""
    summary: dict = {}
    for check in checks:
        model = summary.setdefault(check.model, {"ok": True, "tolerance": asdict(check.tolerance), "max_abs": {},
                                                 "max_reference": {}})
        model["ok"] = model["ok"] and check.ok
        _keep_max(model["max_abs"], check.output, check.max_abs)
        _keep_max(model["max_reference"], check.output, check.scale)
        if check.mask is not None:
            agreement = model.setdefault("masks", {}).setdefault(check.output, {"min_iou": 1.0, "differing_pixels": 0})
            agreement["min_iou"] = min(agreement["min_iou"], check.mask.min_iou)
            agreement["differing_pixels"] = max(agreement["differing_pixels"], check.mask.differing)
    return summary


def _keep_max(table: dict, key: str, value: float) -> None:
    table[key] = max(table.get(key, 0.0), value)


def failures(checks: list[ParityCheck]) -> list[ParityCheck]:
    return [c for c in checks if not c.ok]
