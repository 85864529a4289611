"""SAM's mask prediction re-written for export: the same maths, laid out for ONNX Runtime on a CPU.

``predict_masks`` computes what ``MaskDecoder.predict_masks`` computes (equal up to float32 round-off,
checked by tests/test_export_decoder_graph.py); it only moves work around and re-associates sums:

- No ``repeat_interleave`` of the image embedding and positional encoding per prompt: they stay at
  batch 1 and broadcast. When the dense prompt embedding is also batch 1 (no mask input), every
  image-side projection of the first two-way layer is computed once for all prompts.
- Attention between the few prompt tokens and the h*w image tokens with per-prompt image tokens
  (every layer after the first, and the final one) folds the token-side projections into the
  image-side ones, so no h*w x C projection of image tokens is computed per prompt:
  token->image: softmax(q_h (x W_k,h + b_k,h)^T) (x W_v,h + b_v,h) = softmax((q_h W_k,h) x^T) x W_v,h + b_v,h
  (q_h . b_k,h is constant along the softmax axis; softmax rows sum to 1);
  image->token: the output projection is applied to the few value tokens before the attention
  product, and (after the first layer) the query projection is folded into the per-head keys, with
  heads laid out block-diagonally so no h*w-sized tensor is transposed.
- The two ConvTranspose2d(kernel 2, stride 2) upscaling layers do not overlap, so each is a per-pixel
  MatMul (C_in -> 2*2*C_out); LayerNorm2d becomes a LayerNorm over the last axis of channel-last
  tokens. The 2x2 sub-pixels are kept as separate axes and put in place once, on the 4-channel masks
  (one Transpose instead of depth-to-space on 64- and 32-channel feature maps).

``predict_masks`` = ``predict_tokens`` (transformer, IoU head, hypernetworks) + ``upscale_and_project``;
the two halves are also exported as separate graphs (decoder_head, decoder_masks) so that the mask
generator upscales only the prompts whose predicted IoUs pass its filter.
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


def _conv_transpose_as_matmul(conv: nn.ConvTranspose2d) -> tuple[torch.Tensor, torch.Tensor]:
    """(C_in, 2*2*C_out) weight with columns ordered (sub-row, sub-column, C_out) and its bias."""
    if tuple(conv.kernel_size) != (2, 2) or tuple(conv.stride) != (2, 2) or tuple(conv.padding) != (0, 0):
        raise ValueError(f"expected a kernel-2 stride-2 unpadded ConvTranspose2d, got {conv}")
    c_in, c_out = conv.weight.shape[0], conv.weight.shape[1]
    weight = conv.weight.detach().permute(0, 2, 3, 1).reshape(c_in, 4 * c_out)
    bias = conv.bias.detach().repeat(4)
    return weight, bias


def _split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """(B, N, H*d) -> (B, H, N, d)."""
    return x.reshape(x.shape[0], x.shape[1], heads, -1).transpose(1, 2)


def token_to_image_folded(attn: nn.Module, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``Attention(q, k, v)`` for few queries (B, Nq, C) over many keys/values (B, Nk, C), with the key and
    value projections applied on the query side (per head: (q_h W_k,h) k^T and (attn v) W_v,h^T + b_v,h)."""
    heads, channels = attn.num_heads, attn.embedding_dim
    head_dim = attn.internal_dim // heads
    batch, num_queries = q.shape[0], q.shape[1]
    queries = _split_heads(attn.q_proj(q), heads)
    w_k = attn.k_proj.weight.reshape(heads, head_dim, channels) * (1.0 / math.sqrt(head_dim))
    logits = (queries @ w_k).reshape(batch, heads * num_queries, channels) @ k.transpose(1, 2)
    weights = torch.softmax(logits, dim=-1)
    mixed = (weights @ v).reshape(batch, heads, num_queries, channels)
    w_v = attn.v_proj.weight.reshape(heads, head_dim, channels).transpose(1, 2)
    out = mixed @ w_v + attn.v_proj.bias.reshape(heads, 1, head_dim)
    return attn.out_proj(out.transpose(1, 2).reshape(batch, num_queries, heads * head_dim))


def image_to_token_folded(attn: nn.Module, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                          fold_query: bool) -> torch.Tensor:
    """``Attention(q, k, v)`` for many queries q (1 or B, Nq, C) over few keys/values (B, Nk, C).

    Per-head keys sit on the block diagonal of a (H*d, H*Nk) matrix, so the logits of all heads come out
    of one MatMul as (B, Nq, H*Nk) and softmax runs per head on the last axis; the output projection
    is applied to the values first ((H*Nk, C)), so the result is one more MatMul. ``fold_query`` also
    folds the query projection into the keys (for per-prompt q; a shared q is projected once instead).
    """
    heads, channels = attn.num_heads, attn.embedding_dim
    head_dim = attn.internal_dim // heads
    batch, num_keys = k.shape[0], k.shape[1]
    keys = _split_heads(attn.k_proj(k), heads).transpose(2, 3)  # (B, H, d, Nk)
    diagonal = torch.eye(heads, dtype=keys.dtype).reshape(1, heads, 1, heads, 1)
    block_keys = (keys.unsqueeze(3) * diagonal).reshape(batch, heads * head_dim, heads * num_keys)
    block_keys = block_keys * (1.0 / math.sqrt(head_dim))
    if fold_query:
        logits = q @ (attn.q_proj.weight.t() @ block_keys) + (attn.q_proj.bias @ block_keys).unsqueeze(1)
    else:
        logits = attn.q_proj(q) @ block_keys
    num_queries = q.shape[1]
    weights = torch.softmax(logits.reshape(batch, num_queries, heads, num_keys), dim=-1)
    values = _split_heads(attn.v_proj(v), heads)  # (B, H, Nk, d)
    w_out = attn.out_proj.weight.reshape(channels, heads, head_dim).permute(1, 2, 0)  # (H, d, C)
    # Each head's weights sum to 1, so the output bias rides on the values (H*Nk rows) rather than
    # being added to the (Nq, C) result.
    values_out = (values @ w_out + attn.out_proj.bias / heads).reshape(batch, heads * num_keys, channels)
    return weights.reshape(batch, num_queries, heads * num_keys) @ values_out


def _two_way_block(layer: nn.Module, queries, keys, query_pe, key_pe, first: bool):
    """``TwoWayAttentionBlock.forward``; the first block keeps the plain image-side projections (its image
    tokens are shared by all prompts when there is no mask input), later ones use the folded forms."""
    queries = layer.attend_tokens(queries, query_pe)

    q = queries + query_pe
    k = keys + key_pe
    if first:
        attn_out = layer.cross_attn_token_to_image(q=q, k=k, v=keys)
    else:
        attn_out = token_to_image_folded(layer.cross_attn_token_to_image, q, k, keys)
    queries = layer.norm2(queries + attn_out)
    queries = layer.norm3(queries + layer.mlp(queries))

    q = queries + query_pe
    attn_out = image_to_token_folded(layer.cross_attn_image_to_token, k, q, queries, fold_query=not first)
    keys = layer.norm4(keys + attn_out)
    return queries, keys


def two_way_transformer(transformer: nn.Module, image_embedding: torch.Tensor, image_pe: torch.Tensor,
                        point_embedding: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``TwoWayTransformer.forward`` with image-side tensors of batch 1 or B (see the module docstring).

    Arguments:
      transformer: a ``TwoWayTransformer``.
      image_embedding: (1 or B, C, h, w); image_pe: (1, C, h, w); point_embedding: (B, N, C).
    Returns:
      tokens (B, N, C) and image tokens (B, h*w, C).
    """
    keys = image_embedding.flatten(2).permute(0, 2, 1)
    key_pe = image_pe.flatten(2).permute(0, 2, 1)
    queries = point_embedding
    for index, layer in enumerate(transformer.layers):
        queries, keys = _two_way_block(layer, queries, keys, point_embedding, key_pe, first=index == 0)
    q = queries + point_embedding
    k = keys + key_pe
    queries = transformer.norm_final_attn(queries + token_to_image_folded(transformer.final_attn_token_to_image,
                                                                           q, k, keys))
    return queries, keys


def upscale_and_project(mask_decoder: nn.Module, image_tokens: torch.Tensor, hyper_in: torch.Tensor,
                        size: tuple[int, int]) -> torch.Tensor:
    """``output_upscaling`` followed by the hypernetwork product, on channel-last tokens.

    Arguments:
      mask_decoder: the ``MaskDecoder`` whose ``output_upscaling`` (ConvT, LayerNorm2d, GELU, ConvT, GELU) is used.
      image_tokens: (B, h*w, C) transformer output, row-major over the h x w embedding grid.
      hyper_in: (B, T, C/8) per-token hypernetwork outputs.
      size: (h, w) of the embedding grid.
    Returns:
      (B, T, 4h, 4w) mask logits.
    """
    conv1, norm, act1, conv2, act2 = mask_decoder.output_upscaling
    w1, b1 = _conv_transpose_as_matmul(conv1)
    w2, b2 = _conv_transpose_as_matmul(conv2)
    c1, c2 = conv1.weight.shape[1], conv2.weight.shape[1]
    batch, tokens = image_tokens.shape[0], hyper_in.shape[1]
    h, w = size
    # Axes: (B, grid pixel (i, j), first 2x2 sub-pixel (a, c), channel).
    x = (image_tokens @ w1 + b1).reshape(batch, h * w, 4, c1)
    x = act1(F.layer_norm(x, (c1,), norm.weight, norm.bias, norm.eps)).reshape(batch, h * w * 4, c1)
    # Axes: (B, pixel (i, j, a, c, second sub-pixel a2, c2), channel).
    x = act2(x @ w2 + b2).reshape(batch, h * w * 16, c2)
    # (T x C2) @ (C2 x pixels): a wide MatMul reading x transposed, rather than a 4-column one.
    masks = hyper_in @ x.transpose(1, 2)
    # (B, T, i, j, a, c, a2, c2) -> (B, T, i, a, a2, j, c, c2): row 4i+2a+a2, column 4j+2c+c2.
    masks = masks.reshape(batch, tokens, h, w, 2, 2, 2, 2).permute(0, 1, 2, 4, 6, 3, 5, 7)
    return masks.reshape(batch, tokens, 4 * h, 4 * w)


def predict_tokens(mask_decoder: nn.Module, image_embeddings: torch.Tensor, image_pe: torch.Tensor,
                   sparse_prompt_embeddings: torch.Tensor, dense_prompt_embeddings: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The part of ``MaskDecoder.predict_masks`` before the upscaling: transformer, IoU head, hypernetworks.

    Arguments:
      mask_decoder: a ``MaskDecoder``.
      image_embeddings: (1, C, h, w); image_pe: (1, C, h, w).
      sparse_prompt_embeddings: (B, N, C).
      dense_prompt_embeddings: (B, C, h, w), or (1, C, h, w) when it is the same for every prompt.
    Returns:
      IoU predictions (B, num_mask_tokens), hypernetwork outputs (B, num_mask_tokens, C/8) and
      transformer image tokens (B, h*w, C), the inputs of ``upscale_and_project``.
    """
    batch = sparse_prompt_embeddings.shape[0]
    output_tokens = torch.cat([mask_decoder.iou_token.weight, mask_decoder.mask_tokens.weight], dim=0)
    output_tokens = output_tokens.unsqueeze(0).expand(batch, -1, -1)
    tokens = torch.cat((output_tokens, sparse_prompt_embeddings), dim=1)
    hs, image_tokens = two_way_transformer(mask_decoder.transformer, image_embeddings + dense_prompt_embeddings,
                                           image_pe, tokens)
    iou_token_out = hs[:, 0, :]
    mask_tokens_out = hs[:, 1: 1 + mask_decoder.num_mask_tokens, :]
    hyper_in = torch.stack(
        [mlp(mask_tokens_out[:, i, :]) for i, mlp in enumerate(mask_decoder.output_hypernetworks_mlps)], dim=1
    )
    return mask_decoder.iou_prediction_head(iou_token_out), hyper_in, image_tokens


def predict_masks(mask_decoder: nn.Module, image_embeddings: torch.Tensor, image_pe: torch.Tensor,
                  sparse_prompt_embeddings: torch.Tensor, dense_prompt_embeddings: torch.Tensor
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """``MaskDecoder.predict_masks`` without per-prompt copies of image-side tensors.

    Arguments: as ``predict_tokens``.
    Returns:
      mask logits (B, num_mask_tokens, 4h, 4w) and IoU predictions (B, num_mask_tokens).
    """
    iou, hyper_in, image_tokens = predict_tokens(mask_decoder, image_embeddings, image_pe,
                                                 sparse_prompt_embeddings, dense_prompt_embeddings)
    h, w = image_embeddings.shape[-2:]
    return upscale_and_project(mask_decoder, image_tokens, hyper_in, (int(h), int(w))), iou
