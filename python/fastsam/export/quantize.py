"""int8 variants: static QDQ per-channel encoder (calibrated), dynamic int8 decoders.

Encoder policy, from measurements on a default-initialised vit_t (3 generated calibration images,
2 held-out generated images x 6 boxes, int8 encoder + fp32 decoder vs fp32; relative max
embedding error / box-mask mIoU), int8 weights unless said otherwise:

- Conv + MatMul + Gemm:              0.84-0.97 / 0.72
- Conv only:                         0.87-0.99 / 0.73
- + patch_embed and neck in float:   0.39-0.97 / 0.77
- pointwise convs only + MatMul:     0.38-0.83 / 0.77
- Percentile calibration:            0.60-0.83 / 0.74
- weight MatMul + Gemm only:         0.18-0.19 / 0.93
- same, 7-bit weights (reduce_range): 0.10-0.15 / 0.956
- same, uint8 weights (U8U8):        0.06-0.14 / 0.968   <- default (0.968 with 8 images too)
- Conv + MatMul + Gemm, U8U8:        0.11-0.59 / 0.94

Two effects: convolutions (TinyViT's MBConv stage, patch merging, neck) do not survive
per-tensor uint8 activations, and int8 (signed) weights overflow the u8s8 kernels' 16-bit
intermediate sums on CPUs without VNNI (this machine: AVX2 only). So every convolution stays
float32, as do the activation x activation MatMuls of attention, LayerNorm, Softmax, GELU and all
Adds; the weight MatMuls/Gemms of the attention projections and MLPs are uint8 x uint8 QDQ with
per-channel weights. On top of this policy, ``int8_search`` keeps the node groups (encoder and
decoders) that still cost the most accuracy in float until the calibration mIoU reaches the target.
"""
from __future__ import annotations

import contextlib
import io
import logging
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from ..utils.mask_metrics import mask_iou
from . import io_spec

ENCODER_OPS_TO_QUANTIZE = ("MatMul", "Gemm")


@contextlib.contextmanager
def _quiet():
    # The quantiser logs and warns per node; the export prints its own progress.
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        root.setLevel(level)


class EncoderCalibrationReader:
    """``CalibrationDataReader`` feeding encoder inputs one image at a time.

    Arguments:
      inputs: iterable of encoder inputs (1,3,h,w) float32 0..255 (produced lazily).
      count: number of inputs (for the progress bar).
      progress: show a tqdm bar.
    """

    def __init__(self, inputs: Iterable[np.ndarray], count: int, progress: bool = True) -> None:
        from tqdm import tqdm

        self._iterator = iter(inputs)
        self._bar = tqdm(total=count, desc="calibrating encoder", unit="image", disable=not progress)

    def get_next(self) -> dict | None:
        item = next(self._iterator, None)
        if item is None:
            self._bar.close()
            return None
        self._bar.update(1)
        return {io_spec.IMAGE: item}


def _as_reader(reader):
    # Subclassing at import time would make this module import onnxruntime.quantization eagerly.
    from onnxruntime.quantization import CalibrationDataReader

    class _Reader(CalibrationDataReader):
        def get_next(self):
            return reader.get_next()

    return _Reader()


def activation_matmuls(path: Path) -> list[str]:
    """Names of MatMul nodes with no constant operand (attention q@k and attn@v).

    Quantising both activations of these costs accuracy and, on CPU, time (two run-time
    quantisations per product), so they stay float; weight MatMuls are quantised.
    """
    import onnx

    graph = onnx.load(str(path)).graph
    constants = {i.name for i in graph.initializer}
    constants |= {out for node in graph.node if node.op_type == "Constant" for out in node.output}
    return [n.name for n in graph.node if n.op_type == "MatMul" and not any(i in constants for i in n.input)]


def prepare_for_quantization(src: Path, dst: Path) -> Path:
    """ORT's quant_pre_process (shape inference + graph optimisation) of ``src`` into ``dst``."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with _quiet():
        quant_pre_process(str(src), str(dst), skip_symbolic_shape=False)
    return Path(dst)


def quantize_encoder_static(src: Path, dst: Path, calibration_inputs: Iterable[np.ndarray], count: int,
                            nodes_to_exclude: list[str] | None = None, progress: bool = True,
                            op_types: tuple[str, ...] = ENCODER_OPS_TO_QUANTIZE,
                            calibrate_method: str = "MinMax", signed_weights: bool = False,
                            reduce_range: bool = False, preprocess: bool = True) -> Path:
    """Static int8 QDQ encoder, per-channel weights, MinMax-calibrated on ``calibration_inputs``.

    Arguments:
      src: fp32 encoder.onnx.
      dst: output file (e.g. encoder.int8.onnx).
      calibration_inputs: encoder inputs (1,3,h,w) float32 0..255.
      count: how many inputs ``calibration_inputs`` yields (progress bar only).
      nodes_to_exclude: node names kept in float in addition to the non-quantised op types.
      op_types: operator types to quantise.
      calibrate_method: onnxruntime CalibrationMethod name (MinMax, Entropy, Percentile).
      signed_weights: int8 (symmetric) weights; False gives uint8 weights (U8U8 kernels).
      reduce_range: 7-bit weights, avoiding u8s8 overflow on CPUs without VNNI.
      preprocess: run ORT's quant_pre_process first (False: ``src`` already went through it).
    Returns:
      dst.
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    reader = EncoderCalibrationReader(calibration_inputs, count, progress)
    with tempfile.TemporaryDirectory() as tmp, _quiet():
        prepared = Path(tmp) / "encoder.prep.onnx"
        if preprocess:
            prepare_for_quantization(src, prepared)
        else:
            prepared = Path(src)
        excluded = activation_matmuls(prepared) + list(nodes_to_exclude or [])
        quantize_static(
            str(prepared),
            str(dst),
            _as_reader(reader),
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=list(op_types),
            per_channel=True,
            reduce_range=reduce_range,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8 if signed_weights else QuantType.QUInt8,
            nodes_to_exclude=excluded,
            calibrate_method=CalibrationMethod[calibrate_method],
            extra_options={"WeightSymmetric": signed_weights, "ActivationSymmetric": False},
        )
    return Path(dst)


def quantize_decoder_dynamic(src: Path, dst: Path, per_channel: bool = False, signed_weights: bool = False,
                             nodes_to_exclude: list[str] | None = None) -> Path:
    """Dynamic int8 decoder (weights int8 offline, activations quantised at run time), as SAM's
    official exporter does; Conv/ConvTranspose stay float (no dynamic int8 kernels for them)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # The dynamic quantiser first rewrites each Gemm as MatMul (named "<gemm>_MatMul") + Add.
    nodes_to_exclude = [name for node in nodes_to_exclude or [] for name in (node, f"{node}_MatMul")]
    with _quiet():
        quantize_dynamic(str(src), str(dst), op_types_to_quantize=["MatMul", "Gemm"],
                         per_channel=per_channel, reduce_range=False, nodes_to_exclude=nodes_to_exclude,
                         weight_type=QuantType.QInt8 if signed_weights else QuantType.QUInt8)
    return Path(dst)


# ---- accuracy and speed of the int8 variants -------------------------------------------------

@dataclass
class HeldOutImage:
    """An encoder input plus box prompts (XYXY in the resized 1024 frame)."""

    name: str
    encoder_input: np.ndarray
    boxes: np.ndarray


def random_boxes(seed: int, height: int, width: int, count: int) -> np.ndarray:
    """``count`` boxes XYXY inside an HxW frame, 5%..60% of each side."""
    rng = np.random.default_rng(seed)
    sizes = rng.uniform(0.05, 0.6, size=(count, 2)) * [width, height]
    starts = rng.uniform(0, 1, size=(count, 2)) * ([width, height] - sizes)
    return np.concatenate([starts, starts + sizes], axis=1).astype(np.float32)


def _box_feed(box: np.ndarray, embedding: np.ndarray, orig_hw: tuple[int, int]) -> dict:
    low_res = embedding.shape[-1] * 4  # 256 for 1024-pixel models, image_size / 4 in general
    return {
        io_spec.IMAGE_EMBEDDINGS: embedding,
        io_spec.POINT_COORDS: box.reshape(1, 2, 2).astype(np.float32),
        io_spec.POINT_LABELS: np.array([[2.0, 3.0]], dtype=np.float32),
        io_spec.MASK_INPUT: np.zeros((1, 1, low_res, low_res), dtype=np.float32),
        io_spec.HAS_MASK_INPUT: np.zeros(1, dtype=np.float32),
        io_spec.ORIG_IM_SIZE: np.array(orig_hw, dtype=np.float32),
    }


def _median_seconds(func: Callable[[], object], repeats: int) -> float:
    import time

    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def accuracy_report(paths_fp32: dict[str, Path], paths_int8: dict[str, Path], images: list[HeldOutImage],
                    threads: int | None = None, timing_repeats: int = 3, progress: Callable[[str], None] = print) -> dict:
    """Box-prompt mask agreement of int8 against fp32, and the speed ratio, on held-out images.

    The single-mask output (token 0, what SamPredictor returns for a box with multimask_output=False)
    is thresholded at 0 at the resized-image resolution. mIoU is reported end to end (int8 encoder +
    int8 decoder vs fp32 + fp32) and for each int8 part alone.

    Arguments:
      paths_fp32 / paths_int8: ``encoder`` and ``decoder`` files.
      images: held-out images with box prompts.
      threads: ORT intra-op threads (None = ORT default).
    Returns:
      dict with ``miou`` (per setting), ``num_images``, ``num_boxes``, timings and ``speedup`` ratios.
    """
    from .parity import ort_session

    enc32, enc8 = ort_session(paths_fp32["encoder"], threads), ort_session(paths_int8["encoder"], threads)
    dec32, dec8 = ort_session(paths_fp32["decoder"], threads), ort_session(paths_int8["decoder"], threads)
    ious = {"end_to_end": [], "encoder_int8_only": [], "decoder_int8_only": []}
    for image in images:
        progress(f"  held-out {image.name}: {len(image.boxes)} boxes")
        (e32,) = enc32.run(None, {io_spec.IMAGE: image.encoder_input})
        (e8,) = enc8.run(None, {io_spec.IMAGE: image.encoder_input})
        hw = tuple(image.encoder_input.shape[2:])
        for box in image.boxes:
            ref = dec32.run(None, _box_feed(box, e32, hw))[0][0, 0] > 0
            settings = {"end_to_end": (dec8, e8), "encoder_int8_only": (dec32, e8), "decoder_int8_only": (dec8, e32)}
            for setting, (decoder, embedding) in settings.items():
                got = decoder.run(None, _box_feed(box, embedding, hw))[0][0, 0] > 0
                ious[setting].append(mask_iou(ref, got))
    sample = images[0]
    feed = _box_feed(sample.boxes[0], enc32.run(None, {io_spec.IMAGE: sample.encoder_input})[0], tuple(sample.encoder_input.shape[2:]))
    timing = {
        "encoder_fp32_s": _median_seconds(lambda: enc32.run(None, {io_spec.IMAGE: sample.encoder_input}), timing_repeats),
        "encoder_int8_s": _median_seconds(lambda: enc8.run(None, {io_spec.IMAGE: sample.encoder_input}), timing_repeats),
        "decoder_fp32_s": _median_seconds(lambda: dec32.run(None, feed), 10 * timing_repeats),
        "decoder_int8_s": _median_seconds(lambda: dec8.run(None, feed), 10 * timing_repeats),
    }
    return {
        "miou": {k: float(np.mean(v)) for k, v in ious.items()},
        "min_iou": {k: float(np.min(v)) for k, v in ious.items()},
        "num_images": len(images),
        "num_boxes": len(ious["end_to_end"]),
        "timing": timing,
        "speedup": {
            "encoder": timing["encoder_fp32_s"] / timing["encoder_int8_s"],
            "decoder": timing["decoder_fp32_s"] / timing["decoder_int8_s"],
        },
        "threads": threads,
    }
