"""The export-time decoder formulation (decoder_graph) and the If-composed mask branch (mask_branch).

decoder_graph.predict_masks must equal MaskDecoder.predict_masks up to float32 round-off (it only
re-associates sums: ConvTranspose as MatMul, attention re-ordered); tolerance 1e-5 abs on logits whose
standard deviation here is ~0.1. The exported decoder must read the mask input only inside the If and must agree
with the reference torch formulation with and without a mask input.
"""
from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from fastsam.export import decoder_graph, io_spec, mask_branch, onnx_export, parity
from fastsam.export.onnx_models import BatchedDecoderOnnxModel

TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def sam():
    """The standalone vit_t (256 px: 16x16 embeddings) with every constant decoder/prompt tensor perturbed.

    Default init leaves norm weights at 1 and many biases at 0, where a rewrite that drops them would still
    agree with the reference; seeded noise on those tensors makes every term count.
    """
    import standalone_model

    model = standalone_model.build_model()
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for module in (model.mask_decoder, model.prompt_encoder):
            for tensor in module.parameters():
                if tensor.is_floating_point() and bool((tensor == tensor.flatten()[0]).all()):
                    tensor.add_(0.1 * torch.randn(tensor.shape, generator=generator))
    return model


def _grid(sam) -> tuple[int, int]:
    return tuple(sam.prompt_encoder.image_embedding_size)


def _inputs(sam, batch: int, seed: int):
    generator = torch.Generator().manual_seed(seed)
    embedding = torch.randn(1, 256, *_grid(sam), generator=generator)
    sparse = torch.randn(batch, 3, 256, generator=generator)
    dense = torch.randn(batch, 256, *_grid(sam), generator=generator)
    return embedding, sam.prompt_encoder.get_dense_pe(), sparse, dense


def test_predict_masks_equals_mask_decoder(sam):
    embedding, pe, sparse, dense = _inputs(sam, batch=3, seed=0)
    with torch.no_grad():
        ref_masks, ref_iou = sam.mask_decoder.predict_masks(embedding, pe, sparse, dense)
        masks, iou = decoder_graph.predict_masks(sam.mask_decoder, embedding, pe, sparse, dense)
    low_res = sam.image_encoder.img_size // 4
    assert masks.shape == ref_masks.shape == (3, 4, low_res, low_res)
    torch.testing.assert_close(masks, ref_masks, rtol=0, atol=TOLERANCE)
    torch.testing.assert_close(iou, ref_iou, rtol=0, atol=TOLERANCE)
    # Different prompts differ, so a broadcast mix-up between prompts would fail the comparison above.
    assert (ref_masks[0] - ref_masks[1]).abs().max() > 1e-2


def test_predict_masks_with_one_dense_embedding_for_all_prompts(sam):
    embedding, pe, sparse, _ = _inputs(sam, batch=4, seed=1)
    dense = sam.prompt_encoder.no_mask_embed.weight.reshape(1, -1, 1, 1)
    with torch.no_grad():
        ref_masks, ref_iou = sam.mask_decoder.predict_masks(embedding, pe, sparse, dense.expand(4, -1, *_grid(sam)))
        masks, iou = decoder_graph.predict_masks(sam.mask_decoder, embedding, pe, sparse, dense)
    torch.testing.assert_close(masks, ref_masks, rtol=0, atol=TOLERANCE)
    torch.testing.assert_close(iou, ref_iou, rtol=0, atol=TOLERANCE)


def test_conv_transpose_rewrite_rejects_overlapping_kernels():
    with pytest.raises(ValueError, match="kernel-2 stride-2"):
        decoder_graph._conv_transpose_as_matmul(nn.ConvTranspose2d(8, 4, kernel_size=3, stride=2))


@pytest.fixture(scope="module")
def batched_onnx(sam, tmp_path_factory):
    path = tmp_path_factory.mktemp("decoder_graph") / "decoder_batched.onnx"
    return onnx_export.export_decoder_batched(sam, path)


def test_exported_decoder_runs_the_mask_cnn_only_inside_the_if(batched_onnx):
    graph = onnx.load(str(batched_onnx)).graph
    top_ops = [n.op_type for n in graph.node]
    assert "Conv" not in top_ops and "ConvTranspose" not in top_ops
    (if_node,) = [n for n in graph.node if n.op_type == "If"]
    branches = {a.name: a.g for a in if_node.attribute}
    assert "Conv" in [n.op_type for n in branches["then_branch"].node]
    assert [n.op_type for n in branches["else_branch"].node] == ["Constant"]
    assert [i.name for i in graph.input] == io_spec.decoder_batched_spec().input_names


@pytest.mark.parametrize("with_mask", [False, True])
def test_exported_decoder_equals_reference_formulation(sam, batched_onnx, with_mask):
    feed = parity.random_prompts(3, num_prompts=5, num_points=2, image_size=sam.image_encoder.img_size,
                                 with_mask=with_mask)
    feed[io_spec.IMAGE_EMBEDDINGS] = np.random.default_rng(4).normal(size=(1, 256, *_grid(sam))).astype(np.float32)
    reference = BatchedDecoderOnnxModel(sam, optimized_graph=False)
    names = io_spec.decoder_batched_spec().input_names
    with torch.no_grad():
        expected = [t.numpy() for t in reference(*(torch.from_numpy(feed[n]) for n in names))]
    got = parity.ort_session(batched_onnx).run(None, feed)
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, rtol=0, atol=1e-4)


def test_attach_mask_branch_names_missing_inputs(batched_onnx):
    model = onnx.load(str(batched_onnx))
    with pytest.raises(ValueError, match="dense_prompt_embeddings"):
        mask_branch.attach_mask_branch(model, model, np.zeros((1, 256, 1, 1), np.float32),
                                       io_spec.HAS_MASK_INPUT, io_spec.decoder_batched_spec().input_names)
