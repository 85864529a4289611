"""Type stubs of fastsam_rt._core (the pybind11 module); re-exported by fastsam_rt.

Conventions (as fastsam.SamPredictor): images are HxWx3 uint8 RGB; points are (x, y) and boxes XYXY, both in
original-image pixels; masks come back at the original resolution.
Errors: ValueError/TypeError for bad arguments, FileNotFoundError for a missing model directory, manifest.json
or model file, RuntimeError for calls in the wrong order, an unavailable execution provider, or a failure
inside ONNX Runtime.
"""
from typing import Any, Literal, Sequence

import numpy as np
import numpy.typing as npt

_RuntimeProvider = Literal["cpu", "cuda", "tensorrt"]
_GraphOptimization = Literal["disabled", "basic", "extended", "all"]
_Precision = Literal["fp32", "int8", "fp16"]

def available_providers() -> list[str]:
    """ONNX Runtime providers compiled into the loaded library, e.g. ['CPUExecutionProvider']."""

class Predictor:
    """SamPredictor over ONNX Runtime on a directory written by sam-export.

    Thread safety: a Predictor holds the current image, so give each thread its own; separate Predictors run
    concurrently (inference releases the GIL) with the same results as one after the other.
    """

    def __init__(
        self,
        model_dir: str,
        *,
        provider: _RuntimeProvider = "cpu",
        device_id: int = 0,
        intra_op_threads: int = 0,
        inter_op_threads: int = 1,
        graph_optimization: _GraphOptimization = "all",
        enable_memory_pattern: bool = True,
        enable_cpu_mem_arena: bool = True,
        precision: _Precision = "fp32",
        tensorrt_cache_dir: str = "",
        tensorrt_fp16: bool = False,
        verify_model_files: bool = True,
    ) -> None:
        """Load manifest.json, encoder and decoder_batched (or decoder) of `precision` from model_dir.

        Arguments:
          model_dir: directory with manifest.json and the .onnx files named there.
          provider: execution provider; 'cuda'/'tensorrt' raise RuntimeError when this ONNX Runtime lacks them.
            'tensorrt' without tensorrt_cache_dir uses the engine cache, fp16 flag and profiles that
            `sam-export --tensorrt` recorded in the manifest.
          precision: the manifest's variant ('fp16' = fp16 encoder + fp32 decoders); RuntimeError naming the
            sam-export flag when the export has none.
          intra_op_threads: threads per operator (0 = ONNX Runtime's default).
          verify_model_files: check each loaded .onnx file against manifest.json's sha256 first (RuntimeError
            naming the file and both digests on a mismatch); False skips reading the files twice.
        """
    def set_image(self, image: npt.NDArray[np.uint8], image_format: Literal["RGB", "BGR"] = "RGB") -> None:
        """Resize the longest side to image_size (PIL bilinear) and compute the image embedding.

        Arguments:
          image: HxWx3 uint8 in `image_format` channel order.
        """
    def predict(
        self,
        point_coords: npt.ArrayLike | None = None,
        point_labels: npt.ArrayLike | None = None,
        box: npt.ArrayLike | None = None,
        mask_input: npt.ArrayLike | None = None,
        multimask_output: bool = True,
        return_logits: bool = False,
    ) -> tuple[npt.NDArray[Any], npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        """Predict masks for one prompt.

        Arguments:
          point_coords: (N, 2) XY in original pixels; point_labels: (N,) 1 foreground / 0 background.
          box: (4,) XYXY in original pixels. mask_input: (1, L, L) low-res logits of a previous
          call; L = image_size // 4 (256 at 1024 px).
        Returns:
          masks (C, H, W) bool (float32 logits if return_logits), iou_predictions (C,) float32,
          low_res_logits (C, L, L) float32; C = 3 if multimask_output else 1.
        """
    def predict_boxes(
        self, boxes: npt.ArrayLike, multimask_output: bool = True, return_logits: bool = False
    ) -> tuple[npt.NDArray[Any], npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        """Predict masks for B boxes (B, 4) XYXY in original pixels in one decoder call.

        Returns:
          masks (B, C, H, W), iou_predictions (B, C), low_res_logits (B, C, L, L), L = image_size // 4.
        """
    def get_image_embedding(self) -> npt.NDArray[np.float32]:
        """The (1, 256, S, S) float32 embedding of the current image; S = image_size // 16 (64 at 1024 px)."""
    def reset_image(self) -> None: ...
    @property
    def is_image_set(self) -> bool: ...
    @property
    def original_size(self) -> tuple[int, int]: ...
    @property
    def input_size(self) -> tuple[int, int]: ...
    @property
    def model_type(self) -> str: ...
    @property
    def image_size(self) -> int: ...
    @property
    def mask_threshold(self) -> float: ...

class AutomaticMaskGenerator:
    """SamAutomaticMaskGenerator over fastsam_rt.Predictor (same parameters and defaults)."""

    def __init__(
        self,
        model_dir: str,
        *,
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
        point_grids: Sequence[npt.ArrayLike] | None = None,
        min_mask_region_area: int = 0,
        output_mode: Literal["binary_mask", "uncompressed_rle", "coco_rle"] = "binary_mask",
        provider: _RuntimeProvider = "cpu",
        device_id: int = 0,
        intra_op_threads: int = 0,
        inter_op_threads: int = 1,
        graph_optimization: _GraphOptimization = "all",
        enable_memory_pattern: bool = True,
        enable_cpu_mem_arena: bool = True,
        precision: _Precision = "fp32",
        tensorrt_cache_dir: str = "",
        tensorrt_fp16: bool = False,
        verify_model_files: bool = True,
    ) -> None: ...
    def generate(self, image: npt.NDArray[np.uint8]) -> list[dict[str, Any]]:
        """Generate masks for an HxWx3 uint8 RGB image.

        Returns:
          list of dicts with segmentation (HxW bool, or RLE dict per output_mode), area (int), bbox (XYWH),
          predicted_iou, point_coords ([[x, y]]), stability_score, crop_box (XYWH), as SamAutomaticMaskGenerator.
        """
    @property
    def uses_split_decoder(self) -> bool:
        """True when the export's decoder_head + decoder_masks are used (fp32): prompts whose masks all fail
        pred_iou_thresh are then not upscaled. The output is the same either way."""

def encode_coco_rle(mask: npt.ArrayLike) -> dict[str, Any]:
    """COCO compressed RLE {'size': [H, W], 'counts': str} of an (H, W) mask, identical to pycocotools."""

def decode_coco_rle(rle: dict[str, Any]) -> npt.NDArray[np.bool_]:
    """(H, W) bool mask of a COCO compressed RLE dict."""

def resize_longest_side(image: npt.NDArray[np.uint8], target_length: int) -> npt.NDArray[np.uint8]:
    """ResizeLongestSide.apply_image: HxWx3 uint8 resized with PIL's antialiased bilinear filter."""
