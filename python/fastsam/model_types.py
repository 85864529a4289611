"""The SAM architectures fastsam builds, named in one torch-free place (commands import it without PyTorch)."""
from __future__ import annotations

# The registry's "default" is an alias of vit_h, so it is not listed here; commands offer these.
MODEL_TYPES: tuple[str, ...] = ("vit_t", "vit_b", "vit_l", "vit_h")
