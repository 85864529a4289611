"""The teacher: a frozen registry SAM (vit_b/l/h, or any registry model) that decodes the student's prompts.

Its image embeddings come either from a folder written by sam-extract-features (checked against the
teacher type, the input size and each image's SHA-1, like the feature-distillation folders), so a vit_h
teacher costs only its prompt encoder + decoder per step, or from its own image encoder run online.
"""
from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn

from ...build_sam import sam_model_registry
from ..distill import check_manifest, load_teacher_features
from .capture import DecoderCall, DecoderCapture

logger = logging.getLogger("fastsam.train")

EMBEDDING_SUFFIX = ".embedding.pt"


def freeze_teacher(model: nn.Module) -> nn.Module:
    """Eval mode (dropout off, fixed norms) and no gradients: the teacher is a constant of the loss."""
    model.eval()
    model.requires_grad_(False)
    return model


class Teacher:
    """A frozen SAM that decodes, under no_grad, the prompts the student decoded.

    Arguments:
      sam: the teacher model (frozen here).
      img_size: the run's input size (the teacher must see prompts in the same frame as the student).
      embeddings_dir: a sam-extract-features folder holding the teacher's image embeddings, or None to run
        the teacher's image encoder on each item's image.
      model_type: the registry name, checked against the embeddings folder's manifest.
      checkpoint: the teacher's weights file, checked (sha256) against the one the embeddings were made with.
      attention: record the token-to-image attention maps (the attention term).
    """

    def __init__(self, sam: nn.Module, *, img_size: int, embeddings_dir: str | Path | None, model_type: str,
                 attention: bool, checkpoint: str | None = None):
        self.sam = freeze_teacher(sam)
        self.capture = DecoderCapture(self.sam, attention=attention)
        self.folder = None if embeddings_dir is None else Path(embeddings_dir)
        self.manifest = None
        if self.folder is not None:
            self.manifest = check_manifest(self.folder, model_type, None, img_size, checkpoint)
            if "embedding_shape" not in self.manifest:
                raise FileNotFoundError(f"teacher embeddings folder {self.folder} holds no image embeddings (made by an "
                                        "older sam-extract-features); re-run sam-extract-features")

    @torch.no_grad()
    def image_embedding(self, item: dict, device: torch.device) -> torch.Tensor:
        """The teacher's (C, h, w) image embedding of a dataset item (dict with image_path, digest, image)."""
        if self.manifest is not None:
            return load_teacher_features(self.folder, self.manifest, item["image_path"], item["digest"],
                                         suffix=EMBEDDING_SUFFIX).to(device)
        if item["image"] is None:
            raise RuntimeError(f"the online teacher needs the image {item['image_path']}, but it was not loaded "
                               "(embedding cache); set distillation.teacher.embeddings_dir or cache_embeddings=false")
        sam = self.sam
        return sam.image_encoder(sam.preprocess(item["image"].to(device))[None])[0]

    @torch.no_grad()
    def decode(self, call: DecoderCall, embedding: torch.Tensor) -> DecoderCall:
        """Decode the prompts of a student's call on the teacher's (C, h, w) embedding; returns the teacher's
        call (tokens, image tokens, and attention maps where recorded)."""
        sam = self.sam
        with self.capture.recording():
            sparse, dense = sam.prompt_encoder(points=call.points, boxes=call.boxes, masks=call.masks)
            # Up to the transformer only: the terms read its outputs (mask_logits upscales when dense is on).
            sam.mask_decoder.predict_tokens(embedding[None], sam.prompt_encoder.get_dense_pe(), sparse, dense)
        (teacher_call,) = self.capture.take()
        return teacher_call


def build_teacher(model_type: str, checkpoint: str | None, *, img_size: int, embeddings_dir: str | None,
                  device: torch.device, attention: bool) -> Teacher:
    """A registry teacher at the run's input size with `checkpoint` loaded (random weights are warned about)."""
    if model_type not in sam_model_registry:
        raise ValueError(f"unknown teacher model type {model_type!r}; expected one of {sorted(sam_model_registry)}")
    if checkpoint is None:
        logger.warning("NO teacher checkpoint: the teacher %s has RANDOM weights; distilling from it teaches nothing",
                       model_type)
    sam = sam_model_registry[model_type](checkpoint=checkpoint, image_size=img_size).to(device)
    if embeddings_dir is not None:
        # Only the prompt encoder and decoder run: drop the encoder's memory (a vit_h encoder is 2.5 GB).
        sam.image_encoder = nn.Identity()
    return Teacher(sam, img_size=img_size, embeddings_dir=embeddings_dir, model_type=model_type,
                   attention=attention, checkpoint=checkpoint)
