"""SamPredictor: embed an image once, then predict masks for many prompts.

Same API as segment-anything's ``SamPredictor`` (names, argument names, return tuple
order), with every bad input reported by a specific TypeError/ValueError/RuntimeError.
"""
from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import torch

from .utils.transforms import ResizeLongestSide
from .utils.validation import (
    check_box,
    check_image,
    check_image_format,
    check_mask_input,
    check_point_prompt,
    check_prompts_inside,
    check_torch_prompts,
)

_NOT_SET_MESSAGE = "An image must be set with .set_image(...) (or .set_torch_image(...)) before {what}."


class SamPredictor:
    """Compute a SAM model's image embedding once and decode masks for prompts on it.

    Attributes:
      model: the wrapped ``Sam``.
      transform (ResizeLongestSide): resizes images/prompts to the encoder's input frame.
      original_size (tuple[int, int] | None): (H, W) of the image given to ``set_image``.
      input_size (tuple[int, int] | None): (H, W) after the longest-side resize, before padding.
      features (torch.Tensor | None): (1, C, h, w) image embedding.
      is_image_set (bool): whether an embedding is held.
    """

    def __init__(self, sam_model: Any) -> None:
        """
        Arguments:
          sam_model (Sam): the model used for embedding and mask prediction.
        """
        for attribute in ("image_encoder", "prompt_encoder", "mask_decoder", "preprocess", "postprocess_masks"):
            if not hasattr(sam_model, attribute):
                raise TypeError(
                    f"sam_model must be a Sam model (with image_encoder, prompt_encoder, mask_decoder, "
                    f"preprocess, postprocess_masks); {type(sam_model).__name__} has no {attribute!r}"
                )
        self.model = sam_model
        self.transform = ResizeLongestSide(sam_model.image_encoder.img_size)
        self.reset_image()

    @property
    def _mask_input_size(self) -> tuple[int, int]:
        size = getattr(self.model.prompt_encoder, "mask_input_size", (256, 256))
        return int(size[0]), int(size[1])

    def set_image(self, image: np.ndarray, image_format: str = "RGB") -> None:
        """Compute and hold the embedding of an image.

        Arguments:
          image (np.ndarray): (H, W, 3) uint8 image, H, W > 0.
          image_format (str): channel order of ``image``, "RGB" or "BGR".
        """
        check_image(image)
        check_image_format(image_format)
        image_key = _image_key(image, image_format)
        if image_format != self.model.image_format:
            image = image[..., ::-1]
        input_image = self.transform.apply_image(image)
        input_image_torch = torch.as_tensor(input_image, device=self.device)
        input_image_torch = input_image_torch.permute(2, 0, 1).contiguous()[None, :, :, :]
        self.set_torch_image(input_image_torch, image.shape[:2])
        self._image_key = image_key

    @torch.no_grad()
    def set_torch_image(self, transformed_image: torch.Tensor, original_image_size: tuple[int, ...]) -> None:
        """Compute and hold the embedding of an image already resized with ``self.transform``.

        Arguments:
          transformed_image (torch.Tensor): (1, 3, H, W) image, 0-255 values, longest side equal
            to the encoder's ``img_size``.
          original_image_size (tuple[int, int]): (H, W) of the image before resizing.
        """
        if not isinstance(transformed_image, torch.Tensor):
            raise TypeError(
                f"transformed_image must be a torch.Tensor of shape (1, 3, H, W), got {type(transformed_image).__name__}"
            )
        img_size = self.model.image_encoder.img_size
        shape = tuple(transformed_image.shape)
        if len(shape) != 4 or shape[0] != 1 or shape[1] != 3 or max(shape[2:]) != img_size:
            raise ValueError(
                f"transformed_image must have shape (1, 3, H, W) with max(H, W) == {img_size} "
                f"(apply predictor.transform.apply_image first), got {shape}"
            )
        original_size = _check_original_size(original_image_size)
        self.reset_image()
        self.original_size = original_size
        self.input_size = (int(shape[-2]), int(shape[-1]))
        input_image = self.model.preprocess(transformed_image)
        self.features = self.model.image_encoder(input_image)
        self.is_image_set = True

    def holds_image(self, image: np.ndarray, image_format: str = "RGB") -> bool:
        """Whether the held embedding was computed by ``set_image`` from this exact image and format.

        Arguments:
          image (np.ndarray): (H, W, 3) uint8 image.
          image_format (str): "RGB" or "BGR".

        Returns:
          (bool): True when ``set_image(image, image_format)`` would recompute the same embedding.
        """
        if not self.is_image_set or self._image_key is None:
            return False
        check_image(image)
        check_image_format(image_format)
        return self._image_key == _image_key(image, image_format)

    def predict(
        self,
        point_coords: np.ndarray | None = None,
        point_labels: np.ndarray | None = None,
        box: np.ndarray | None = None,
        mask_input: np.ndarray | None = None,
        multimask_output: bool = True,
        return_logits: bool = False,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Predict masks for prompts on the held image, in original-image pixel coordinates.

        Arguments:
          point_coords (np.ndarray | None): (N, 2) points as (X, Y) pixels, 0 <= X <= W and 0 <= Y <= H.
          point_labels (np.ndarray | None): (N,) labels, 1 = foreground, 0 = background.
          box (np.ndarray | None): (4,) box (x0, y0, x1, y1) in pixels, inside the image.
          mask_input (np.ndarray | None): (1, 256, 256) low-res logits, e.g. from a previous call.
          multimask_output (bool): return 3 masks (True) or the single-mask output (False).
          return_logits (bool): return mask logits instead of thresholded masks.

        Returns:
          (np.ndarray): (C, H, W) bool masks (float32 logits if return_logits), C = 3 or 1.
          (np.ndarray): (C,) float32 predicted mask IoU.
          (np.ndarray): (C, 256, 256) float32 low-resolution logits.
        """
        if not self.is_image_set:
            raise RuntimeError(_NOT_SET_MESSAGE.format(what="mask prediction"))
        coords, labels = check_point_prompt(point_coords, point_labels)
        box_array = check_box(box)
        check_prompts_inside(coords, box_array, self.original_size)
        mask_array = check_mask_input(mask_input, self._mask_input_size)

        coords_torch = labels_torch = box_torch = mask_input_torch = None
        if coords is not None:
            coords = self.transform.apply_coords(coords, self.original_size)
            coords_torch = torch.as_tensor(coords, dtype=torch.float, device=self.device)[None, :, :]
            labels_torch = torch.as_tensor(labels, dtype=torch.int, device=self.device)[None, :]
        if box_array is not None:
            box_array = self.transform.apply_boxes(box_array, self.original_size)
            box_torch = torch.as_tensor(box_array, dtype=torch.float, device=self.device)
        if mask_array is not None:
            mask_input_torch = torch.as_tensor(mask_array, dtype=torch.float, device=self.device)[None, :, :, :]

        masks, iou_predictions, low_res_masks = self.predict_torch(
            coords_torch,
            labels_torch,
            box_torch,
            mask_input_torch,
            multimask_output,
            return_logits=return_logits,
        )
        return (
            masks[0].detach().cpu().numpy(),
            iou_predictions[0].detach().cpu().numpy(),
            low_res_masks[0].detach().cpu().numpy(),
        )

    @torch.no_grad()
    def predict_torch(
        self,
        point_coords: torch.Tensor | None,
        point_labels: torch.Tensor | None,
        boxes: torch.Tensor | None = None,
        mask_input: torch.Tensor | None = None,
        multimask_output: bool = True,
        return_logits: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Predict masks for a batch of prompts already in the encoder's input frame.

        Transform coordinates with ``self.transform.apply_coords_torch`` /
        ``apply_boxes_torch`` first.

        Arguments:
          point_coords (torch.Tensor | None): (B, N, 2) points (X, Y) in the resized frame.
          point_labels (torch.Tensor | None): (B, N) labels: 1 foreground, 0 background, -1 padding.
          boxes (torch.Tensor | None): (B, 4) XYXY boxes in the resized frame.
          mask_input (torch.Tensor | None): (B, 1, 256, 256) low-res logits.
          multimask_output (bool): 3 masks per prompt (True) or 1 (False).
          return_logits (bool): return logits instead of thresholded masks.

        Returns:
          (torch.Tensor): (B, C, H, W) bool masks at the original size (float logits if return_logits).
          (torch.Tensor): (B, C) predicted mask IoU.
          (torch.Tensor): (B, C, 256, 256) low-resolution logits.
        """
        low_res_masks, iou_predictions = self._predict_low_res(
            point_coords, point_labels, boxes, mask_input, multimask_output
        )
        masks = self.model.postprocess_masks(low_res_masks, self.input_size, self.original_size)
        if not return_logits:
            masks = masks > self.model.mask_threshold
        return masks, iou_predictions, low_res_masks

    @torch.no_grad()
    def _predict_low_res(
        self,
        point_coords: torch.Tensor | None,
        point_labels: torch.Tensor | None,
        boxes: torch.Tensor | None,
        mask_input: torch.Tensor | None,
        multimask_output: bool,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Prompt encoder + mask decoder only: (B, C, 256, 256) logits and (B, C) IoU, no upscaling."""
        if not self.is_image_set:
            raise RuntimeError(_NOT_SET_MESSAGE.format(what="mask prediction"))
        check_torch_prompts(point_coords, point_labels, boxes, mask_input, self._mask_input_size)
        points = (point_coords, point_labels) if point_coords is not None else None
        sparse_embeddings, dense_embeddings = self.model.prompt_encoder(
            points=points, boxes=boxes, masks=mask_input
        )
        return self.model.mask_decoder(
            image_embeddings=self.features,
            image_pe=self.model.prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse_embeddings,
            dense_prompt_embeddings=dense_embeddings,
            multimask_output=multimask_output,
        )

    def get_image_embedding(self) -> torch.Tensor:
        """The held image embedding.

        Returns:
          (torch.Tensor): (1, C, h, w) embedding (1x256x64x64 for the standard models).
        """
        if not self.is_image_set or self.features is None:
            raise RuntimeError(_NOT_SET_MESSAGE.format(what="getting the image embedding"))
        return self.features

    @property
    def device(self) -> torch.device:
        return self.model.device

    def reset_image(self) -> None:
        """Drop the held image embedding and sizes."""
        self.is_image_set = False
        self.features = None
        self.original_size = None
        self.input_size = None
        self._image_key = None


def _image_key(image: np.ndarray, image_format: str) -> tuple[Any, ...]:
    digest = hashlib.blake2b(np.ascontiguousarray(image).data, digest_size=16).hexdigest()
    return image.shape, image_format, digest


def _check_original_size(original_image_size: Any) -> tuple[int, int]:
    try:
        values = tuple(original_image_size)
    except TypeError:
        values = ()
    if len(values) != 2 or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v > 0 for v in values):
        raise ValueError(f"original_image_size must be (H, W) with two positive integers, got {original_image_size!r}")
    return int(values[0]), int(values[1])
