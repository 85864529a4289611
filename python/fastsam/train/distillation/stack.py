"""The distillation stack: every enabled term of one image, student vs teacher, by name.

    distill = teacher.weight * sum over enabled modules of (sum of w_* x term)

and the loop adds lambda * distill to the task loss. Terms of a disabled module are neither computed nor
logged, and its hooks are not installed. Decoder terms are averaged over the image's decoder passes (one
per image in prompt mode, one per chunk of grid points in everything mode).
"""
from __future__ import annotations

import logging

import torch
from torch import nn

from . import terms as T
from .capture import DecoderCall, DecoderCapture, mask_logits
from .config import DistillationConfig, enabled_modules
from .dynamic_lambda import PlateauLambda
from .teacher import Teacher, build_teacher

logger = logging.getLogger("fastsam.train")

# Logged term name -> (module, weight key). The order is the log's order.
TERM_WEIGHTS = {
    "encoder_patch_l2": ("encoder_patch", "w_l2"),
    "encoder_patch_cos": ("encoder_patch", "w_cos"),
    "rkd_dist": ("rkd", "w_dist"),
    "rkd_angle": ("rkd", "w_angle"),
    "prompt_embed_mse": ("prompt_embed", "w_mse"),
    "prompt_embed_cos": ("prompt_embed", "w_cos"),
    "decoder_mask_token_kl": ("decoder_mask_token", "w_kl"),
    "dense_mask_logits_kl": ("dense_mask_logits", "w_kl"),
    "dense_mask_logits_focal": ("dense_mask_logits", "w_focal"),
    "attention_kl": ("attention", "w_kl"),
}
_DECODER_MODULES = ("prompt_embed", "decoder_mask_token", "dense_mask_logits", "attention")


class DistillationStack:
    """Computes the enabled distillation terms of each image the student decoded.

    Use: inside `with stack.recording():`, after the task has decoded one image, call
    `stack.image_terms(student_embedding, item, device)`; sum `stack.weighted(terms)` into the loss.

    Arguments:
      cfg: the `distillation` block.
      student: the student Sam (hooks are installed on its prompt encoder and mask decoder).
      teacher: the frozen teacher (recording attention maps when the attention term is on).
    """

    def __init__(self, cfg: DistillationConfig, student: nn.Module, teacher: Teacher):
        self.cfg = cfg
        self.modules = enabled_modules(cfg)
        self.term_names = tuple(name for name, (module, _) in TERM_WEIGHTS.items() if module in self.modules)
        self.capture = DecoderCapture(student, attention="attention" in self.modules)
        self.teacher = teacher
        self.student_decoder = student.mask_decoder
        self.num_mask_tokens = student.mask_decoder.num_mask_tokens
        # RKD samples tokens with its own generator so that turning it on does not shift the data order.
        self.generator = torch.Generator().manual_seed(0)
        dyn = cfg.dynamic_lambda
        self.lambda_schedule = PlateauLambda(cfg.lambda_coef, dyn.factor, dyn.patience, dyn.min, enabled=dyn.enable)

    @property
    def needs_images(self) -> bool:
        """True when the teacher encodes each image itself (no embeddings folder), so images must be loaded."""
        return self.teacher.manifest is None

    def recording(self):
        """Record the student's decoder passes made inside the block."""
        return self.capture.recording()

    def image_terms(self, student_embedding: torch.Tensor, item: dict, device: torch.device) -> dict[str, torch.Tensor]:
        """Every enabled term (unweighted scalars) of one image whose decoder passes were just recorded.

        Arguments:
          student_embedding: (C, h, w) the student's image embedding the passes decoded (with its gradient).
          item: the dataset item (image_path, digest, image) the teacher finds its embedding by.
        """
        calls = self.capture.take()
        teacher_embedding = self.teacher.image_embedding(item, device)
        out: dict[str, torch.Tensor] = {}
        if "encoder_patch" in self.modules:
            s, t = student_embedding[None], teacher_embedding[None]
            out["encoder_patch_l2"] = T.mse(s, t)
            out["encoder_patch_cos"] = T.cosine_distance(s, t, dim=1)
        if "rkd" in self.modules:
            s, t = T.sample_tokens(student_embedding[None], teacher_embedding[None], self.cfg.rkd.num_tokens,
                                   self.generator)
            out["rkd_dist"] = T.rkd_distance(s, t)
            out["rkd_angle"] = T.rkd_angle(s, t)
        if any(m in self.modules for m in _DECODER_MODULES):
            if not calls:
                raise RuntimeError("distillation: no student decoder pass was recorded for this image "
                                   "(call image_terms inside stack.recording(), after the task decoded it)")
            per_call = [self._decoder_terms(call, self.teacher.decode(call, teacher_embedding)) for call in calls]
            for name in per_call[0]:
                out[name] = torch.stack([c[name] for c in per_call]).mean()
        return out

    def _decoder_terms(self, student: DecoderCall, teacher: DecoderCall) -> dict[str, torch.Tensor]:
        out = {}
        if "prompt_embed" in self.modules:
            out["prompt_embed_mse"] = T.mse(student.tokens, teacher.tokens)
            out["prompt_embed_cos"] = T.cosine_distance(student.tokens, teacher.tokens, dim=-1)
        if "decoder_mask_token" in self.modules:
            mask_tokens = slice(1, 1 + self.num_mask_tokens)  # token 0 is the IoU token
            out["decoder_mask_token_kl"] = T.kl_with_temperature(
                student.tokens[:, mask_tokens], teacher.tokens[:, mask_tokens], self.cfg.decoder_mask_token.temperature)
        if "dense_mask_logits" in self.modules:
            # Every mask token's logits, token for token (the candidate the task chose is among them): a
            # task may upscale only some prompts, so both sides are rebuilt from their transformer outputs.
            s = mask_logits(self.student_decoder, student)
            t = mask_logits(self.teacher.sam.mask_decoder, teacher)
            out["dense_mask_logits_kl"] = T.binary_kl(s, t)
            out["dense_mask_logits_focal"] = T.focal_to_teacher(s, t, self.cfg.dense_mask_logits.gamma)
        if "attention" in self.modules:
            out["attention_kl"] = torch.stack([T.distribution_kl(s, t) for s, t in
                                               zip(student.attention, teacher.attention, strict=True)]).mean()
        return out

    def weighted(self, terms: dict[str, torch.Tensor]) -> torch.Tensor:
        """teacher.weight * sum of w_* x term over `terms` (lambda is applied by the loop)."""
        total = torch.zeros(())
        for name, (module, key) in TERM_WEIGHTS.items():
            if name in terms:
                total = total.to(terms[name].device) + getattr(getattr(self.cfg, module), key) * terms[name]
        return self.cfg.teacher.weight * total

    def state_dict(self) -> dict:
        """What --resume needs to continue identically: the dynamic lambda and RKD's sampling generator."""
        return {"lambda": self.lambda_schedule.state_dict(), "rkd_generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.lambda_schedule.load_state_dict(state["lambda"])
        self.generator.set_state(state["rkd_generator"])

    def remove(self) -> None:
        self.capture.remove()


def build_stack(cfg: DistillationConfig, student: nn.Module, *, img_size: int, device: torch.device) -> DistillationStack:
    """The stack of a run: the configured teacher (frozen, at the student's input size) and the student's hooks."""
    encoder_terms = [m for m in ("encoder_patch", "rkd") if getattr(cfg, m).enable]
    if encoder_terms and not any(p.requires_grad for p in student.image_encoder.parameters()):
        logger.warning("distillation: %s only train the image encoder, which is frozen (until unfreeze_epoch); "
                       "until then they are computed and logged but change nothing", " and ".join(encoder_terms))
    teacher = build_teacher(cfg.teacher.model_type, cfg.teacher.checkpoint, img_size=img_size,
                            embeddings_dir=cfg.teacher.embeddings_dir, device=device, attention=cfg.attention.enable)
    return DistillationStack(cfg, student, teacher)
