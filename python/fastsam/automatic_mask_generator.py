"""SamAutomaticMaskGenerator: segment everything by prompting SAM with a grid of points.

Same parameters, defaults, algorithm and order of operations as segment-anything's
generator, so results match it. One engineering change with identical results: the
``pred_iou_thresh`` filter depends only on the predicted IoU, so it runs on the low-res
logits before upscaling, and only the surviving masks are upscaled to the image size (the
reference upscales every mask first). Upscaling also runs in chunks to bound memory.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .predictor import SamPredictor
from .utils.amg import (
    MaskData,
    area_from_rle,
    batch_iterator,
    batched_mask_to_box,
    box_xyxy_to_xywh,
    build_all_layer_point_grids,
    calculate_stability_score,
    coco_encode_rle,
    generate_crop_boxes,
    is_box_near_crop_edge,
    mask_to_rle_pytorch,
    remove_small_regions,
    rle_to_mask,
    uncrop_boxes_xyxy,
    uncrop_masks,
    uncrop_points,
)
from .utils.nms import batched_nms, box_area
from .utils.validation import check_image

OUTPUT_MODES = ("binary_mask", "uncompressed_rle", "coco_rle")

# Masks upscaled to full resolution at once; bounds peak memory (each is H x W float32,
# plus a 1024 x 1024 intermediate) without changing any result.
_UPSCALE_CHUNK = 32


class SamAutomaticMaskGenerator:
    def __init__(
        self,
        model: Any,
        points_per_side: int | None = 32,
        points_per_batch: int = 64,
        pred_iou_thresh: float = 0.88,
        stability_score_thresh: float = 0.95,
        stability_score_offset: float = 1.0,
        box_nms_thresh: float = 0.7,
        crop_n_layers: int = 0,
        crop_nms_thresh: float = 0.7,
        crop_overlap_ratio: float = 512 / 1500,
        crop_n_points_downscale_factor: int = 1,
        point_grids: list[np.ndarray] | None = None,
        min_mask_region_area: int = 0,
        output_mode: str = "binary_mask",
        *,
        predictor: SamPredictor | None = None,
    ) -> None:
        """Generate masks for a whole image from a grid of point prompts (optionally on crops).

        Arguments:
          model (Sam): the model to use.
          points_per_side (int | None): points sampled along one side of the image (the grid is
            points_per_side**2); None when point_grids is given.
          points_per_batch (int): points run through the decoder together.
          pred_iou_thresh (float): keep masks whose predicted IoU is above this ([0, 1]; 0 = off).
          stability_score_thresh (float): keep masks with stability score >= this ([0, 1]; 0 = off).
          stability_score_offset (float): logit offset used for the stability score.
          box_nms_thresh (float): box IoU threshold of the NMS within a crop ([0, 1]).
          crop_n_layers (int): crop layers; layer i has (2**i)**2 crops.
          crop_nms_thresh (float): box IoU threshold of the NMS across crops ([0, 1]).
          crop_overlap_ratio (float): crop overlap as a fraction of the short image side ([0, 1)).
          crop_n_points_downscale_factor (int): points per side in layer n are divided by this**n.
          point_grids (list[np.ndarray] | None): explicit (N_i, 2) grids in [0, 1] per layer;
            exclusive with points_per_side.
          min_mask_region_area (int): if > 0, fill holes / remove islands smaller than this (pixels).
          output_mode (str): "binary_mask", "uncompressed_rle" or "coco_rle".
          predictor (SamPredictor | None): keyword-only; a predictor for ``model`` that may already
            hold the image's embedding: when it holds exactly a crop's image, its embedding is reused
            instead of re-encoding. It is never modified; other crops use the generator's own.
        """
        if (points_per_side is None) == (point_grids is None):
            raise ValueError(
                "exactly one of points_per_side and point_grids must be given (set points_per_side=None "
                f"to use point_grids), got points_per_side={points_per_side!r} and "
                f"point_grids={'None' if point_grids is None else 'a list'}"
            )
        _check_generator_arguments(
            points_per_side=points_per_side,
            points_per_batch=points_per_batch,
            pred_iou_thresh=pred_iou_thresh,
            stability_score_thresh=stability_score_thresh,
            stability_score_offset=stability_score_offset,
            box_nms_thresh=box_nms_thresh,
            crop_n_layers=crop_n_layers,
            crop_nms_thresh=crop_nms_thresh,
            crop_overlap_ratio=crop_overlap_ratio,
            crop_n_points_downscale_factor=crop_n_points_downscale_factor,
            min_mask_region_area=min_mask_region_area,
            output_mode=output_mode,
        )
        if points_per_side is not None:
            self.point_grids = build_all_layer_point_grids(
                points_per_side, crop_n_layers, crop_n_points_downscale_factor
            )
        else:
            self.point_grids = _check_point_grids(point_grids, crop_n_layers)

        if predictor is not None and not isinstance(predictor, SamPredictor):
            raise TypeError(f"predictor must be a SamPredictor, got {type(predictor).__name__}")
        if predictor is not None and predictor.model is not model:
            raise ValueError("predictor must wrap the same model that is passed as model")
        self.predictor = SamPredictor(model)
        self._external_predictor = predictor
        self.points_per_batch = points_per_batch
        self.pred_iou_thresh = pred_iou_thresh
        self.stability_score_thresh = stability_score_thresh
        self.stability_score_offset = stability_score_offset
        self.box_nms_thresh = box_nms_thresh
        self.crop_n_layers = crop_n_layers
        self.crop_nms_thresh = crop_nms_thresh
        self.crop_overlap_ratio = crop_overlap_ratio
        self.crop_n_points_downscale_factor = crop_n_points_downscale_factor
        self.min_mask_region_area = min_mask_region_area
        self.output_mode = output_mode

    @torch.no_grad()
    def generate(self, image: np.ndarray, *, progress: bool = False) -> list[dict[str, Any]]:
        """Generate masks for the whole image.

        Arguments:
          image (np.ndarray): (H, W, 3) uint8 RGB image.
          progress (bool): show a tqdm progress bar over the point batches.

        Returns:
          (list[dict]): one record per mask, in the reference order:
            segmentation: (H, W) bool array, or an RLE dict (see output_mode);
            area (int): mask pixels; bbox (list): XYWH box; predicted_iou (float);
            point_coords (list[list[float]]): the (X, Y) prompt that made the mask;
            stability_score (float); crop_box (list): XYWH crop the mask came from.
        """
        check_image(image)
        mask_data = self._generate_masks(image, progress)

        if self.min_mask_region_area > 0:
            mask_data = self.postprocess_small_regions(
                mask_data, self.min_mask_region_area, max(self.box_nms_thresh, self.crop_nms_thresh)
            )

        if self.output_mode == "coco_rle":
            segmentations = [coco_encode_rle(rle) for rle in mask_data["rles"]]
        elif self.output_mode == "binary_mask":
            segmentations = [rle_to_mask(rle) for rle in mask_data["rles"]]
        else:
            segmentations = mask_data["rles"]

        annotations = []
        for idx, segmentation in enumerate(segmentations):
            annotations.append(
                {
                    "segmentation": segmentation,
                    "area": area_from_rle(mask_data["rles"][idx]),
                    "bbox": box_xyxy_to_xywh(mask_data["boxes"][idx]).tolist(),
                    "predicted_iou": mask_data["iou_preds"][idx].item(),
                    "point_coords": [mask_data["points"][idx].tolist()],
                    "stability_score": mask_data["stability_score"][idx].item(),
                    "crop_box": box_xyxy_to_xywh(mask_data["crop_boxes"][idx]).tolist(),
                }
            )
        return annotations

    def _generate_masks(self, image: np.ndarray, progress: bool) -> MaskData:
        orig_size = image.shape[:2]
        crop_boxes, layer_idxs = generate_crop_boxes(orig_size, self.crop_n_layers, self.crop_overlap_ratio)

        bar = None
        if progress:
            from tqdm import tqdm

            total = sum(
                -(-len(self.point_grids[layer]) // self.points_per_batch) for layer in layer_idxs
            )
            bar = tqdm(total=total, desc="mask generation (point batches)", unit="batch")
        try:
            data = MaskData()
            for crop_box, layer_idx in zip(crop_boxes, layer_idxs):
                data.cat(self._process_crop(image, crop_box, layer_idx, orig_size, bar))
        finally:
            if bar is not None:
                bar.close()

        # Across crops, prefer masks from smaller crops (1 / crop area as score).
        if len(crop_boxes) > 1 and len(data["rles"]) > 0:
            scores = 1 / box_area(data["crop_boxes"])
            scores = scores.to(data["boxes"].device)
            keep_by_nms = batched_nms(
                data["boxes"].float(),
                scores,
                torch.zeros_like(data["boxes"][:, 0]),
                iou_threshold=self.crop_nms_thresh,
            )
            data.filter(keep_by_nms)
        data.to_numpy()
        return data

    def _process_crop(
        self,
        image: np.ndarray,
        crop_box: list[int],
        crop_layer_idx: int,
        orig_size: tuple[int, ...],
        bar: Any,
    ) -> MaskData:
        x0, y0, x1, y1 = crop_box
        cropped_im = image[y0:y1, x0:x1, :]
        cropped_im_size = cropped_im.shape[:2]
        # Reuse an embedding already held for this exact crop (e.g. the whole image, set by the
        # caller); otherwise embed it with our own predictor and release it afterwards.
        predictor = self.predictor
        if self._external_predictor is not None and self._external_predictor.holds_image(cropped_im):
            predictor = self._external_predictor
        embedded_here = not predictor.holds_image(cropped_im)
        if embedded_here:
            predictor.set_image(cropped_im)
        try:
            points_scale = np.array(cropped_im_size)[None, ::-1]
            points_for_image = self.point_grids[crop_layer_idx] * points_scale
            data = MaskData()
            for (points,) in batch_iterator(self.points_per_batch, points_for_image):
                data.cat(self._process_batch(predictor, points, cropped_im_size, crop_box, orig_size))
                if bar is not None:
                    bar.update(1)
        finally:
            if embedded_here:
                predictor.reset_image()

        if len(data) == 0 or len(data["rles"]) == 0:
            return _empty_mask_data()
        keep_by_nms = batched_nms(
            data["boxes"].float(),
            data["iou_preds"],
            torch.zeros_like(data["boxes"][:, 0]),
            iou_threshold=self.box_nms_thresh,
        )
        data.filter(keep_by_nms)
        data["boxes"] = uncrop_boxes_xyxy(data["boxes"], crop_box)
        data["points"] = uncrop_points(data["points"], crop_box)
        data["crop_boxes"] = torch.tensor([crop_box for _ in range(len(data["rles"]))])
        return data

    def _process_batch(
        self,
        predictor: SamPredictor,
        points: np.ndarray,
        im_size: tuple[int, ...],
        crop_box: list[int],
        orig_size: tuple[int, ...],
    ) -> MaskData:
        orig_h, orig_w = orig_size
        transformed_points = predictor.transform.apply_coords(points, im_size)
        # float64 points, as the reference passes them (the prompt encoder casts after scaling).
        in_points = torch.as_tensor(transformed_points, device=predictor.device)
        in_labels = torch.ones(in_points.shape[0], dtype=torch.int, device=in_points.device)
        low_res_masks, iou_preds = predictor._predict_low_res(
            in_points[:, None, :], in_labels[:, None], None, None, multimask_output=True
        )
        num_per_point = low_res_masks.shape[1]
        data = MaskData(
            low_res_masks=low_res_masks.flatten(0, 1),
            iou_preds=iou_preds.flatten(0, 1),
            points=torch.as_tensor(points.repeat(num_per_point, axis=0)),
        )
        del low_res_masks

        # Depends only on the predicted IoU: filtering before upscaling gives the same result.
        if self.pred_iou_thresh > 0.0:
            data.filter(data["iou_preds"] > self.pred_iou_thresh)

        stability_scores, boxes, rles = [], [], []
        kept = []
        for start in range(0, len(data["iou_preds"]), _UPSCALE_CHUNK):
            chunk = data["low_res_masks"][start : start + _UPSCALE_CHUNK]
            masks = predictor.model.postprocess_masks(
                chunk[:, None, :, :], predictor.input_size, predictor.original_size
            )[:, 0]
            scores = calculate_stability_score(
                masks, predictor.model.mask_threshold, self.stability_score_offset
            )
            keep = torch.ones_like(scores, dtype=torch.bool)
            if self.stability_score_thresh > 0.0:
                keep = scores >= self.stability_score_thresh
            binary = masks[keep] > predictor.model.mask_threshold
            del masks
            chunk_boxes = batched_mask_to_box(binary).to(torch.int64)
            # Drop masks touching a crop edge that is not an image edge.
            inside = ~is_box_near_crop_edge(chunk_boxes, crop_box, [0, 0, orig_w, orig_h])
            binary, chunk_boxes = binary[inside], chunk_boxes[inside]
            keep_idx = torch.nonzero(keep).flatten()[inside]
            kept.append(keep_idx + start)
            stability_scores.append(scores[keep_idx])
            boxes.append(chunk_boxes)
            rles.extend(mask_to_rle_pytorch(uncrop_masks(binary, crop_box, orig_h, orig_w)))
        del data["low_res_masks"]

        if not kept:
            return _empty_mask_data()
        data.filter(torch.cat(kept))
        data["stability_score"] = torch.cat(stability_scores)
        data["boxes"] = torch.cat(boxes)
        data["rles"] = rles
        return data

    @staticmethod
    def postprocess_small_regions(mask_data: MaskData, min_area: int, nms_thresh: float) -> MaskData:
        """Fill small holes and remove small islands of every mask, then re-run box NMS.

        Masks that changed get score 0 in the NMS (unchanged ones 1), so an unchanged mask wins
        over a changed one that overlaps it. Only the masks kept get their RLE and box updated.

        Arguments:
          mask_data (MaskData): with numpy fields "rles", "boxes" (XYXY), ...
          min_area (int): regions smaller than this (pixels) are removed or filled.
          nms_thresh (float): box IoU threshold of the NMS.

        Returns:
          (MaskData): the filtered, updated data.
        """
        if len(mask_data["rles"]) == 0:
            return mask_data

        new_masks = []
        scores = []
        for rle in mask_data["rles"]:
            mask = rle_to_mask(rle)
            mask, changed = remove_small_regions(mask, min_area, mode="holes")
            unchanged = not changed
            mask, changed = remove_small_regions(mask, min_area, mode="islands")
            unchanged = unchanged and not changed
            new_masks.append(torch.as_tensor(mask).unsqueeze(0))
            scores.append(float(unchanged))

        masks = torch.cat(new_masks, dim=0)
        boxes = batched_mask_to_box(masks)
        keep_by_nms = batched_nms(
            boxes.float(),
            torch.as_tensor(scores),
            torch.zeros_like(boxes[:, 0]),
            iou_threshold=nms_thresh,
        )
        for i_mask in keep_by_nms.tolist():
            if scores[i_mask] == 0.0:
                mask_data["rles"][i_mask] = mask_to_rle_pytorch(masks[i_mask].unsqueeze(0))[0]
                mask_data["boxes"][i_mask] = boxes[i_mask].numpy()
        mask_data.filter(keep_by_nms)
        return mask_data


def _empty_mask_data() -> MaskData:
    return MaskData(
        iou_preds=torch.zeros(0),
        points=torch.zeros(0, 2, dtype=torch.float64),
        stability_score=torch.zeros(0),
        boxes=torch.zeros(0, 4, dtype=torch.int64),
        rles=[],
        crop_boxes=torch.zeros(0, 4, dtype=torch.int64),
    )


def _check_generator_arguments(**kwargs: Any) -> None:
    def positive_int(name: str, allow_zero: bool = False) -> None:
        value = kwargs[name]
        low = 0 if allow_zero else 1
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")

    def in_unit_interval(name: str, closed_right: bool = True) -> None:
        value = kwargs[name]
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        ok = ok and 0.0 <= value and (value <= 1.0 if closed_right else value < 1.0)
        if not ok:
            interval = "[0, 1]" if closed_right else "[0, 1)"
            raise ValueError(f"{name} must be a number in {interval}, got {value!r}")

    if kwargs["points_per_side"] is not None:
        positive_int("points_per_side")
    positive_int("points_per_batch")
    positive_int("crop_n_layers", allow_zero=True)
    positive_int("crop_n_points_downscale_factor")
    positive_int("min_mask_region_area", allow_zero=True)
    for name in ("pred_iou_thresh", "stability_score_thresh", "box_nms_thresh", "crop_nms_thresh"):
        in_unit_interval(name)
    in_unit_interval("crop_overlap_ratio", closed_right=False)
    offset = kwargs["stability_score_offset"]
    if isinstance(offset, bool) or not isinstance(offset, (int, float)) or not offset > 0:
        raise ValueError(f"stability_score_offset must be a positive number, got {offset!r}")
    if kwargs["output_mode"] not in OUTPUT_MODES:
        raise ValueError(f"output_mode must be one of {OUTPUT_MODES}, got {kwargs['output_mode']!r}")


def _check_point_grids(point_grids: Any, crop_n_layers: int) -> list[np.ndarray]:
    if not isinstance(point_grids, (list, tuple)) or len(point_grids) != crop_n_layers + 1:
        raise ValueError(
            f"point_grids must be a list with one (N, 2) grid per crop layer, i.e. crop_n_layers + 1 = "
            f"{crop_n_layers + 1} grids, got {type(point_grids).__name__} of length "
            f"{len(point_grids) if isinstance(point_grids, (list, tuple)) else 'n/a'}"
        )
    grids = []
    for i, grid in enumerate(point_grids):
        grid = np.asarray(grid, dtype=np.float64)
        if grid.ndim != 2 or grid.shape[1] != 2 or grid.shape[0] == 0:
            raise ValueError(f"point_grids[{i}] must have shape (N, 2) with N >= 1, got {grid.shape}")
        if grid.min() < 0 or grid.max() > 1:
            raise ValueError(f"point_grids[{i}] must hold normalised (X, Y) points in [0, 1]")
        grids.append(grid)
    return grids
