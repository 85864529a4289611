"""Accuracy-driven int8: keep the most quantisation-sensitive node groups in float.

The quantisable nodes are grouped (encoder: per TinyViT stage and projection kind, e.g.
``encoder layers.2 mlp/fc1``; decoders: per transformer sub-layer, hypernetwork MLPs, IoU head,
and the lone prompt/mask products). Each group's sensitivity is the end-to-end box-mask mIoU
gained by keeping it alone in float; the groups are then kept in float greedily, most sensitive
first, until the mIoU reaches the target. Everything is measured on the CALIBRATION images (a
few of them, with random boxes); the held-out images only report afterwards.

The encoder is calibrated once: a trial restores the float operands of the excluded nodes in
the fully quantised QDQ graph (``keep_float``) instead of calibrating again, and int8 encoder
embeddings are cached per set of excluded encoder groups. Decoder trials re-run the (cheap)
dynamic quantisation with ``nodes_to_exclude``.
"""
from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from ..utils.mask_metrics import mask_iou
from . import io_spec, quantize

_ENCODER_GROUP = re.compile(r"^/image_encoder/(layers\.\d+)/blocks\.\d+/(attn/qkv|attn/proj|mlp/fc1|mlp/fc2)/")
_DECODER_GROUP = re.compile(r"^/transformer/(layers\.\d+/[a-z_]+|final_attn_token_to_image)/")
_DECODER_HEADS = re.compile(r"^/(iou_prediction_head|output_hypernetworks_mlps)")


def node_group(graph_kind: str, node_name: str) -> str:
    """The sensitivity group of a MatMul/Gemm node, e.g. ``encoder layers.1 attn/qkv``.

    Arguments:
      graph_kind: "encoder" or "decoder" (decoder and decoder_batched share groups).
      node_name: the ONNX node name (torch.onnx scope path).
    """
    if graph_kind == "encoder":
        match = _ENCODER_GROUP.match(node_name)
        return f"encoder {match.group(1)} {match.group(2)}" if match else f"encoder {node_name}"
    match = _DECODER_GROUP.match(node_name) or _DECODER_HEADS.match(node_name)
    # Ungrouped decoder products: /MatMul (point coords x Fourier matrix), /MatMul_1 (hypernet x upscaled).
    return f"decoder {match.group(1) if match else node_name}"


def groups_of(path: Path, graph_kind: str, op_types: Iterable[str] = ("MatMul", "Gemm")) -> dict[str, list[str]]:
    """{group: node names} for the ``op_types`` nodes of an ONNX file."""
    import onnx

    groups: dict[str, list[str]] = {}
    for node in onnx.load(str(path), load_external_data=False).graph.node:
        if node.op_type in op_types:
            groups.setdefault(node_group(graph_kind, node.name), []).append(node.name)
    return groups


def keep_float(qdq_model, float_model, node_names: Iterable[str]):
    """A copy of a QDQ model in which ``node_names`` run in float.

    A weight operand (DequantizeLinear of an initializer) is replaced by the float initializer the
    same node reads in ``float_model``; an activation operand (QuantizeLinear -> DequantizeLinear)
    by the tensor before the QuantizeLinear. A Q -> DQ pair on an output (ORT adds one before the
    bias Add) becomes an Identity unless a still-quantised MatMul/Gemm reads it. Q/DQ nodes and
    initializers nobody reads any more are removed.

    Arguments:
      qdq_model / float_model: onnx ModelProto, the QDQ graph and the graph it was quantised from.
      node_names: nodes to run in float.
    Returns:
      a new ModelProto.
    """
    import onnx

    model = onnx.ModelProto()
    model.CopyFrom(qdq_model)
    graph = model.graph
    wanted = set(node_names)
    still_int8 = quantized_nodes(model) - wanted
    float_nodes = {n.name: n for n in float_model.graph.node if n.name in wanted}
    float_inits = {i.name: i for i in float_model.graph.initializer}
    producers = {out: node for node in graph.node for out in node.output}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    present = {i.name for i in graph.initializer}
    for node in graph.node:
        if node.name not in wanted:
            continue
        for index, name in enumerate(node.input):
            dq = producers.get(name)
            if dq is None or dq.op_type != "DequantizeLinear":
                continue
            source = producers.get(dq.input[0])
            if source is not None and source.op_type == "QuantizeLinear":
                node.input[index] = source.input[0]
            else:
                original = float_nodes[node.name].input[index]
                if original not in present:
                    graph.initializer.append(float_inits[original])
                    present.add(original)
                node.input[index] = original
        for output in node.output:
            for q in [c for c in consumers.get(output, []) if c.op_type == "QuantizeLinear"]:
                for dq in [c for c in consumers.get(q.output[0], []) if c.op_type == "DequantizeLinear"]:
                    if not any(c.name in still_int8 for c in consumers.get(dq.output[0], [])):
                        dq.op_type = "Identity"
                        del dq.input[:]
                        dq.input.append(output)
    _prune(graph)
    return model


def _prune(graph) -> None:
    # Drop nodes whose outputs nobody reads (repeat: removing a DQ frees its Q), then dead initializers.
    outputs = {o.name for o in graph.output}
    while True:
        read = outputs | {i for node in graph.node for i in node.input}
        dead = [n for n in graph.node if not any(o in read for o in n.output)]
        if not dead:
            break
        for node in dead:
            graph.node.remove(node)
    read = {i for node in graph.node for i in node.input}
    keep = [i for i in graph.initializer if i.name in read]
    del graph.initializer[:]
    graph.initializer.extend(keep)


def quantized_nodes(model, op_types: Iterable[str] = ("MatMul", "Gemm")) -> set[str]:
    """Names of the ``op_types`` nodes of a QDQ model that read a DequantizeLinear output."""
    producers = {out: node.op_type for node in model.graph.node for out in node.output}
    return {n.name for n in model.graph.node
            if n.op_type in op_types and any(producers.get(i) == "DequantizeLinear" for i in n.input)}


@dataclass
class SearchResult:
    """What ``greedy_exclusion`` decided: the groups kept in float and every figure on the way."""

    excluded: list[str]
    baseline: float
    score: float
    target_met: bool
    sensitivity: dict[str, float] = field(default_factory=dict)
    steps: list[dict] = field(default_factory=list)


def greedy_exclusion(groups: Iterable[str], score: Callable[[frozenset], float], target: float,
                     log: Callable[[str], None] = print) -> SearchResult:
    """Keep the most sensitive groups in float, one at a time, until ``score`` reaches ``target``.

    Arguments:
      groups: candidate group names.
      score: mIoU of int8 against fp32 with the given groups kept in float (called once per set).
      target: the mIoU to reach.
      log: one line per trial.
    Returns:
      SearchResult; ``target_met`` is False only when even excluding every group misses the target.
    """
    groups = list(groups)
    scores: dict[frozenset, float] = {}

    def measured(excluded: frozenset) -> float:
        if excluded not in scores:
            scores[excluded] = float(score(excluded))
        return scores[excluded]

    baseline = measured(frozenset())
    log(f"  calibration mIoU, all groups int8: {baseline:.4f} (target {target})")
    result = SearchResult(excluded=[], baseline=baseline, score=baseline, target_met=baseline >= target)
    if result.target_met or not groups:
        return result
    for group in groups:
        result.sensitivity[group] = measured(frozenset([group])) - baseline
        log(f"  sensitivity {group}: {result.sensitivity[group]:+.4f}")
    for group in sorted(groups, key=lambda g: -result.sensitivity[g]):
        result.excluded.append(group)
        result.score = measured(frozenset(result.excluded))
        result.steps.append({"keep_float": group, "miou": result.score})
        log(f"  + keep {group} float -> calibration mIoU {result.score:.4f}")
        if result.score >= target:
            result.target_met = True
            break
    return result


class CalibrationScorer:
    """End-to-end box-mask mIoU (int8 encoder + int8 decoder vs fp32) on calibration images.

    Arguments:
      fp32: ``encoder`` (quant-preprocessed fp32 graph) and ``decoder`` files.
      encoder_qdq: the fully quantised QDQ encoder.
      images: calibration images with boxes (``quantize.HeldOutImage``, here not held out).
      groups: {group: node names} of the encoder and the decoder.
      work_dir: where trial decoders are written.
    """

    def __init__(self, fp32: dict[str, Path], encoder_qdq: Path, images: list, groups: dict[str, list[str]],
                 work_dir: Path) -> None:
        import onnx

        from .parity import ort_session

        self._fp32_encoder = onnx.load(str(fp32["encoder"]))
        self._qdq_encoder = onnx.load(str(encoder_qdq))
        self._decoder_path = fp32["decoder"]
        self._images, self._groups, self._work_dir = images, groups, Path(work_dir)
        self._embeddings: dict[frozenset, list[np.ndarray]] = {}
        self._decoders: dict[frozenset, object] = {}
        self._trials = 0
        encoder = ort_session(fp32["encoder"])
        self._decoders["fp32"] = ort_session(fp32["decoder"])
        self._fp32_embeddings = [encoder.run(None, {io_spec.IMAGE: im.encoder_input})[0].copy() for im in images]
        self._references = [self._masks(self._decoders["fp32"], e, im) for e, im in zip(self._fp32_embeddings, images)]

    def _masks(self, decoder, embedding: np.ndarray, image) -> list[np.ndarray]:
        hw = tuple(image.encoder_input.shape[2:])
        return [decoder.run(None, quantize._box_feed(box, embedding, hw))[0][0, 0] > 0 for box in image.boxes]

    def _nodes(self, groups: Iterable[str]) -> list[str]:
        return [name for group in groups for name in self._groups[group]]

    def encoder_model(self, excluded: Iterable[str]):
        """The QDQ encoder ModelProto with the excluded encoder groups in float."""
        return keep_float(self._qdq_encoder, self._fp32_encoder, self._nodes(g for g in excluded if g.startswith("encoder")))

    def _int8_embeddings(self, excluded: frozenset) -> list[np.ndarray]:
        import onnxruntime as ort

        if excluded not in self._embeddings:
            options = ort.SessionOptions()
            options.log_severity_level = 3
            session = ort.InferenceSession(self.encoder_model(excluded).SerializeToString(), options,
                                           providers=["CPUExecutionProvider"])
            # Copies: an output array of ONNX Runtime keeps its session's whole memory arena alive (measured:
            # +730 MB per cached trial, 16.5 GB peak for a full search).
            self._embeddings[excluded] = [session.run(None, {io_spec.IMAGE: im.encoder_input})[0].copy()
                                          for im in self._images]
        return self._embeddings[excluded]

    def _int8_decoder(self, excluded: frozenset):
        from .parity import ort_session

        if excluded not in self._decoders:
            # Each ONNX Runtime session keeps its memory arena: holding one per trial grew a full search past
            # 20 GB. Keep the fp32 reference and the latest trial only (the search rarely revisits a set).
            for key in [k for k in self._decoders if k != "fp32"]:
                del self._decoders[key]
            self._trials += 1
            path = self._work_dir / f"decoder.trial{self._trials}.onnx"
            quantize.quantize_decoder_dynamic(self._decoder_path, path, nodes_to_exclude=self._nodes(excluded))
            self._decoders[excluded] = ort_session(path)
            path.unlink()
        return self._decoders[excluded]

    def __call__(self, excluded: frozenset) -> float:
        encoder_groups = frozenset(g for g in excluded if g.startswith("encoder"))
        decoder = self._int8_decoder(excluded - encoder_groups)
        ious = []
        for embedding, image, references in zip(self._int8_embeddings(encoder_groups), self._images, self._references):
            ious += [mask_iou(ref, got) for ref, got in zip(references, self._masks(decoder, embedding, image))]
        return float(np.mean(ious))


def quantize_accuracy_driven(paths: dict[str, Path], out: dict[str, Path], calibration_inputs: list[Callable],
                             target: float, log: Callable[[str], None] = print, eval_count: int = 3) -> dict:
    """Write the int8 encoder/decoder/decoder_batched with the sensitive groups kept in float.

    Arguments:
      paths / out: fp32 and int8 files for ``encoder``, ``decoder`` and optionally ``decoder_batched``.
      calibration_inputs: thunks returning encoder inputs (1,3,h,w) float32 0..255; all calibrate,
        the first ``eval_count`` (with 8 random boxes each) also score the trials.
      target: calibration mIoU to reach.
    Returns:
      the manifest's search record: excluded groups and node counts, baseline/final calibration
      mIoU, per-group sensitivity and the greedy steps.
    """
    import onnx

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        prepared = quantize.prepare_for_quantization(paths[io_spec.ENCODER], tmp / "encoder.prep.onnx")
        qdq = tmp / "encoder.qdq.onnx"
        quantize.quantize_encoder_static(prepared, qdq, (make() for make in calibration_inputs),
                                         len(calibration_inputs), preprocess=False)
        quantized = quantized_nodes(onnx.load(str(qdq)))
        encoder_groups = {g: [n for n in names if n in quantized] for g, names in groups_of(prepared, "encoder").items()}
        encoder_groups = {g: names for g, names in encoder_groups.items() if names}
        decoder_groups = groups_of(paths[io_spec.DECODER], "decoder")
        images = []
        for index, make in enumerate(calibration_inputs[:eval_count]):
            x = make()
            images.append(quantize.HeldOutImage(f"calibration_{index}", x,
                                                quantize.random_boxes(1_000 + index, x.shape[2], x.shape[3], 8)))
        log(f"accuracy-driven int8: {len(encoder_groups)} encoder + {len(decoder_groups)} decoder groups, "
            f"scored on {len(images)} calibration images x 8 boxes")
        scorer = CalibrationScorer({"encoder": prepared, "decoder": paths[io_spec.DECODER]}, qdq, images,
                                   {**encoder_groups, **decoder_groups}, tmp)
        result = greedy_exclusion([*encoder_groups, *decoder_groups], scorer, target, log)
        onnx.save(scorer.encoder_model(result.excluded), str(out[io_spec.ENCODER]))
        excluded_decoder = [g for g in result.excluded if g.startswith("decoder")]
        for key in [k for k in (io_spec.DECODER, io_spec.DECODER_BATCHED) if k in paths]:
            nodes = [name for g, names in groups_of(paths[key], "decoder").items() if g in excluded_decoder for name in names]
            quantize.quantize_decoder_dynamic(paths[key], out[key], nodes_to_exclude=nodes)
    log(f"  kept in float: {', '.join(result.excluded) or 'nothing'}; calibration mIoU {result.baseline:.4f} -> "
        f"{result.score:.4f} (target {target}{'' if result.target_met else ', NOT met even all-float'})")
    return {
        "method": "greedy: keep the most sensitive node groups float until the calibration mIoU reaches the target",
        "calibration_eval": {"images": len(images), "boxes_per_image": 8},
        "calibration_miou_all_int8": result.baseline,
        "calibration_miou": result.score,
        "target_met_on_calibration": result.target_met,
        "excluded_groups": result.excluded,
        "excluded_nodes": sum(len({**encoder_groups, **decoder_groups}[g]) for g in result.excluded),
        "sensitivity": result.sensitivity,
        "steps": result.steps,
    }

