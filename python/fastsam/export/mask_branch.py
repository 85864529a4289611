"""Compose a decoder graph whose dense prompt embedding comes from an ONNX ``If`` on ``has_mask_input``.

Traced graphs have no control flow, so the exported decoders used to run the mask-downscaling CNN on
every prompt's ``mask_input`` and multiply the result by ``has_mask_input`` (0 without a mask).
Here the decoder body is traced with the dense embedding as an extra input and that input is fed by

    If(has_mask_input != 0) then: the traced embed_masks(mask_input, has_mask_input)   (B,256,64,64)
                            else: no_mask_embed                                        (1,256,1,1)

The two agree wherever the traced formula ``has*downscale(mask) + (1-has)*no_mask`` is defined (at
has == 0 it is exactly no_mask). The batch-1 else-branch broadcasts, so without a mask every
image-side tensor of the first two-way layer is computed once for all prompts.
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

DENSE_INPUT = "dense_prompt_embeddings"
_PREFIX = "mask_branch/"
_ANY_4D = ["dense_batch", "dense_channels", "dense_height", "dense_width"]


def _then_branch(masks: onnx.ModelProto, outer_inputs: set[str]) -> onnx.GraphProto:
    """The mask-embedding graph as a subgraph: its own inputs read the outer graph's values of the same
    name; every other name gets a prefix so it cannot clash with the body's names."""
    graph = masks.graph
    missing = {i.name for i in graph.input} - outer_inputs
    if missing:
        raise ValueError(f"mask-embedding graph inputs {sorted(missing)} are not inputs of the decoder body")

    def rename(name: str) -> str:
        return name if (not name or name in outer_inputs) else _PREFIX + name

    nodes = []
    for node in graph.node:
        copy = onnx.NodeProto()
        copy.CopyFrom(node)
        copy.name = _PREFIX + node.name
        copy.input[:] = [rename(n) for n in node.input]
        copy.output[:] = [rename(n) for n in node.output]
        nodes.append(copy)
    initializers = []
    for init in graph.initializer:
        copy = onnx.TensorProto()
        copy.CopyFrom(init)
        copy.name = rename(init.name)
        initializers.append(copy)
    if len(graph.output) != 1:
        raise ValueError(f"mask-embedding graph must have one output, has {len(graph.output)}")
    output = helper.make_tensor_value_info(rename(graph.output[0].name), onnx.TensorProto.FLOAT, _ANY_4D)
    return helper.make_graph(nodes, "dense_from_mask_input", [], [output], initializer=initializers)


def attach_mask_branch(body: onnx.ModelProto, masks: onnx.ModelProto, no_mask: np.ndarray,
                       has_mask_name: str, input_names: list[str]) -> onnx.ModelProto:
    """Replace the body's ``DENSE_INPUT`` graph input by an If node over the mask-embedding graph.

    Arguments:
      body: decoder traced with an extra float input ``DENSE_INPUT`` (any batch size).
      masks: graph computing the dense embedding from (float) inputs named in ``input_names``.
      no_mask: float32 (1,C,1,1) dense embedding used when ``has_mask_name`` is 0.
      has_mask_name: name of the (1,) float flag input.
      input_names: the interface's inputs in order; those the body does not read (the tracer drops
        unused inputs) are taken from the mask graph's inputs.
    Returns:
      a new model with inputs ``input_names`` and the body's outputs, opsets and metadata.
    """
    model = onnx.ModelProto()
    model.CopyFrom(body)
    graph = model.graph
    traced = {i.name: i for i in graph.input}
    if DENSE_INPUT not in traced or has_mask_name not in input_names:
        raise ValueError(f"decoder body must have input {DENSE_INPUT!r} and the interface {has_mask_name!r}, "
                         f"has {list(traced)} / {input_names}")
    outer = set(input_names)
    then_graph = _then_branch(masks, outer)
    constant = helper.make_node("Constant", [], [_PREFIX + "no_mask"],
                                value=numpy_helper.from_array(no_mask.astype(np.float32), "no_mask"))
    else_graph = helper.make_graph([constant], "dense_without_mask_input", [],
                                   [helper.make_tensor_value_info(_PREFIX + "no_mask", onnx.TensorProto.FLOAT, _ANY_4D)])
    zero = numpy_helper.from_array(np.zeros(1, dtype=np.float32), _PREFIX + "zero")
    branch = [
        helper.make_node("Constant", [], [_PREFIX + "zero"], value=zero, name=_PREFIX + "zero"),
        helper.make_node("Equal", [has_mask_name, _PREFIX + "zero"], [_PREFIX + "no_mask_given"],
                         name=_PREFIX + "equal"),
        helper.make_node("Not", [_PREFIX + "no_mask_given"], [_PREFIX + "mask_given"], name=_PREFIX + "not"),
        helper.make_node("If", [_PREFIX + "mask_given"], [DENSE_INPUT], name=_PREFIX + "if",
                         then_branch=then_graph, else_branch=else_graph),
    ]
    body_nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend(branch + body_nodes)
    declared = {**{i.name: i for i in masks.graph.input}, **traced}
    missing = [name for name in input_names if name not in declared]
    if missing:
        raise ValueError(f"interface inputs {missing} are inputs of neither the decoder body nor the mask graph")
    inputs = [declared[name] for name in input_names]
    del graph.input[:]
    graph.input.extend(inputs)
    onnx.checker.check_model(model)
    return model
