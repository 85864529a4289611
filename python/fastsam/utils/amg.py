"""Helpers for the automatic mask generator: point grids, crops, mask statistics, RLE.

Names, signatures and numerics follow segment-anything's ``utils/amg.py`` so results match
the official generator. Conventions: boxes are XYXY in pixels, crop boxes are
``[x0, y0, x1, y1]`` integer lists, masks are (..., H, W), uncompressed RLE is
``{"size": [H, W], "counts": [...]}`` over the column-major (Fortran) flattening, starting
with a run of zeros (possibly of length 0), as COCO expects.
"""
from __future__ import annotations

import math
from copy import deepcopy
from itertools import product
from typing import Any, Generator, ItemsView

import numpy as np
import torch
from scipy import ndimage


class MaskData:
    """A dict of per-mask batched values (tensors, arrays or lists) filtered and concatenated together."""

    def __init__(self, **kwargs: Any) -> None:
        for key, value in kwargs.items():
            _check_mask_data_value(key, value)
        self._stats = dict(**kwargs)

    def __setitem__(self, key: str, item: Any) -> None:
        _check_mask_data_value(key, item)
        self._stats[key] = item

    def __delitem__(self, key: str) -> None:
        del self._stats[key]

    def __getitem__(self, key: str) -> Any:
        return self._stats[key]

    def __contains__(self, key: str) -> bool:
        return key in self._stats

    def __len__(self) -> int:
        return len(self._stats)

    def items(self) -> ItemsView[str, Any]:
        return self._stats.items()

    def filter(self, keep: torch.Tensor) -> None:
        """Keep only the entries selected by ``keep`` (a bool mask or int64 indices) in every field."""
        keep = torch.as_tensor(keep)
        for key, value in self._stats.items():
            if value is None:
                self._stats[key] = None
            elif isinstance(value, torch.Tensor):
                self._stats[key] = value[keep.to(value.device)]
            elif isinstance(value, np.ndarray):
                self._stats[key] = value[keep.detach().cpu().numpy()]
            elif isinstance(value, list) and keep.dtype == torch.bool:
                self._stats[key] = [item for item, flag in zip(value, keep.tolist()) if flag]
            elif isinstance(value, list):
                self._stats[key] = [value[i] for i in keep.tolist()]
            else:
                raise TypeError(f"MaskData field {key!r} has unsupported type {type(value).__name__}")

    def cat(self, new_stats: "MaskData") -> None:
        """Append every field of ``new_stats`` (along the first dimension) to this one's."""
        for key, value in new_stats.items():
            current = self._stats.get(key)
            if current is None:
                self._stats[key] = deepcopy(value)
            elif isinstance(value, torch.Tensor):
                self._stats[key] = torch.cat([current, value], dim=0)
            elif isinstance(value, np.ndarray):
                self._stats[key] = np.concatenate([current, value], axis=0)
            elif isinstance(value, list):
                self._stats[key] = current + deepcopy(value)
            else:
                raise TypeError(f"MaskData field {key!r} has unsupported type {type(value).__name__}")

    def to_numpy(self) -> None:
        """Convert every tensor field to a numpy array in place."""
        for key, value in self._stats.items():
            if isinstance(value, torch.Tensor):
                self._stats[key] = value.detach().cpu().numpy()


def _check_mask_data_value(key: str, value: Any) -> None:
    if value is not None and not isinstance(value, (list, np.ndarray, torch.Tensor)):
        raise TypeError(
            f"MaskData field {key!r} must be a list, numpy array or torch tensor, got {type(value).__name__}"
        )


def is_box_near_crop_edge(
    boxes: torch.Tensor, crop_box: list[int], orig_box: list[int], atol: float = 20.0
) -> torch.Tensor:
    """Which boxes touch a crop edge that is not also an edge of the original image.

    Arguments:
      boxes (torch.Tensor): (N, 4) XYXY boxes in the crop's frame.
      crop_box (list[int]): the crop [x0, y0, x1, y1] in original-image pixels.
      orig_box (list[int]): the whole image [0, 0, W, H].
      atol (float): distance in pixels that counts as touching.

    Returns:
      (torch.Tensor): (N,) bool.
    """
    crop_box_torch = torch.as_tensor(crop_box, dtype=torch.float, device=boxes.device)
    orig_box_torch = torch.as_tensor(orig_box, dtype=torch.float, device=boxes.device)
    boxes = uncrop_boxes_xyxy(boxes, crop_box).float()
    near_crop_edge = torch.isclose(boxes, crop_box_torch[None, :], atol=atol, rtol=0)
    near_image_edge = torch.isclose(boxes, orig_box_torch[None, :], atol=atol, rtol=0)
    near_crop_edge = torch.logical_and(near_crop_edge, ~near_image_edge)
    return torch.any(near_crop_edge, dim=1)


def box_xyxy_to_xywh(box_xyxy: torch.Tensor | np.ndarray) -> torch.Tensor | np.ndarray:
    """Convert one box (or a (..., 4) array) from XYXY to XYWH without modifying the input."""
    box_xywh = deepcopy(box_xyxy)
    box_xywh[..., 2] = box_xywh[..., 2] - box_xywh[..., 0]
    box_xywh[..., 3] = box_xywh[..., 3] - box_xywh[..., 1]
    return box_xywh


def batch_iterator(batch_size: int, *args: Any) -> Generator[list[Any], None, None]:
    """Yield lists of consecutive slices of ``batch_size`` from each argument (all the same length)."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if len(args) == 0:
        raise ValueError("batch_iterator needs at least one sequence to batch")
    lengths = [len(arg) for arg in args]
    if any(length != lengths[0] for length in lengths):
        raise ValueError(f"all sequences given to batch_iterator must have the same length, got {lengths}")
    n_batches = math.ceil(lengths[0] / batch_size)
    for b in range(n_batches):
        yield [arg[b * batch_size : (b + 1) * batch_size] for arg in args]


def mask_to_rle_pytorch(tensor: torch.Tensor) -> list[dict[str, Any]]:
    """Encode bool masks as uncompressed RLE (COCO's column-major convention).

    Arguments:
      tensor (torch.Tensor): (B, H, W) bool masks.

    Returns:
      (list[dict]): B dicts ``{"size": [H, W], "counts": [int, ...]}``; the first count is
        the length of the leading run of zeros (0 when the first pixel is set).
    """
    if tensor.ndim != 3:
        raise ValueError(f"masks must have shape (B, H, W), got {tuple(tensor.shape)}")
    _, h, w = tensor.shape
    # Column-major flattening as numpy makes each mask's run search one vectorised pass.
    flat = tensor.detach().cpu().to(torch.bool).permute(0, 2, 1).reshape(tensor.shape[0], h * w).numpy()
    out = []
    for row in flat:
        change = np.flatnonzero(row[1:] != row[:-1]) + 1
        boundaries = np.concatenate(([0], change, [h * w]))
        counts = np.diff(boundaries).tolist()
        if row.size and row[0]:
            counts = [0] + counts
        out.append({"size": [h, w], "counts": counts})
    return out


def rle_to_mask(rle: dict[str, Any]) -> np.ndarray:
    """Decode an uncompressed RLE (see ``mask_to_rle_pytorch``) to an (H, W) bool array."""
    h, w = rle["size"]
    counts = np.asarray(rle["counts"], dtype=np.int64)
    if counts.sum() != h * w:
        raise ValueError(f"RLE counts sum to {int(counts.sum())}, expected H*W = {h * w} for size {[h, w]}")
    values = np.arange(counts.size) % 2 == 1
    mask = np.repeat(values, counts)
    return mask.reshape(w, h).transpose()


def area_from_rle(rle: dict[str, Any]) -> int:
    """Number of set pixels of an uncompressed RLE."""
    return int(sum(rle["counts"][1::2]))


def calculate_stability_score(
    masks: torch.Tensor, mask_threshold: float, threshold_offset: float
) -> torch.Tensor:
    """Stability score: IoU between the masks thresholded at ``t + offset`` and at ``t - offset``.

    Arguments:
      masks (torch.Tensor): (..., H, W) mask logits.
      mask_threshold (float): the logit threshold t that defines a mask.
      threshold_offset (float): how far to move the threshold each way.

    Returns:
      (torch.Tensor): (...) float32 scores in [0, 1] (nan where the looser mask is empty).
    """
    # The high threshold's mask is a subset of the low one's, so the IoU is a ratio of counts.
    # int16 row sums, int32 totals: same accumulation types as the reference.
    intersections = (
        (masks > (mask_threshold + threshold_offset)).sum(-1, dtype=torch.int16).sum(-1, dtype=torch.int32)
    )
    unions = (masks > (mask_threshold - threshold_offset)).sum(-1, dtype=torch.int16).sum(-1, dtype=torch.int32)
    return intersections / unions


def build_point_grid(n_per_side: int) -> np.ndarray:
    """An n x n grid of points at cell centres of [0, 1] x [0, 1].

    Returns:
      (np.ndarray): (n*n, 2) float64 (x, y) points, x varying fastest.
    """
    if isinstance(n_per_side, bool) or not isinstance(n_per_side, int) or n_per_side < 1:
        raise ValueError(f"n_per_side must be a positive integer, got {n_per_side!r}")
    offset = 1 / (2 * n_per_side)
    points_one_side = np.linspace(offset, 1 - offset, n_per_side)
    points_x = np.tile(points_one_side[None, :], (n_per_side, 1))
    points_y = np.tile(points_one_side[:, None], (1, n_per_side))
    return np.stack([points_x, points_y], axis=-1).reshape(-1, 2)


def build_all_layer_point_grids(n_per_side: int, n_layers: int, scale_per_layer: int) -> list[np.ndarray]:
    """Point grids for crop layers 0..n_layers; layer i has ``int(n_per_side / scale_per_layer**i)`` per side."""
    return [build_point_grid(int(n_per_side / (scale_per_layer**i))) for i in range(n_layers + 1)]


def generate_crop_boxes(
    im_size: tuple[int, ...], n_layers: int, overlap_ratio: float
) -> tuple[list[list[int]], list[int]]:
    """Crop boxes of every layer: layer 0 is the whole image, layer i has (2**i)**2 overlapping crops.

    Arguments:
      im_size (tuple[int, int]): image (H, W).
      n_layers (int): number of crop layers after the full image.
      overlap_ratio (float): overlap between neighbouring crops as a fraction of the image's
        short side (for layer 1; scaled by 2 / crops per side for deeper layers).

    Returns:
      (list[list[int]], list[int]): XYXY crop boxes and the layer index of each.
    """
    im_h, im_w = im_size
    short_side = min(im_h, im_w)
    crop_boxes: list[list[int]] = [[0, 0, im_w, im_h]]
    layer_idxs = [0]

    def crop_len(orig_len: int, n_crops: int, overlap: int) -> int:
        return int(math.ceil((overlap * (n_crops - 1) + orig_len) / n_crops))

    for i_layer in range(n_layers):
        n_crops_per_side = 2 ** (i_layer + 1)
        overlap = int(overlap_ratio * short_side * (2 / n_crops_per_side))
        crop_w = crop_len(im_w, n_crops_per_side, overlap)
        crop_h = crop_len(im_h, n_crops_per_side, overlap)
        crop_box_x0 = [int((crop_w - overlap) * i) for i in range(n_crops_per_side)]
        crop_box_y0 = [int((crop_h - overlap) * i) for i in range(n_crops_per_side)]
        # x-major order, as the reference: all crops of the first column come first.
        for x0, y0 in product(crop_box_x0, crop_box_y0):
            crop_boxes.append([x0, y0, min(x0 + crop_w, im_w), min(y0 + crop_h, im_h)])
            layer_idxs.append(i_layer + 1)
    return crop_boxes, layer_idxs


def uncrop_boxes_xyxy(boxes: torch.Tensor, crop_box: list[int]) -> torch.Tensor:
    """Shift (..., 4) XYXY boxes from a crop's frame to the original image's."""
    x0, y0, _, _ = crop_box
    offset = torch.tensor([[x0, y0, x0, y0]], device=boxes.device)
    if boxes.ndim == 3:
        offset = offset.unsqueeze(1)
    return boxes + offset


def uncrop_points(points: torch.Tensor, crop_box: list[int]) -> torch.Tensor:
    """Shift (..., 2) XY points from a crop's frame to the original image's."""
    x0, y0, _, _ = crop_box
    offset = torch.tensor([[x0, y0]], device=points.device)
    if points.ndim == 3:
        offset = offset.unsqueeze(1)
    return points + offset


def uncrop_masks(masks: torch.Tensor, crop_box: list[int], orig_h: int, orig_w: int) -> torch.Tensor:
    """Zero-pad (..., h, w) crop masks to the original (orig_h, orig_w) frame."""
    x0, y0, x1, y1 = crop_box
    if x0 == 0 and y0 == 0 and x1 == orig_w and y1 == orig_h:
        return masks
    pad_x, pad_y = orig_w - (x1 - x0), orig_h - (y1 - y0)
    pad = (x0, pad_x - x0, y0, pad_y - y0)
    return torch.nn.functional.pad(masks, pad, value=0)


# 8-connectivity, the structure OpenCV's connectedComponentsWithStats(mask, 8) uses.
_EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


def remove_small_regions(mask: np.ndarray, area_thresh: float, mode: str) -> tuple[np.ndarray, bool]:
    """Fill small holes or drop small islands of a binary mask.

    Arguments:
      mask (np.ndarray): (H, W) bool mask.
      area_thresh (float): regions with fewer pixels than this are small.
      mode (str): "holes" fills small background regions (8-connected components of the
        background), "islands" removes small foreground components (keeping the largest one
        if every component is small).

    Returns:
      (np.ndarray, bool): the new (H, W) bool mask and whether anything changed.
    """
    if mode not in ("holes", "islands"):
        raise ValueError(f"mode must be 'holes' or 'islands', got {mode!r}")
    correct_holes = mode == "holes"
    working_mask = np.logical_xor(correct_holes, mask)
    regions, n_regions = ndimage.label(working_mask, structure=_EIGHT_CONNECTED)
    sizes = np.bincount(regions.ravel(), minlength=n_regions + 1)[1:]
    small_regions = [i + 1 for i, size in enumerate(sizes) if size < area_thresh]
    if not small_regions:
        return mask, False
    fill_labels = [0] + small_regions
    if not correct_holes:
        fill_labels = [i for i in range(n_regions + 1) if i not in fill_labels]
        if not fill_labels:
            fill_labels = [int(np.argmax(sizes)) + 1]
    return np.isin(regions, fill_labels), True


def coco_encode_rle(uncompressed_rle: dict[str, Any]) -> dict[str, Any]:
    """Compress an uncompressed RLE to COCO's string form ``{"size": [H, W], "counts": str}`` (pycocotools)."""
    from pycocotools import mask as mask_utils

    h, w = uncompressed_rle["size"]
    rle = mask_utils.frPyObjects(uncompressed_rle, h, w)
    rle["counts"] = rle["counts"].decode("utf-8")
    return rle


def batched_mask_to_box(masks: torch.Tensor) -> torch.Tensor:
    """Tight XYXY boxes (inclusive pixel indices) around bool masks.

    Arguments:
      masks (torch.Tensor): (..., H, W) bool masks.

    Returns:
      (torch.Tensor): (..., 4) int64 boxes [x0, y0, x1, y1]; [0, 0, 0, 0] for an empty mask.
    """
    if masks.ndim < 2:
        raise ValueError(f"masks must have shape (..., H, W), got {tuple(masks.shape)}")
    if torch.numel(masks) == 0:
        return torch.zeros(*masks.shape[:-2], 4, device=masks.device)
    shape = masks.shape
    h, w = shape[-2:]
    masks = masks.flatten(0, -3) if masks.ndim > 2 else masks.unsqueeze(0)

    rows_hit = torch.amax(masks, dim=-1)
    row_ids = rows_hit * torch.arange(h, device=masks.device)[None, :]
    bottom_edges = torch.amax(row_ids, dim=-1)
    top_edges = torch.amin(row_ids + h * (~rows_hit), dim=-1)

    cols_hit = torch.amax(masks, dim=-2)
    col_ids = cols_hit * torch.arange(w, device=masks.device)[None, :]
    right_edges = torch.amax(col_ids, dim=-1)
    left_edges = torch.amin(col_ids + w * (~cols_hit), dim=-1)

    # An empty mask has top > bottom (and left > right); report it as all zeros.
    empty = (right_edges < left_edges) | (bottom_edges < top_edges)
    out = torch.stack([left_edges, top_edges, right_edges, bottom_edges], dim=-1)
    out = out * (~empty).unsqueeze(-1)
    return out.reshape(*shape[:-2], 4) if len(shape) > 2 else out[0]
