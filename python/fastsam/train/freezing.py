"""Freezing parts of a Sam model: no gradients and eval mode (so frozen norms/dropout stay fixed)."""
from __future__ import annotations

from torch import nn

from .config import FreezeConfig

PARTS = ("image_encoder", "prompt_encoder", "mask_decoder")


def frozen_parts(freeze: FreezeConfig) -> list[str]:
    return [name for name in PARTS if getattr(freeze, name)]


def apply_freeze(model: nn.Module, parts: list[str]) -> None:
    """Set requires_grad on every part: False for names in `parts`, True for the rest."""
    for name in PARTS:
        for p in getattr(model, name).parameters():
            p.requires_grad_(name not in parts)


def set_train_mode(model: nn.Module, parts: list[str]) -> None:
    """model.train(), then eval mode on the frozen `parts`."""
    model.train()
    for name in parts:
        getattr(model, name).eval()


def trainable_parameters(model: nn.Module) -> list[nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]
