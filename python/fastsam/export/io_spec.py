"""The ONNX interface shared by ``sam-export`` and the C++ runtime, defined once.

Every name, dtype and shape of the exported graphs comes from here: the exporter passes these
names to ``torch.onnx.export``, the manifest writer copies them into ``manifest.json``, and the
runtime reads them back from the manifest. Symbolic dimensions are strings; fixed ones are ints.

Model keys (manifest ``models`` entries) and files:

- ``encoder`` / ``encoder.onnx``: ``image`` float32 (B,3,H,W), RGB 0..255, already resized so that
  max(H, W) == image_size; normalisation and bottom/right zero padding happen inside.
  Output ``image_embeddings`` float32 (B,256,64,64).
- ``decoder`` / ``decoder.onnx``: the official SAM ONNX decoder interface (return_single_mask=False).
- ``decoder_batched`` / ``decoder_batched.onnx``: B prompts of N points against one embedding.
- ``decoder_head`` + ``decoder_masks``: decoder_batched cut in two (fp32 only) so the automatic mask
  generator upscales only prompts whose IoU predictions pass its filter: the head returns the IoU
  predictions, per-token ``mask_weights`` and the transformer's ``image_tokens``; the masks graph turns
  image tokens and mask weights into low-res logits.
- precision variants append ``_int8`` / ``_fp16`` to the key and ``.int8`` / ``.fp16`` to the file stem.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

FORMAT_VERSION = 1

ENCODER = "encoder"
DECODER = "decoder"
DECODER_BATCHED = "decoder_batched"
DECODER_HEAD = "decoder_head"
DECODER_MASKS = "decoder_masks"
BASE_MODELS = (ENCODER, DECODER, DECODER_BATCHED)  # every precision variant is made of these
SPLIT_DECODER = (DECODER_HEAD, DECODER_MASKS)      # fp32 only
EXPORTED_MODELS = BASE_MODELS + SPLIT_DECODER
PRECISIONS = ("fp32", "int8", "fp16")

# Input names.
IMAGE = "image"
IMAGE_EMBEDDINGS = "image_embeddings"
POINT_COORDS = "point_coords"
POINT_LABELS = "point_labels"
MASK_INPUT = "mask_input"
HAS_MASK_INPUT = "has_mask_input"
ORIG_IM_SIZE = "orig_im_size"
# Output names.
MASKS = "masks"
IOU_PREDICTIONS = "iou_predictions"
LOW_RES_MASKS = "low_res_masks"
MASK_WEIGHTS = "mask_weights"
IMAGE_TOKENS = "image_tokens"

# Symbolic dimension names.
BATCH = "batch"
HEIGHT = "height"
WIDTH = "width"
NUM_POINTS = "num_points"
NUM_PROMPTS = "num_prompts"
NUM_TOKENS = "num_tokens"
ORIG_HEIGHT = "orig_height"
ORIG_WIDTH = "orig_width"

EMBED_DIM = 256
NUM_MASK_TOKENS = 4  # token 0 = single-mask output, tokens 1..3 = multimask outputs
MASK_WEIGHT_DIM = EMBED_DIM // 8  # hypernetwork output = channels of the upscaled embedding


@dataclass(frozen=True)
class TensorSpec:
    """One graph input or output: ``shape`` holds ints for fixed and strings for symbolic dims."""

    name: str
    shape: tuple
    dtype: str = "float32"

    def to_json(self) -> dict:
        data = asdict(self)
        data["shape"] = list(self.shape)
        return data

    def dynamic_axes(self) -> dict[int, str]:
        """Axis index -> symbolic name, in the form ``torch.onnx.export(dynamic_axes=...)`` takes."""
        return {axis: dim for axis, dim in enumerate(self.shape) if isinstance(dim, str)}


@dataclass(frozen=True)
class ModelSpec:
    """Inputs and outputs of one exported graph, in graph order."""

    key: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    @property
    def input_names(self) -> list[str]:
        return [t.name for t in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [t.name for t in self.outputs]

    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        axes = {}
        for tensor in self.inputs + self.outputs:
            tensor_axes = tensor.dynamic_axes()
            if tensor_axes:
                axes[tensor.name] = tensor_axes
        return axes


def _low_res_size(image_size: int) -> int:
    return image_size // 4


def _embed_size(image_size: int) -> int:
    return image_size // 16


def encoder_spec(image_size: int = 1024) -> ModelSpec:
    """The image encoder graph (normalise + pad + encoder)."""
    e = _embed_size(image_size)
    return ModelSpec(
        ENCODER,
        inputs=(TensorSpec(IMAGE, (BATCH, 3, HEIGHT, WIDTH)),),
        outputs=(TensorSpec(IMAGE_EMBEDDINGS, (BATCH, EMBED_DIM, e, e)),),
    )


def decoder_spec(image_size: int = 1024) -> ModelSpec:
    """The official SAM ONNX decoder interface (all four mask tokens returned)."""
    e, m = _embed_size(image_size), _low_res_size(image_size)
    return ModelSpec(
        DECODER,
        inputs=(
            TensorSpec(IMAGE_EMBEDDINGS, (1, EMBED_DIM, e, e)),
            TensorSpec(POINT_COORDS, (1, NUM_POINTS, 2)),
            TensorSpec(POINT_LABELS, (1, NUM_POINTS)),
            TensorSpec(MASK_INPUT, (1, 1, m, m)),
            TensorSpec(HAS_MASK_INPUT, (1,)),
            TensorSpec(ORIG_IM_SIZE, (2,)),
        ),
        outputs=(
            TensorSpec(MASKS, (1, NUM_MASK_TOKENS, ORIG_HEIGHT, ORIG_WIDTH)),
            TensorSpec(IOU_PREDICTIONS, (1, NUM_MASK_TOKENS)),
            TensorSpec(LOW_RES_MASKS, (1, NUM_MASK_TOKENS, m, m)),
        ),
    )


def decoder_batched_spec(image_size: int = 1024) -> ModelSpec:
    """B prompts x N points against one image embedding; low-res logits only (the runtime upscales)."""
    e, m = _embed_size(image_size), _low_res_size(image_size)
    return ModelSpec(
        DECODER_BATCHED,
        inputs=(
            TensorSpec(IMAGE_EMBEDDINGS, (1, EMBED_DIM, e, e)),
            TensorSpec(POINT_COORDS, (NUM_PROMPTS, NUM_POINTS, 2)),
            TensorSpec(POINT_LABELS, (NUM_PROMPTS, NUM_POINTS)),
            TensorSpec(MASK_INPUT, (NUM_PROMPTS, 1, m, m)),
            TensorSpec(HAS_MASK_INPUT, (1,)),
        ),
        outputs=(
            TensorSpec(IOU_PREDICTIONS, (NUM_PROMPTS, NUM_MASK_TOKENS)),
            TensorSpec(LOW_RES_MASKS, (NUM_PROMPTS, NUM_MASK_TOKENS, m, m)),
        ),
    )


def decoder_head_spec(image_size: int = 1024) -> ModelSpec:
    """decoder_batched up to the upscaling: the inputs of decoder_batched."""
    e = _embed_size(image_size)
    return ModelSpec(
        DECODER_HEAD,
        inputs=decoder_batched_spec(image_size).inputs,
        outputs=(
            TensorSpec(IOU_PREDICTIONS, (NUM_PROMPTS, NUM_MASK_TOKENS)),
            TensorSpec(MASK_WEIGHTS, (NUM_PROMPTS, NUM_MASK_TOKENS, MASK_WEIGHT_DIM)),
            TensorSpec(IMAGE_TOKENS, (NUM_PROMPTS, e * e, EMBED_DIM)),
        ),
    )


def decoder_masks_spec(image_size: int = 1024) -> ModelSpec:
    """The rest of decoder_batched: low-res logits of any number of tokens (e.g. rows of mask_weights)."""
    e, m = _embed_size(image_size), _low_res_size(image_size)
    return ModelSpec(
        DECODER_MASKS,
        inputs=(
            TensorSpec(IMAGE_TOKENS, (NUM_PROMPTS, e * e, EMBED_DIM)),
            TensorSpec(MASK_WEIGHTS, (NUM_PROMPTS, NUM_TOKENS, MASK_WEIGHT_DIM)),
        ),
        outputs=(TensorSpec(LOW_RES_MASKS, (NUM_PROMPTS, NUM_TOKENS, m, m)),),
    )


def model_specs(image_size: int = 1024) -> dict[str, ModelSpec]:
    """Every exported graph by manifest key."""
    return {
        ENCODER: encoder_spec(image_size),
        DECODER: decoder_spec(image_size),
        DECODER_BATCHED: decoder_batched_spec(image_size),
        DECODER_HEAD: decoder_head_spec(image_size),
        DECODER_MASKS: decoder_masks_spec(image_size),
    }


def variant_key(base: str, precision: str) -> str:
    """Manifest key of a precision variant: ``encoder`` + ``int8`` -> ``encoder_int8``."""
    if base not in EXPORTED_MODELS:
        raise ValueError(f"unknown model {base!r}; expected one of {EXPORTED_MODELS}")
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; expected one of {PRECISIONS}")
    if base in SPLIT_DECODER and precision != "fp32":
        raise ValueError(f"{base} is exported in fp32 only, not {precision!r}")
    return base if precision == "fp32" else f"{base}_{precision}"


def variant_file(base: str, precision: str) -> str:
    """File name of a precision variant: ``encoder`` + ``int8`` -> ``encoder.int8.onnx``."""
    variant_key(base, precision)
    return f"{base}.onnx" if precision == "fp32" else f"{base}.{precision}.onnx"
