"""The SAM architectures fastsam builds, named in one torch-free place (commands import it without PyTorch)."""
from __future__ import annotations

# The registry's "default" is an alias of vit_h, so it is not listed here; commands offer these.
MODEL_TYPES: tuple[str, ...] = ("vit_t", "vit_b", "vit_l", "vit_h")

# Every encoder ends on a grid of 16-pixel cells: the ViTs cut 16-pixel patches, and TinyViT's patch
# embedding and two stride-2 patch mergings each need an even grid (any other size breaks its reshapes).
# Windows are zero-padded, so no size needs to be a multiple of a window.
IMAGE_SIZE_MULTIPLE = 16


def image_size_problem(image_size: object) -> str | None:
    """None when every model type can be built at ``image_size``, else what is wrong with it (one line)."""
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size <= 0 \
            or image_size % IMAGE_SIZE_MULTIPLE:
        return f"image size must be a positive multiple of {IMAGE_SIZE_MULTIPLE}, got {image_size!r}"
    return None
