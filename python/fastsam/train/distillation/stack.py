"""The distillation stack: every enabled term of one image, student vs each teacher, by name.

    distill = sum over teachers t of weight_t * sum over enabled modules of (sum of w_* x term(t))

and the loop adds lambda * distill to the task loss. Terms of a disabled module are neither computed nor
logged, and its hooks are not installed. Decoder terms are averaged over the image's decoder passes (one
per image in prompt mode, one per chunk of grid points in everything mode); they are computed pass by pass,
as the task decodes (`ImageDistillation.pass_terms`), so everything mode keeps one chunk's graph at a time.
With one teacher the terms are logged by their own names, with several as <teacher>/<term>.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
from torch import nn

from . import terms as T
from .capture import DecoderCall, DecoderCapture, mask_logits
from .config import DistillationConfig, enabled_modules, teacher_configs, teacher_name
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


@dataclass
class WeightedTeacher:
    name: str
    weight: float
    teacher: Teacher


class DistillationStack:
    """Computes the enabled distillation terms of each image the student decoded.

    Use: inside `with stack.recording():`, per image: `image = stack.image(item, device)`; after each decoder
    pass the task makes with gradients, add `stack.weighted(image.pass_terms(passes))` to that pass's loss;
    then add `stack.weighted(image.encoder_terms(student_embedding))`; `image.logged(...)` gives every term's
    value for the logs. (`image_terms` does it all at once for a task that decodes in one graph.)

    Arguments:
      cfg: the `distillation` block.
      student: the student Sam (hooks are installed on its prompt encoder and mask decoder).
      teachers: the frozen teachers with their names and weights (one Teacher: weight cfg.teacher.weight).
    """

    def __init__(self, cfg: DistillationConfig, student: nn.Module, teachers: Teacher | list[WeightedTeacher]):
        if isinstance(teachers, Teacher):
            teachers = [WeightedTeacher(teacher_name(cfg.teacher), cfg.teacher.weight, teachers)]
        self.cfg = cfg
        self.teachers = teachers
        self.modules = enabled_modules(cfg)
        names = [name for name, (module, _) in TERM_WEIGHTS.items() if module in self.modules]
        # logged name -> (teacher index, term)
        self.term_of = {(name if len(teachers) == 1 else f"{t.name}/{name}"): (i, name)
                        for i, t in enumerate(teachers) for name in names}
        self.term_names = tuple(self.term_of)
        self.capture = DecoderCapture(student, attention="attention" in self.modules, grad_only=True)
        self.student_decoder = student.mask_decoder
        self.num_mask_tokens = student.mask_decoder.num_mask_tokens
        # RKD samples tokens with its own generator so that turning it on does not shift the data order.
        self.generator = torch.Generator().manual_seed(0)
        dyn = cfg.dynamic_lambda
        self.lambda_schedule = PlateauLambda(cfg.lambda_coef, dyn.factor, dyn.patience, dyn.min, enabled=dyn.enable)

    @property
    def teacher(self) -> Teacher:
        """The first teacher (the only one in a single-teacher run)."""
        return self.teachers[0].teacher

    @property
    def needs_images(self) -> bool:
        """True when a teacher encodes each image itself (no embeddings folder), so images must be loaded."""
        return any(t.teacher.manifest is None for t in self.teachers)

    @property
    def uses_decoder(self) -> bool:
        return any(m in self.modules for m in _DECODER_MODULES)

    def recording(self):
        """Record the student's decoder passes made (with gradients) inside the block."""
        return self.capture.recording()

    def image(self, item: dict, device: torch.device) -> ImageDistillation:
        """The distillation of one image: fetches every teacher's embedding of it."""
        return ImageDistillation(self, item, device)

    def image_terms(self, student_embedding: torch.Tensor, item: dict, device: torch.device) -> dict[str, torch.Tensor]:
        """Every enabled term (unweighted scalars, with gradients) of one image whose decoder passes were just
        recorded; decoder terms are means over those passes.

        Arguments:
          student_embedding: (C, h, w) the student's image embedding the passes decoded (with its gradient).
          item: the dataset item (image_path, digest, image) the teacher finds its embedding by.
        """
        image = self.image(item, device)
        decoder = image.pass_terms()
        encoder = image.encoder_terms(student_embedding)
        image.logged(encoder)  # checks that a decoder term saw a pass
        return {**encoder, **decoder}

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
        """sum of weight_t * w_* x term over `terms` (lambda is applied by the loop)."""
        total = torch.zeros(())
        for name, value in terms.items():
            index, term = self.term_of[name]
            module, key = TERM_WEIGHTS[term]
            total = total.to(value.device) + self.teachers[index].weight * getattr(getattr(self.cfg, module), key) * value
        return total

    def state_dict(self) -> dict:
        """What --resume needs to continue identically: the dynamic lambda and RKD's sampling generator."""
        return {"lambda": self.lambda_schedule.state_dict(), "rkd_generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.lambda_schedule.load_state_dict(state["lambda"])
        self.generator.set_state(state["rkd_generator"])

    def remove(self) -> None:
        self.capture.remove()


class ImageDistillation:
    """The distillation terms of one image, decoder terms pass by pass, then the encoder terms."""

    def __init__(self, stack: DistillationStack, item: dict, device: torch.device):
        self.stack = stack
        self.embeddings = [t.teacher.image_embedding(item, device) for t in stack.teachers]
        self.decoder_sums: dict[str, torch.Tensor] = {}
        self.passes = 0

    def pass_terms(self, passes: int | None = None) -> dict[str, torch.Tensor]:
        """Decoder terms (with gradients) of the passes recorded since the last call, each divided by
        `passes`, the image's number of passes (default: the passes recorded now), so that the values of
        all calls add up to the mean over the image's passes."""
        calls = self.stack.capture.take()
        self.passes += len(calls)
        if not self.stack.uses_decoder:
            return {}
        passes = len(calls) if passes is None else passes
        out: dict[str, torch.Tensor] = {}
        for call in calls:
            for index, (t, embedding) in enumerate(zip(self.stack.teachers, self.embeddings)):
                for term, value in self.stack._decoder_terms(call, t.teacher.decode(call, embedding)).items():
                    name = self._name(index, term)
                    out[name] = out.get(name, 0.0) + value / passes
        for name, value in out.items():
            self.decoder_sums[name] = self.decoder_sums.get(name, 0.0) + value.detach()
        return out

    def encoder_terms(self, student_embedding: torch.Tensor) -> dict[str, torch.Tensor]:
        """The enabled image-embedding terms (with gradients) against every teacher."""
        stack, out = self.stack, {}
        for index, embedding in enumerate(self.embeddings):
            if "encoder_patch" in stack.modules:
                s, t = student_embedding[None], embedding[None]
                out[self._name(index, "encoder_patch_l2")] = T.mse(s, t)
                out[self._name(index, "encoder_patch_cos")] = T.cosine_distance(s, t, dim=1)
            if "rkd" in stack.modules:
                s, t = T.sample_tokens(student_embedding[None], embedding[None], stack.cfg.rkd.num_tokens,
                                       stack.generator)
                out[self._name(index, "rkd_dist")] = T.rkd_distance(s, t)
                out[self._name(index, "rkd_angle")] = T.rkd_angle(s, t)
        return out

    def logged(self, encoder_terms: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Every term's value (detached) once the image is done: the encoder terms and the decoder terms'
        means over the passes."""
        if self.stack.uses_decoder and not self.passes:
            raise RuntimeError("distillation: no student decoder pass was recorded for this image "
                               "(decode inside stack.recording(), with gradients enabled)")
        if self.stack.capture.calls:
            raise RuntimeError("distillation: the task decoded passes it did not hand to pass_terms")
        return {**{k: v.detach() for k, v in encoder_terms.items()}, **self.decoder_sums}

    def _name(self, index: int, term: str) -> str:
        return term if len(self.stack.teachers) == 1 else f"{self.stack.teachers[index].name}/{term}"


def build_stack(cfg: DistillationConfig, student: nn.Module, *, img_size: int, device: torch.device) -> DistillationStack:
    """The stack of a run: the configured teachers (frozen, at the student's input size) and the student's hooks."""
    encoder_terms = [m for m in ("encoder_patch", "rkd") if getattr(cfg, m).enable]
    if encoder_terms and not any(p.requires_grad for p in student.image_encoder.parameters()):
        logger.warning("distillation: %s only train the image encoder, which is frozen (until unfreeze_epoch); "
                       "until then they are computed and logged but change nothing", " and ".join(encoder_terms))
    teachers = [WeightedTeacher(teacher_name(t), t.weight,
                                build_teacher(t.model_type, t.checkpoint, img_size=img_size,
                                              embeddings_dir=t.embeddings_dir, device=device,
                                              attention=cfg.attention.enable))
                for _, t in teacher_configs(cfg)]
    return DistillationStack(cfg, student, teachers)
