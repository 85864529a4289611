"""Model registry: build vit_t (MobileSAM) and vit_b/l/h (SAM) with the official hyper-parameters."""
from __future__ import annotations

import os
from functools import partial
from typing import Callable

from torch import nn

from .checkpoint import load_checkpoint
from .model_types import MODEL_TYPES  # noqa: F401  (re-exported: callers import it from here)
from .model_types import image_size_problem
from .modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TinyViT, TwoWayTransformer

PROMPT_EMBED_DIM = 256
IMAGE_SIZE = 1024
VIT_PATCH_SIZE = 16

# embed_dim, depth, num_heads, global_attn_indexes of the official SAM ViT encoders.
VIT_CONFIGS: dict[str, tuple[int, int, int, tuple[int, ...]]] = {
    "vit_b": (768, 12, 12, (2, 5, 8, 11)),
    "vit_l": (1024, 24, 16, (5, 11, 17, 23)),
    "vit_h": (1280, 32, 16, (7, 15, 23, 31)),
}


def _build_decoder_parts(image_size: int) -> tuple[PromptEncoder, MaskDecoder]:
    embedding_side = image_size // VIT_PATCH_SIZE
    prompt_encoder = PromptEncoder(
        embed_dim=PROMPT_EMBED_DIM,
        image_embedding_size=(embedding_side, embedding_side),
        input_image_size=(image_size, image_size),
        mask_in_chans=16,
    )
    mask_decoder = MaskDecoder(
        num_multimask_outputs=3,
        transformer=TwoWayTransformer(depth=2, embedding_dim=PROMPT_EMBED_DIM, mlp_dim=2048, num_heads=8),
        transformer_dim=PROMPT_EMBED_DIM,
        iou_head_depth=3,
        iou_head_hidden_dim=256,
    )
    return prompt_encoder, mask_decoder


def _finish(sam: Sam, model_type: str, checkpoint: str | os.PathLike | None) -> Sam:
    if checkpoint is not None:
        load_checkpoint(sam, checkpoint, model_type)
    sam.eval()
    return sam


def build_vit_encoder(model_type: str, image_size: int = IMAGE_SIZE) -> ImageEncoderViT:
    """The official ViT encoder of ``model_type`` (vit_b/l/h).

    ``image_size`` other than 1024 changes only the position-embedding and global-block
    rel-pos table sizes; an official checkpoint is resized to them on load (fastsam.checkpoint_resize).
    """
    embed_dim, depth, num_heads, global_attn_indexes = VIT_CONFIGS[model_type]
    return ImageEncoderViT(
        depth=depth,
        embed_dim=embed_dim,
        img_size=image_size,
        mlp_ratio=4,
        norm_layer=partial(nn.LayerNorm, eps=1e-6),
        num_heads=num_heads,
        patch_size=VIT_PATCH_SIZE,
        qkv_bias=True,
        use_rel_pos=True,
        global_attn_indexes=global_attn_indexes,
        window_size=14,
        out_chans=PROMPT_EMBED_DIM,
    )


def build_tiny_vit_encoder(image_size: int = IMAGE_SIZE) -> TinyViT:
    """MobileSAM's TinyViT-5M encoder (``image_size`` must be a multiple of 16; 1024 is official).

    Its weights do not depend on the image size (attention biases are per window offset), so
    mobile_sam.pt loads unchanged at every valid size.
    """
    return TinyViT(
        img_size=image_size,
        in_chans=3,
        num_classes=1000,
        embed_dims=(64, 128, 160, 320),
        depths=(2, 2, 6, 2),
        num_heads=(2, 4, 5, 10),
        window_sizes=(7, 7, 14, 7),
        mlp_ratio=4.0,
        drop_rate=0.0,
        drop_path_rate=0.0,
        use_checkpoint=False,
        mbconv_expand_ratio=4.0,
        local_conv_size=3,
        layer_lr_decay=0.8,
    )


def _build(model_type: str, checkpoint: str | os.PathLike | None, image_size: int) -> Sam:
    problem = image_size_problem(image_size)
    if problem is not None:
        raise ValueError(f"cannot build {model_type}: {problem}")
    encoder: nn.Module
    if model_type == "vit_t":
        encoder = build_tiny_vit_encoder(image_size)
    else:
        encoder = build_vit_encoder(model_type, image_size)
    prompt_encoder, mask_decoder = _build_decoder_parts(image_size)
    sam = Sam(image_encoder=encoder, prompt_encoder=prompt_encoder, mask_decoder=mask_decoder)
    return _finish(sam, model_type, checkpoint)


def build_sam_vit_t(checkpoint: str | os.PathLike | None = None, image_size: int = IMAGE_SIZE) -> Sam:
    """MobileSAM (TinyViT encoder), in eval mode; loads ``checkpoint`` strictly when given."""
    return _build("vit_t", checkpoint, image_size)


def build_sam_vit_b(checkpoint: str | os.PathLike | None = None, image_size: int = IMAGE_SIZE) -> Sam:
    """SAM ViT-B (93.7 M parameters), in eval mode; loads ``checkpoint`` when given, resized to ``image_size``."""
    return _build("vit_b", checkpoint, image_size)


def build_sam_vit_l(checkpoint: str | os.PathLike | None = None, image_size: int = IMAGE_SIZE) -> Sam:
    """SAM ViT-L (312.3 M parameters), in eval mode; loads ``checkpoint`` when given, resized to ``image_size``."""
    return _build("vit_l", checkpoint, image_size)


def build_sam_vit_h(checkpoint: str | os.PathLike | None = None, image_size: int = IMAGE_SIZE) -> Sam:
    """SAM ViT-H (641.1 M parameters), in eval mode; loads ``checkpoint`` when given, resized to ``image_size``."""
    return _build("vit_h", checkpoint, image_size)


sam_model_registry: dict[str, Callable[..., Sam]] = {
    "vit_t": build_sam_vit_t,
    "vit_b": build_sam_vit_b,
    "vit_l": build_sam_vit_l,
    "vit_h": build_sam_vit_h,
    "default": build_sam_vit_h,  # as in segment-anything
}


def build_sam(model_type: str, checkpoint: str | os.PathLike | None = None) -> Sam:
    """Build a registered model by name.

    Arguments: model_type one of ``sam_model_registry`` ("vit_t", "vit_b", "vit_l", "vit_h",
    "default" = vit_h); checkpoint: optional path to a state dict (raw or under "model").
    Returns: the Sam model in eval mode on the CPU.
    """
    if not isinstance(model_type, str) or model_type not in sam_model_registry:
        valid = ", ".join(repr(k) for k in sam_model_registry)
        raise ValueError(f"unknown model_type {model_type!r}; expected one of {valid}")
    return sam_model_registry[model_type](checkpoint=checkpoint)


def count_parameters(model: nn.Module) -> int:
    """Total number of parameter elements of ``model``."""
    return sum(p.numel() for p in model.parameters())


