"""Building the student: registry architecture at the run's image size, optional IoU-head shape, weights."""
from __future__ import annotations

import logging

from torch import nn

from ..build_sam import sam_model_registry
from ..checkpoint import load_state_dict_strictly, read_state_dict
from ..modeling.mask_decoder import MLP
from .config import TrainConfig

logger = logging.getLogger("fastsam.train")

_IOU_HEAD_PREFIX = "mask_decoder.iou_prediction_head."


def build_student(cfg: TrainConfig) -> nn.Module:
    """The student Sam for `cfg`, with `cfg.checkpoint` loaded (strictly, except a resized IoU head).

    A ViT checkpoint trained at another image size than `cfg.img_size` is resized on load (see
    fastsam.checkpoint_resize).

    Without a checkpoint the weights are random and a loud warning is logged. When iou_head_depth /
    iou_head_hidden_dim differ from the official 3 / 256, the IoU head is rebuilt; the checkpoint's head
    weights are kept when they have that shape (a run with the same head), else it trains from scratch.
    """
    model = sam_model_registry[cfg.model_type](checkpoint=None, image_size=cfg.img_size)
    decoder = model.mask_decoder
    custom_head = (cfg.iou_head_depth, cfg.iou_head_hidden_dim) != (3, 256)
    if custom_head:
        decoder.iou_prediction_head = MLP(decoder.transformer_dim, cfg.iou_head_hidden_dim, decoder.num_mask_tokens,
                                          cfg.iou_head_depth)
    if cfg.checkpoint is None:
        logger.warning("=" * 72)
        logger.warning("NO CHECKPOINT: the student %s starts from RANDOM weights. Set 'checkpoint' to "
                       "mobile_sam.pt / sam_vit_*.pth to finetune real weights.", cfg.model_type)
        logger.warning("=" * 72)
    elif custom_head:
        state = _read(cfg.checkpoint)
        # A checkpoint of a run with this same head (e.g. this run's best_model.pth) keeps its trained head.
        head = {k: v.shape for k, v in state.items() if k.startswith(_IOU_HEAD_PREFIX)}
        expected = {k: v.shape for k, v in model.state_dict().items() if k.startswith(_IOU_HEAD_PREFIX)}
        same_head = head == expected
        load_state_dict_strictly(model, state, cfg.checkpoint, cfg.model_type,
                                 keep_prefix=None if same_head else _IOU_HEAD_PREFIX)
        if not same_head:
            logger.warning("IoU head rebuilt with depth %d, hidden %d: its checkpoint weights are not used",
                           cfg.iou_head_depth, cfg.iou_head_hidden_dim)
    else:
        load_state_dict_strictly(model, _read(cfg.checkpoint), cfg.checkpoint, cfg.model_type)
    return model


def _read(path: str) -> dict:
    try:
        return read_state_dict(path)
    except RuntimeError as err:  # a damaged file is a bad input (ValueError), named by its config key
        raise ValueError(f"config key 'checkpoint': {err}; point it at mobile_sam.pt / sam_vit_*.pth or a "
                         "sam-train best_model.pth") from err
