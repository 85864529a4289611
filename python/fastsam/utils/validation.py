"""Input checks for the predictor: each raises a TypeError/ValueError naming the argument and what was expected."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

IMAGE_FORMATS = ("RGB", "BGR")


def check_image(image: Any, name: str = "image") -> None:
    """An HxWx3 uint8 numpy image with H, W > 0."""
    if not isinstance(image, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray of shape (H, W, 3) and dtype uint8, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise TypeError(f"{name} must have dtype uint8 (pixel values 0-255), got {image.dtype}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"{name} must have shape (H, W, 3) (three colour channels), got {image.shape}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"{name} must not be empty: expected H > 0 and W > 0, got shape {image.shape}")


def check_image_format(image_format: Any) -> None:
    if image_format not in IMAGE_FORMATS:
        raise ValueError(f"image_format must be one of {IMAGE_FORMATS}, got {image_format!r}")


def _numeric_array(value: Any, name: str, expected: str) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be a numeric array of shape {expected}, got {type(value).__name__}") from exc
    if array.dtype == bool or not np.issubdtype(array.dtype, np.number):
        raise TypeError(f"{name} must be a numeric array of shape {expected}, got dtype {array.dtype}")
    return array


def check_point_prompt(point_coords: Any, point_labels: Any) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Point coords (N, 2) in pixels and labels (N,) in {0, 1}; both or neither. Returns them as arrays."""
    if point_coords is None and point_labels is None:
        return None, None
    if point_coords is None:
        raise ValueError("point_labels was given without point_coords: pass point_coords of shape (N, 2) too")
    if point_labels is None:
        raise ValueError("point_coords was given without point_labels: pass point_labels of shape (N,) with values in {0, 1}")
    coords = _numeric_array(point_coords, "point_coords", "(N, 2)")
    if coords.ndim != 2 or coords.shape[1] != 2 or coords.shape[0] == 0:
        raise ValueError(f"point_coords must have shape (N, 2) with N >= 1 (X, Y pixels), got {coords.shape}")
    if not np.all(np.isfinite(coords)):
        raise ValueError("point_coords must be finite numbers (found nan or inf)")
    labels = _numeric_array(point_labels, "point_labels", "(N,)")
    if labels.ndim != 1:
        raise ValueError(f"point_labels must have shape (N,) = ({coords.shape[0]},), got {labels.shape}")
    if labels.shape[0] != coords.shape[0]:
        raise ValueError(
            f"point_labels must have one label per point: expected shape ({coords.shape[0]},) "
            f"to match point_coords {coords.shape}, got {labels.shape}"
        )
    bad = labels[~np.isin(labels, (0, 1))]
    if bad.size:
        raise ValueError(
            f"point_labels must contain only 0 (background) or 1 (foreground), got {sorted(set(bad.tolist()))}"
        )
    return coords, labels


def check_box(box: Any) -> np.ndarray | None:
    """One XYXY box of 4 numbers with x1 >= x0 and y1 >= y0. Returns it as a (1, 4) array."""
    if box is None:
        return None
    array = _numeric_array(box, "box", "(4,)")
    if array.shape not in ((4,), (1, 4)):
        raise ValueError(f"box must be 4 numbers (x0, y0, x1, y1) of shape (4,), got shape {array.shape}")
    array = array.reshape(1, 4)
    if not np.all(np.isfinite(array)):
        raise ValueError("box must be finite numbers (found nan or inf)")
    x0, y0, x1, y1 = array[0].tolist()
    if x1 < x0 or y1 < y0:
        raise ValueError(f"box must be (x0, y0, x1, y1) with x1 >= x0 and y1 >= y0, got {[x0, y0, x1, y1]}")
    return array


def check_prompts_inside(coords: np.ndarray | None, box: np.ndarray | None, image_size: tuple[int, int]) -> None:
    """Points (N, 2) and an XYXY box (1, 4), already shape-checked, must lie in the (H, W) image.

    The prompt encoder accepts any number, so a point past the border (swapped X/Y, coordinates meant for
    another image size) would otherwise give a confident but meaningless mask.
    """
    h, w = image_size
    where = f"the {w}x{h} image: x must be in [0, {w}] and y in [0, {h}] (XY order, original-image pixels)"
    if coords is not None:
        outside = np.flatnonzero((coords[:, 0] < 0) | (coords[:, 0] > w) | (coords[:, 1] < 0) | (coords[:, 1] > h))
        if outside.size:
            x, y = coords[outside[0]].tolist()
            raise ValueError(f"point_coords[{outside[0]}] = ({x:g}, {y:g}) is outside {where}")
    if box is not None:
        x0, y0, x1, y1 = box.reshape(4).tolist()
        if x0 < 0 or y0 < 0 or x1 > w or y1 > h:
            raise ValueError(f"box ({x0:g}, {y0:g}, {x1:g}, {y1:g}) is outside {where}")


def check_mask_input(mask_input: Any, mask_size: tuple[int, int]) -> np.ndarray | None:
    """A (1, h, w) low-resolution mask logit map (h, w = the prompt encoder's mask input size)."""
    if mask_input is None:
        return None
    expected = (1, *mask_size)
    array = _numeric_array(mask_input, "mask_input", str(expected))
    if array.shape != expected:
        raise ValueError(
            f"mask_input must have shape {expected} (low-res logits, e.g. one mask of a previous "
            f"predict's low_res_logits[None]), got {array.shape}"
        )
    return array


def check_torch_prompts(
    point_coords: Any,
    point_labels: Any,
    boxes: Any,
    mask_input: Any,
    mask_size: tuple[int, int],
) -> None:
    """Shapes of batched, already-transformed prompts for SamPredictor.predict_torch."""
    batch_sizes: dict[str, int] = {}
    for name, value in (
        ("point_coords", point_coords),
        ("point_labels", point_labels),
        ("boxes", boxes),
        ("mask_input", mask_input),
    ):
        if value is not None and not isinstance(value, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor or None, got {type(value).__name__}")
    if (point_coords is None) != (point_labels is None):
        given, missing = ("point_coords", "point_labels") if point_labels is None else ("point_labels", "point_coords")
        raise ValueError(f"{given} was given without {missing}: pass both (point_coords BxNx2, point_labels BxN) or neither")
    if point_coords is not None:
        if point_coords.ndim != 3 or point_coords.shape[2] != 2:
            raise ValueError(f"point_coords must have shape (B, N, 2), got {tuple(point_coords.shape)}")
        if point_labels.shape != point_coords.shape[:2]:
            raise ValueError(
                f"point_labels must have shape (B, N) = {tuple(point_coords.shape[:2])} to match point_coords, "
                f"got {tuple(point_labels.shape)}"
            )
        bad = point_labels[~torch.isin(point_labels, torch.tensor([-1, 0, 1], device=point_labels.device))]
        if bad.numel():
            raise ValueError(
                "point_labels must contain only 1 (foreground), 0 (background) or -1 (padding), "
                f"got {sorted(set(bad.tolist()))}"
            )
        batch_sizes["point_coords"] = point_coords.shape[0]
    if boxes is not None:
        if not (boxes.ndim == 2 and boxes.shape[1] == 4) and not (boxes.ndim == 3 and boxes.shape[1:] == (1, 4)):
            raise ValueError(f"boxes must have shape (B, 4) (XYXY), got {tuple(boxes.shape)}")
        batch_sizes["boxes"] = boxes.shape[0]
    if mask_input is not None:
        if mask_input.ndim != 4 or tuple(mask_input.shape[1:]) != (1, *mask_size):
            raise ValueError(f"mask_input must have shape (B, 1, {mask_size[0]}, {mask_size[1]}), got {tuple(mask_input.shape)}")
        batch_sizes["mask_input"] = mask_input.shape[0]
    if len(set(batch_sizes.values())) > 1:
        raise ValueError(f"prompts must share the batch size B, got {batch_sizes}")
