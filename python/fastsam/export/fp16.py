"""Mixed-precision fp16 encoder for GPUs, keeping numerically sensitive operators in float32.

TinyViT breaks in plain fp16: normalisation statistics, softmax over attention logits with
large additive biases, and GELU's erf overflow or lose too much precision. Those operators (and
the arithmetic that LayerNorm decomposes into) stay float32; convolutions and matrix products,
where the speed is, run in fp16. Graph inputs/outputs stay float32 so the runtime feeds the same
tensors as for encoder.onnx.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import onnx

# Kept in float32 (in addition to onnxconverter-common's own default block list).
FP32_OPS = (
    "LayerNormalization",
    "BatchNormalization",
    "InstanceNormalization",
    "Softmax",
    "ReduceMean",
    "ReduceSum",
    "Pow",
    "Sqrt",
    "Reciprocal",
    "Div",
    "Erf",
    "Exp",
    "Resize",
)


def unshare_mixed_initializers(graph: onnx.GraphProto, fp32_ops: set[str]) -> int:
    """Give each fp16 consumer its own copy of an initializer that an fp32-kept node also reads.

    The exporter and simplifier merge equal constants (e.g. the all-zero biases of a Conv and a
    LayerNorm); the converter then keeps the shared tensor float32 and the fp16 Conv is left with a
    float bias, which ONNX Runtime rejects at load ("Type parameter (T) of Optype (Conv) bound to
    different types"). Returns how many copies were made.
    """
    initializers = {init.name: init for init in graph.initializer}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            if name in initializers:
                consumers.setdefault(name, []).append(node)
    copies = 0
    for name, nodes in consumers.items():
        kept = [node.op_type in fp32_ops for node in nodes]
        if all(kept) or not any(kept):
            continue
        for node in (n for n, k in zip(nodes, kept) if not k):
            copy = onnx.TensorProto()
            copy.CopyFrom(initializers[name])
            copy.name = f"{name}__fp16_{copies}"
            graph.initializer.append(copy)
            node.input[:] = [copy.name if i == name else i for i in node.input]
            copies += 1
    return copies


def convert_to_fp16(src: Path, dst: Path) -> Path:
    """Write a mixed fp16/fp32 copy of ``src`` to ``dst`` (float32 graph inputs and outputs).

    Arguments:
      src: fp32 .onnx file.
      dst: output file (e.g. encoder.fp16.onnx).
    Returns:
      dst.
    Raises:
      ImportError: onnxconverter-common is not installed (message says how to install it).
    """
    try:
        from onnxconverter_common import float16
    except ImportError as err:
        raise ImportError("--fp16 needs onnxconverter-common: pip install onnxconverter-common") from err

    model = onnx.load(str(src))
    # Stale fp32 shape/type annotations make the converter's inserted Casts contradict them.
    del model.graph.value_info[:]
    block = sorted(set(float16.DEFAULT_OP_BLOCK_LIST) | set(FP32_OPS))
    unshare_mixed_initializers(model.graph, set(block))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # per-initializer notes about values clamped to fp16 range
        converted = float16.convert_float_to_float16(model, keep_io_types=True, op_block_list=block)
    onnx.checker.check_model(converted)
    onnx.save(converted, str(dst))
    return Path(dst)
