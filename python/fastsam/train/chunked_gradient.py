"""A loss summed over chunks whose gradients are taken chunk by chunk, so that only one chunk's graph is
alive at a time (segment-everything training decodes up to thousands of grid prompts per image).

Each chunk's share of the loss is differentiated at once with respect to the image embedding, seen as a leaf,
and to the model's trainable parameters; the gradients are summed. `loss()` then returns one scalar whose
value is the summed loss and whose backward delivers those gradients: into the encoder through the real
embedding (one encoder backward per image), and into the parameters directly. The training loop keeps its
single `scaler.scale(loss).backward()`, so AMP loss scaling and DDP's gradient averaging apply unchanged.
"""
from __future__ import annotations

import torch
from torch import nn


class ChunkedGradient:
    """Gradients of sum_c loss_c(embedding) with one chunk's graph alive at a time.

    Use: decode each chunk from `leaf` (not from the embedding itself), `add(chunk_loss)`, then return
    `loss()` to the training loop.

    Arguments:
      embedding: the image embedding (C, h, w), with its graph to the encoder when the encoder trains.
      params: the parameters whose gradients to collect (those not reached by a chunk are left alone).
    """

    def __init__(self, embedding: torch.Tensor, params: list[nn.Parameter]):
        self.embedding = embedding
        self.leaf = embedding.detach().requires_grad_(embedding.requires_grad)
        self.params = [p for p in params if p.requires_grad]
        self.param_grads: list[torch.Tensor | None] = [None] * len(self.params)
        self.embedding_grad: torch.Tensor | None = None
        self.value = torch.zeros((), device=embedding.device)

    def add(self, chunk_loss: torch.Tensor) -> None:
        """Differentiate one chunk's (scalar) share of the loss now and free its graph."""
        self.value = self.value + chunk_loss.detach().float()
        if not chunk_loss.requires_grad:
            return
        inputs = ([self.leaf] if self.leaf.requires_grad else []) + self.params
        grads = list(torch.autograd.grad(chunk_loss, inputs, allow_unused=True))
        if self.leaf.requires_grad:
            self.embedding_grad = _add(self.embedding_grad, grads.pop(0))
        self.param_grads = [_add(acc, g) for acc, g in zip(self.param_grads, grads)]

    def loss(self) -> torch.Tensor:
        """The summed loss (value) carrying the summed gradients (backward)."""
        # In float32: under fp16 autocast a product summed over the embedding could overflow and turn the
        # value (surrogate - surrogate) into NaN.
        terms = [(p.float() * g.float()).sum() for p, g in zip(self.params, self.param_grads) if g is not None]
        if self.embedding_grad is not None:
            terms.append((self.embedding.float() * self.embedding_grad.float()).sum())
        if not terms:
            return self.value
        surrogate = torch.stack(terms).sum()
        return self.value + (surrogate - surrogate.detach())


def _add(total: torch.Tensor | None, grad: torch.Tensor | None) -> torch.Tensor | None:
    if grad is None:
        return total
    return grad if total is None else total + grad
