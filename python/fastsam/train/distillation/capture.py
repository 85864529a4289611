"""Forward hooks that record what one SAM model's prompt encoder and mask decoder saw and produced.

Hooks, not changes to modeling/: the deployed model stays the official one, and a run without
distillation installs nothing. What is recorded is only what the enabled terms need.
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Optional

import torch
from torch import nn


@dataclass
class DecoderCall:
    """One prompt-encoder + decoder-transformer pass (one image's prompts, or one chunk of them).

    Recorded at the transformer, which every decoding path runs (MaskDecoder.forward, or a training task
    that upscales only some prompts); mask logits are rebuilt from it on demand (`mask_logits`).
    """

    points: Optional[tuple[torch.Tensor, torch.Tensor]] = None  # (coords (B, N, 2), labels (B, N)), model frame
    boxes: Optional[torch.Tensor] = None  # (B, 4) XYXY, model frame
    masks: Optional[torch.Tensor] = None  # (B, 1, 4h, 4w) mask-input logits
    grid: tuple[int, int] = (0, 0)  # (h, w) of the image embedding
    tokens: Optional[torch.Tensor] = None  # (B, T, C) output tokens: IoU token, mask tokens, prompt tokens
    image_tokens: Optional[torch.Tensor] = None  # (B, h*w, C) the transformer's output image tokens
    attention: list[torch.Tensor] = field(default_factory=list)  # per layer (B, heads, T, h*w) token-to-image


def _argument(name: str, position: int, args: tuple, kwargs: dict):
    return kwargs[name] if name in kwargs else (args[position] if len(args) > position else None)


def token_to_image_attention(module: nn.Module, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """The softmax attention map an `Attention` module computes from (q, k), (B, heads, Nq, Nk).

    Recomputed from the module's inputs and projections (the module returns only its output); the same
    formula as modeling/transformer.Attention, so the map is the one the forward pass used.
    """
    qh = module._separate_heads(module.q_proj(q))
    kh = module._separate_heads(module.k_proj(k))
    scale = math.sqrt(module.internal_dim // module.num_heads)
    return torch.softmax(qh @ kh.transpose(-2, -1) / scale, dim=-1)


def mask_logits(decoder: nn.Module, call: DecoderCall) -> torch.Tensor:
    """Low-res logits (B, num_mask_tokens, 4h, 4w) of every mask token of a recorded pass, computed from the
    transformer outputs with the decoder's own upscaling and hypernetworks (as MaskDecoder.predict_masks)."""
    b, _, c = call.image_tokens.shape
    src = call.image_tokens.transpose(1, 2).reshape(b, c, *call.grid)
    upscaled = decoder.output_upscaling(src)
    mask_tokens = call.tokens[:, 1:1 + decoder.num_mask_tokens]  # token 0 is the IoU token
    hyper = torch.stack([mlp(mask_tokens[:, i]) for i, mlp in enumerate(decoder.output_hypernetworks_mlps)], dim=1)
    return (hyper @ upscaled.flatten(2)).view(b, hyper.shape[1], *upscaled.shape[-2:])


class DecoderCapture:
    """Records a DecoderCall per decoder-transformer pass of `sam` while `recording()` is active.

    Arguments:
      attention: also keep the token-to-image attention maps of every transformer layer (costs a
        recomputation of each map, so only when the attention term is on).
      grad_only: record only passes made with gradients enabled (the student: a pass under no_grad, such as
        everything mode's matching pass, trains nothing); the teacher records its no-grad passes.
    """

    def __init__(self, sam: nn.Module, *, attention: bool, grad_only: bool = False):
        self.calls: list[DecoderCall] = []
        self.grad_only = grad_only
        self._recording = False
        self._pending: DecoderCall | None = None
        transformer = sam.mask_decoder.transformer
        self._handles = [
            sam.prompt_encoder.register_forward_pre_hook(self._on_prompts, with_kwargs=True),
            transformer.register_forward_pre_hook(self._on_transformer_start, with_kwargs=True),
            transformer.register_forward_hook(self._on_transformer_end),
        ]
        if attention:
            for module in [layer.cross_attn_token_to_image for layer in transformer.layers] + [
                    transformer.final_attn_token_to_image]:
                self._handles.append(module.register_forward_hook(self._on_attention, with_kwargs=True))

    @contextmanager
    def recording(self):
        """Record the passes made inside the block (validation and other passes outside stay unrecorded).
        Starts empty, so passes left over from a step that raised are never paired with the next image."""
        self._recording, self._pending, self.calls = True, None, []
        try:
            yield self
        finally:
            self._recording = False

    def take(self) -> list[DecoderCall]:
        """The calls recorded since the last take (and forget them)."""
        calls, self.calls = self.calls, []
        return calls

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def _active(self) -> bool:
        return self._recording and (torch.is_grad_enabled() or not self.grad_only)

    def _on_prompts(self, module, args, kwargs):
        if self._active():
            self._pending = DecoderCall(points=_argument("points", 0, args, kwargs),
                                        boxes=_argument("boxes", 1, args, kwargs),
                                        masks=_argument("masks", 2, args, kwargs))

    def _on_transformer_start(self, module, args, kwargs):
        if not self._active():
            return
        if self._pending is None:
            raise RuntimeError("distillation: the mask decoder ran without a prompt-encoder pass before it; "
                               "the teacher needs the raw prompts to decode the same ones")
        self._pending.grid = tuple(_argument("image_embedding", 0, args, kwargs).shape[-2:])
        self.calls.append(self._pending)
        self._pending = None

    def _on_transformer_end(self, module, args, output):
        if self._active():
            self.calls[-1].tokens, self.calls[-1].image_tokens = output

    def _on_attention(self, module, args, kwargs, output):
        if self._active():
            q, k = _argument("q", 0, args, kwargs), _argument("k", 1, args, kwargs)
            self.calls[-1].attention.append(token_to_image_attention(module, q, k))
