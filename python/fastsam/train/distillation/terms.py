"""The distillation terms as pure functions of student and teacher tensors (no weights, no config).

Each returns one scalar, averaged so that its size does not depend on the batch, the number of prompts or
the spatial size; the weights are applied by the stack (stack.py), so every term can be logged unweighted.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..losses import sigmoid_focal_loss

# Floor for probabilities inside a log, so a saturated softmax/sigmoid gives a large finite KL, not inf/NaN.
_EPS = 1e-8


def _same_shape(name: str, student: torch.Tensor, teacher: torch.Tensor) -> None:
    if student.shape != teacher.shape:
        raise ValueError(f"{name}: student {tuple(student.shape)} and teacher {tuple(teacher.shape)} differ")


def mse(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Mean squared difference over every element (the "l2" of encoder_patch, the "mse" of prompt_embed)."""
    _same_shape("mse", student, teacher)
    return F.mse_loss(student.float(), teacher.float())


def cosine_distance(student: torch.Tensor, teacher: torch.Tensor, dim: int) -> torch.Tensor:
    """Mean over every position of 1 - cos(student, teacher) along `dim` (0 = same direction, 2 = opposite)."""
    _same_shape("cosine_distance", student, teacher)
    return (1 - F.cosine_similarity(student.float(), teacher.float(), dim=dim)).mean()


def kl_with_temperature(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float,
                        dim: int = -1) -> torch.Tensor:
    """Hinton's KD term T^2 * KL(softmax(teacher / T) || softmax(student / T)) along `dim`, summed over
    `dim` and averaged over every other position. The T^2 keeps gradient sizes comparable across T."""
    _same_shape("kl_with_temperature", student_logits, teacher_logits)
    log_s = F.log_softmax(student_logits.float() / temperature, dim=dim)
    log_t = F.log_softmax(teacher_logits.float() / temperature, dim=dim)
    return temperature ** 2 * (log_t.exp() * (log_t - log_s)).sum(dim).mean()


def distribution_kl(student_probs: torch.Tensor, teacher_probs: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """KL(teacher || student) between probability vectors along `dim` (e.g. attention rows), summed over
    `dim` and averaged over every other position."""
    _same_shape("distribution_kl", student_probs, teacher_probs)
    s = student_probs.float().clamp(min=_EPS)
    t = teacher_probs.float().clamp(min=_EPS)
    return (t * (t.log() - s.log())).sum(dim).mean()


def binary_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """Per-pixel KL(Bernoulli(sigmoid(teacher)) || Bernoulli(sigmoid(student))), averaged over pixels.

    Mask logits are independent per pixel (sigmoid, not softmax), so the KL is taken pixel by pixel; a
    softmax over candidates would be 0 whenever the decoder returns one mask.
    """
    _same_shape("binary_kl", student_logits, teacher_logits)
    s, t = student_logits.float(), teacher_logits.float()
    p = torch.sigmoid(t)
    # log sigmoid(x) = -softplus(-x), log(1 - sigmoid(x)) = -softplus(x): exact for large |x|.
    kl = p * (F.softplus(-s) - F.softplus(-t)) + (1 - p) * (F.softplus(s) - F.softplus(t))
    return kl.mean()


def focal_to_teacher(student_logits: torch.Tensor, teacher_logits: torch.Tensor, gamma: float) -> torch.Tensor:
    """Sigmoid focal loss of the student's logits against the teacher's probabilities as soft targets
    (alpha 0.25, as the task's focal term), averaged over pixels and masks."""
    _same_shape("focal_to_teacher", student_logits, teacher_logits)
    return sigmoid_focal_loss(student_logits.float(), torch.sigmoid(teacher_logits.float()), gamma=gamma).mean()


def _pairwise_distances(x: torch.Tensor) -> torch.Tensor:
    """(B, N, C) -> (B, N, N) Euclidean distances; the clamp keeps sqrt differentiable on the diagonal."""
    diff = x[:, :, None, :] - x[:, None, :, :]
    return diff.pow(2).sum(-1).clamp(min=1e-12).sqrt()


def _normalized_distances(x: torch.Tensor) -> torch.Tensor:
    """Pairwise distances divided by their mean off the diagonal (RKD: compares shapes, not scales)."""
    d = _pairwise_distances(x)
    n = x.shape[1]
    off = ~torch.eye(n, dtype=torch.bool, device=x.device)
    mean = d[:, off].mean(dim=1).clamp(min=1e-12)
    return d / mean[:, None, None], off


def rkd_distance(student_tokens: torch.Tensor, teacher_tokens: torch.Tensor) -> torch.Tensor:
    """RKD distance term (Park et al. 2019): smooth-L1 between the student's and the teacher's pairwise
    token distances, each normalised by its mean, over every ordered pair i != j.

    Arguments:
      student_tokens (B, N, Cs), teacher_tokens (B, N, Ct): the same N tokens of each image (channel counts
        may differ: only distances are compared). Works at B = 1, since relations are within one image.
    """
    if student_tokens.shape[:2] != teacher_tokens.shape[:2]:
        raise ValueError(f"rkd_distance: token counts differ: {tuple(student_tokens.shape)} vs {tuple(teacher_tokens.shape)}")
    ds, off = _normalized_distances(student_tokens.float())
    dt, _ = _normalized_distances(teacher_tokens.float())
    return F.smooth_l1_loss(ds[:, off], dt[:, off])


def _angles(x: torch.Tensor) -> torch.Tensor:
    """(B, N, C) -> (B, N, N, N): cos of the angle at vertex j between tokens i and k, <e_ji, e_jk>."""
    e = F.normalize(x[:, None, :, :] - x[:, :, None, :], p=2, dim=-1)  # e[b, j, i] = unit(x_i - x_j)
    return torch.einsum("bjic,bjkc->bjik", e, e)


def rkd_angle(student_tokens: torch.Tensor, teacher_tokens: torch.Tensor) -> torch.Tensor:
    """RKD angle term: smooth-L1 between the cosines of the angles every token triplet forms, student vs teacher.

    Costs O(B N^3 C): keep N (the sampled tokens) small.
    """
    if student_tokens.shape[:2] != teacher_tokens.shape[:2]:
        raise ValueError(f"rkd_angle: token counts differ: {tuple(student_tokens.shape)} vs {tuple(teacher_tokens.shape)}")
    return F.smooth_l1_loss(_angles(student_tokens.float()), _angles(teacher_tokens.float()))


def sample_tokens(student_map: torch.Tensor, teacher_map: torch.Tensor, count: int,
                  generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The same `count` random positions of two (B, C, h, w) maps as (B, count, C) tokens (all positions
    when the map has fewer). Sampling bounds RKD's cubic cost; sharing positions keeps the relations paired."""
    if student_map.shape[-2:] != teacher_map.shape[-2:]:
        raise ValueError(f"sample_tokens: grids differ: {tuple(student_map.shape)} vs {tuple(teacher_map.shape)}")
    s = student_map.flatten(2).transpose(1, 2)
    t = teacher_map.flatten(2).transpose(1, 2)
    total = s.shape[1]
    if count >= total:
        return s, t
    index = torch.randperm(total, generator=generator, device="cpu")[:count].to(s.device)
    return s[:, index], t[:, index]
