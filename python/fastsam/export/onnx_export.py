"""Tracing the export wrappers into ONNX files with the names and dynamic axes of ``io_spec``."""
from __future__ import annotations

import warnings
from pathlib import Path

import onnx
import torch
from torch import nn

from . import io_spec, mask_branch
from .onnx_models import (BatchedDecoderOnnxModel, DecoderHeadOnnxModel, DecoderMasksOnnxModel, DecoderOnnxModel,
                          EncoderOnnxModel)

DEFAULT_OPSET = 17
MIN_OPSET = 13  # dynamic Pad/Slice/Resize inputs need 11+, the quantisers want 13+


def _trace(module: nn.Module, args: tuple, path: Path, input_names: list[str], output_names: list[str],
           dynamic_axes: dict, opset: int) -> Path:
    if opset < MIN_OPSET:
        raise ValueError(f"opset must be >= {MIN_OPSET}, got {opset}")
    path = Path(path)
    module.eval()
    with warnings.catch_warnings():
        # The tracer warns about shape-dependent Python values (pad amounts, sizes) that ARE
        # recorded as graph ops here; the parity gate checks the result at other shapes.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            args,
            str(path),
            input_names=input_names,
            output_names=output_names,
            dynamic_axes=dynamic_axes,
            opset_version=opset,
            do_constant_folding=True,
            dynamo=False,
        )
    # The TorchScript exporter restores the wrapper's training flag on exit; wrappers are built in
    # eval mode, but make sure nothing (BatchNorm in TinyViT!) is left in training mode.
    module.eval()
    return path


def _export(module: nn.Module, args: tuple, path: Path, spec: io_spec.ModelSpec, opset: int) -> Path:
    _trace(module, args, path, spec.input_names, spec.output_names, spec.dynamic_axes(), opset)
    set_interface_shapes(path, spec)
    return path


class _DecoderBody(nn.Module):
    """A decoder wrapper with the dense prompt embedding as a last, extra input."""

    def __init__(self, decoder: nn.Module) -> None:
        super().__init__()
        self.decoder = decoder

    def forward(self, *inputs):
        return self.decoder(*inputs[:-1], dense=inputs[-1])


class _DenseEmbedding(nn.Module):
    """``embed_masks(mask_input, has_mask_input)`` of a decoder wrapper."""

    def __init__(self, decoder: nn.Module) -> None:
        super().__init__()
        self.decoder = decoder

    def forward(self, mask_input, has_mask_input):
        return self.decoder.embed_masks(mask_input, has_mask_input)


def _export_decoder(decoder: nn.Module, args: tuple, path: Path, spec: io_spec.ModelSpec, opset: int) -> Path:
    """Trace body and mask embedding separately and join them with an If (see ``mask_branch``)."""
    path = Path(path)
    names = spec.input_names
    mask_args = (args[names.index(io_spec.MASK_INPUT)], args[names.index(io_spec.HAS_MASK_INPUT)])
    with torch.no_grad():
        dense = decoder.embed_masks(*mask_args)
    body_path = path.with_name(path.name + ".body.tmp")
    masks_path = path.with_name(path.name + ".masks.tmp")
    try:
        axes = spec.dynamic_axes()
        _trace(_DecoderBody(decoder), args + (dense,), body_path, names + [mask_branch.DENSE_INPUT],
               spec.output_names, {**axes, mask_branch.DENSE_INPUT: {0: "dense_batch"}}, opset)
        _trace(_DenseEmbedding(decoder), mask_args, masks_path, [io_spec.MASK_INPUT, io_spec.HAS_MASK_INPUT],
               ["dense"], {k: v for k, v in axes.items() if k == io_spec.MASK_INPUT}, opset)
        no_mask = decoder.no_mask_embedding().detach().numpy()
        model = mask_branch.attach_mask_branch(onnx.load(str(body_path)), onnx.load(str(masks_path)), no_mask,
                                               io_spec.HAS_MASK_INPUT, names)
        onnx.save(model, str(path))
    finally:
        body_path.unlink(missing_ok=True)
        masks_path.unlink(missing_ok=True)
    set_interface_shapes(path, spec)
    return path


def set_interface_shapes(path: Path, spec: io_spec.ModelSpec) -> None:
    """Rewrite graph input/output shapes to exactly those of ``spec`` (the exporter invents names
    such as ``Reshapelow_res_masks_dim_1`` for output dims it cannot infer as constants)."""
    model = onnx.load(str(path))
    declared = {t.name: t for t in spec.inputs + spec.outputs}
    for value in list(model.graph.input) + list(model.graph.output):
        tensor = declared.get(value.name)
        if tensor is None:
            raise RuntimeError(f"exported graph has unexpected input/output {value.name!r}")
        shape = value.type.tensor_type.shape
        del shape.dim[:]
        for dim in tensor.shape:
            if isinstance(dim, str):
                shape.dim.add().dim_param = dim
            else:
                shape.dim.add().dim_value = dim
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def example_encoder_inputs(image_size: int = 1024) -> tuple[torch.Tensor]:
    """A landscape image (H < W) so the traced graph pads one side and keeps H, W distinct."""
    generator = torch.Generator().manual_seed(0)
    height = image_size * 2 // 3
    return (torch.rand(1, 3, height, image_size, generator=generator) * 255,)


def example_decoder_inputs(image_size: int = 1024, num_prompts: int | None = None) -> tuple[torch.Tensor, ...]:
    """Random decoder inputs; ``num_prompts`` None gives the single-prompt decoder's inputs."""
    generator = torch.Generator().manual_seed(0)
    batch = 1 if num_prompts is None else num_prompts
    embed, low_res = image_size // 16, image_size // 4
    inputs = (
        torch.randn(1, io_spec.EMBED_DIM, embed, embed, generator=generator),
        torch.rand(batch, 3, 2, generator=generator) * image_size,
        torch.randint(-1, 4, (batch, 3), generator=generator).to(torch.float32),
        torch.randn(batch, 1, low_res, low_res, generator=generator),
        torch.tensor([1.0]),
    )
    if num_prompts is None:
        inputs = inputs + (torch.tensor([1500.0, 2250.0]),)
    return inputs


def export_encoder(sam: nn.Module, path: Path, opset: int = DEFAULT_OPSET) -> Path:
    """Write the encoder graph (normalise + pad + image encoder) to ``path``.

    Arguments:
      sam: ``Sam`` model (left in eval mode).
      path: output .onnx file.
      opset: ONNX opset (>= 13).
    Returns:
      path.
    """
    sam.eval()
    size = int(sam.image_encoder.img_size)
    return _export(EncoderOnnxModel(sam), example_encoder_inputs(size), path, io_spec.encoder_spec(size), opset)


def export_decoder(sam: nn.Module, path: Path, opset: int = DEFAULT_OPSET) -> Path:
    """Write the official-interface single-prompt decoder to ``path`` (see ``io_spec.decoder_spec``)."""
    sam.eval()
    size = int(sam.image_encoder.img_size)
    args = example_decoder_inputs(size)
    return _export_decoder(DecoderOnnxModel(sam), args, path, io_spec.decoder_spec(size), opset)


def export_decoder_batched(sam: nn.Module, path: Path, opset: int = DEFAULT_OPSET) -> Path:
    """Write the batched decoder (B prompts x N points) to ``path`` (see ``io_spec.decoder_batched_spec``)."""
    sam.eval()
    size = int(sam.image_encoder.img_size)
    args = example_decoder_inputs(size, num_prompts=3)
    return _export_decoder(BatchedDecoderOnnxModel(sam), args, path, io_spec.decoder_batched_spec(size), opset)


def export_decoder_head(sam: nn.Module, path: Path, opset: int = DEFAULT_OPSET) -> Path:
    """Write the batched decoder's first half to ``path`` (see ``io_spec.decoder_head_spec``)."""
    sam.eval()
    size = int(sam.image_encoder.img_size)
    args = example_decoder_inputs(size, num_prompts=3)
    return _export_decoder(DecoderHeadOnnxModel(sam), args, path, io_spec.decoder_head_spec(size), opset)


def example_masks_inputs(image_size: int = 1024, num_prompts: int = 3, num_tokens: int = 2) -> tuple[torch.Tensor, ...]:
    """Random (image_tokens, mask_weights) for the decoder_masks graph."""
    generator = torch.Generator().manual_seed(0)
    tokens = (image_size // 16) ** 2
    return (torch.randn(num_prompts, tokens, io_spec.EMBED_DIM, generator=generator),
            torch.randn(num_prompts, num_tokens, io_spec.MASK_WEIGHT_DIM, generator=generator))


def export_decoder_masks(sam: nn.Module, path: Path, opset: int = DEFAULT_OPSET) -> Path:
    """Write the batched decoder's second half (upscaling + mask projection) to ``path``."""
    sam.eval()
    size = int(sam.image_encoder.img_size)
    return _export(DecoderMasksOnnxModel(sam), example_masks_inputs(size), path, io_spec.decoder_masks_spec(size),
                   opset)


EXPORTERS = {
    io_spec.ENCODER: export_encoder,
    io_spec.DECODER: export_decoder,
    io_spec.DECODER_BATCHED: export_decoder_batched,
    io_spec.DECODER_HEAD: export_decoder_head,
    io_spec.DECODER_MASKS: export_decoder_masks,
}
