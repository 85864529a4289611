"""The Sam module: image encoder + prompt encoder + mask decoder, with pre/post-processing."""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .image_encoder import ImageEncoderViT
from .mask_decoder import MaskDecoder
from .prompt_encoder import PromptEncoder
from .tiny_vit_sam import TinyViT


class Sam(nn.Module):
    """Segment Anything model (vit_t/b/l/h) with the segment-anything interface."""

    mask_threshold: float = 0.0
    image_format: str = "RGB"

    def __init__(
        self,
        image_encoder: ImageEncoderViT | TinyViT,
        prompt_encoder: PromptEncoder,
        mask_decoder: MaskDecoder,
        pixel_mean: list[float] = [123.675, 116.28, 103.53],  # noqa: B006 - official signature
        pixel_std: list[float] = [58.395, 57.12, 57.375],  # noqa: B006 - official signature
    ) -> None:
        super().__init__()
        self.image_encoder = image_encoder
        self.prompt_encoder = prompt_encoder
        self.mask_decoder = mask_decoder
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean).view(-1, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std).view(-1, 1, 1), persistent=False)

    @property
    def device(self) -> torch.device:
        return self.pixel_mean.device

    @torch.no_grad()
    def forward(self, batched_input: list[dict[str, Any]], multimask_output: bool) -> list[dict[str, torch.Tensor]]:
        """End-to-end prediction for a batch of images with prompts (no gradients).

        Arguments:
          batched_input: one dict per image with ``image`` (3, H, W) float 0-255 already resized so
            the long side is ``image_encoder.img_size``; ``original_size`` (H0, W0); optionally
            ``point_coords`` (B, N, 2) XY and ``point_labels`` (B, N) in the resized frame,
            ``boxes`` (B, 4) XYXY in the resized frame, ``mask_inputs`` (B, 1, 256, 256) logits.
          multimask_output: return 3 masks per prompt instead of 1.
        Returns: one dict per image with ``masks`` (B, C, H0, W0) bool, ``iou_predictions`` (B, C)
          float and ``low_res_logits`` (B, C, 256, 256) float, C = 3 or 1.
        """
        if not isinstance(batched_input, (list, tuple)) or len(batched_input) == 0:
            raise ValueError("batched_input must be a non-empty list of dicts, one per image")
        for i, record in enumerate(batched_input):
            for key in ("image", "original_size"):
                if key not in record:
                    raise ValueError(f"batched_input[{i}] is missing the required key {key!r}")
        input_images = torch.stack([self.preprocess(record["image"]) for record in batched_input], dim=0)
        image_embeddings = self.image_encoder(input_images)

        outputs = []
        for record, embedding in zip(batched_input, image_embeddings):
            points = (record["point_coords"], record["point_labels"]) if "point_coords" in record else None
            sparse, dense = self.prompt_encoder(
                points=points, boxes=record.get("boxes", None), masks=record.get("mask_inputs", None)
            )
            low_res_masks, iou_predictions = self.mask_decoder(
                image_embeddings=embedding.unsqueeze(0),
                image_pe=self.prompt_encoder.get_dense_pe(),
                sparse_prompt_embeddings=sparse,
                dense_prompt_embeddings=dense,
                multimask_output=multimask_output,
            )
            masks = self.postprocess_masks(
                low_res_masks, input_size=record["image"].shape[-2:], original_size=record["original_size"]
            )
            outputs.append(
                {
                    "masks": masks > self.mask_threshold,
                    "iou_predictions": iou_predictions,
                    "low_res_logits": low_res_masks,
                }
            )
        return outputs

    def postprocess_masks(
        self, masks: torch.Tensor, input_size: tuple[int, ...], original_size: tuple[int, ...]
    ) -> torch.Tensor:
        """Upscale low-res mask logits to the original image, removing the padding.

        Arguments: masks (B, C, h, w) logits; input_size (H, W) of the resized image before
        padding; original_size (H0, W0). Returns: (B, C, H0, W0) float logits.
        """
        size = self.image_encoder.img_size
        masks = F.interpolate(masks, (size, size), mode="bilinear", align_corners=False)
        masks = masks[..., : input_size[0], : input_size[1]]
        return F.interpolate(masks, tuple(int(s) for s in original_size), mode="bilinear", align_corners=False)

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise a 0-255 image with pixel_mean/pixel_std and zero-pad it bottom/right to a square.

        Arguments: x (3, H, W) or (B, 3, H, W) float, H and W <= image_encoder.img_size.
        Returns: (…, 3, img_size, img_size) float.
        """
        x = (x - self.pixel_mean) / self.pixel_std
        h, w = x.shape[-2:]
        size = self.image_encoder.img_size
        if not torch.jit.is_tracing() and (h > size or w > size):
            raise ValueError(f"preprocess expects an image at most {size}x{size}, got {h}x{w}")
        return F.pad(x, (0, size - w, 0, size - h))
