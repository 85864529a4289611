"""Feature distillation: teacher features saved by sam-extract-features, student features from a hook,
and a learned 1x1 projection when their channel counts differ.

The features directory holds ``<image stem>.pt`` ((C, h, w) float16 per image) and ``manifest.json``
recording the teacher type, the block index, the input size, the feature shape and each image's SHA-1,
so features made with other settings (or for since-edited images) are refused instead of silently used.
"""
from __future__ import annotations

import functools
import json
import logging
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

MANIFEST_NAME = "manifest.json"
_UNSET = object()  # check_manifest: no teacher checkpoint to compare with


def feature_blocks(image_encoder: nn.Module) -> nn.ModuleList:
    """The encoder's hookable stages: ViT ``blocks`` or TinyViT ``layers``."""
    for name in ("blocks", "layers"):
        if isinstance(getattr(image_encoder, name, None), nn.ModuleList):
            return getattr(image_encoder, name)
    raise TypeError(f"{type(image_encoder).__name__} has neither 'blocks' nor 'layers' to take features from")


def resolve_level(image_encoder: nn.Module, level: int, key: str) -> int:
    """A block index made non-negative; raises ValueError naming the config key when out of range."""
    count = len(feature_blocks(image_encoder))
    if not -count <= level < count:
        raise ValueError(f"config key '{key}' is {level}, but the encoder has {count} blocks (valid {-count}..{count - 1})")
    return level % count


def to_feature_map(x: torch.Tensor) -> torch.Tensor:
    """Block output -> (B, C, h, w): ViT blocks give (B, h, w, C), TinyViT stages (B, h*w, C)."""
    if x.ndim == 3:
        side = int(round(x.shape[1] ** 0.5))
        if side * side != x.shape[1]:
            raise ValueError(f"cannot make a square feature map from {x.shape[1]} tokens")
        return x.transpose(1, 2).reshape(x.shape[0], x.shape[2], side, side)
    if x.ndim == 4:
        return x.permute(0, 3, 1, 2)
    raise ValueError(f"unexpected block output shape {tuple(x.shape)}")


class FeatureHook:
    """Keeps the latest output of one encoder block as a (B, C, h, w) map."""

    def __init__(self, image_encoder: nn.Module, level: int):
        self.output: torch.Tensor | None = None
        self._handle = feature_blocks(image_encoder)[level].register_forward_hook(self._store)

    def _store(self, module, inputs, output) -> None:
        self.output = to_feature_map(output)

    def remove(self) -> None:
        self._handle.remove()


class DistillProjection(nn.Module):
    """1x1 convolution from student to teacher channels (identity when equal), then resize to the teacher's grid."""

    def __init__(self, student_channels: int, teacher_channels: int):
        super().__init__()
        self.proj = (nn.Identity() if student_channels == teacher_channels
                     else nn.Conv2d(student_channels, teacher_channels, kernel_size=1))

    def forward(self, student: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        out = self.proj(student)
        if out.shape[-2:] != size:
            out = F.interpolate(out, size=size, mode="bilinear", align_corners=False)
        return out


def write_manifest(folder: Path, manifest: dict) -> None:
    (folder / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n")


@functools.lru_cache(maxsize=8)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    """Cached by (path, size, mtime): a run checks its teacher (up to 2.5 GB) before and after making the run folder."""
    from ..export.manifest import sha256_file

    return sha256_file(Path(path))


def teacher_weights_record(checkpoint: str | None) -> dict:
    """What a manifest records of the teacher's weights: the file and its sha256 (both None: random weights)."""
    if checkpoint is None:
        return {"teacher_checkpoint": None, "teacher_checkpoint_sha256": None}
    st = Path(checkpoint).stat()
    return {"teacher_checkpoint": checkpoint,
            "teacher_checkpoint_sha256": _sha256(str(Path(checkpoint).resolve()), st.st_size, st.st_mtime_ns)}


def _teacher_weights_mismatch(manifest: dict, checkpoint: str | None) -> str | None:
    """Why the features were not made by `checkpoint`, or None when they were (or it cannot be told)."""
    recorded = manifest.get("teacher_checkpoint")
    if checkpoint is None:
        if recorded is not None:
            logging.getLogger("fastsam.train").warning(
                "teacher features were extracted with %s; this config names no teacher checkpoint, so that "
                "cannot be checked", recorded)
        return None
    if recorded is None:
        return f"a teacher with RANDOM weights (run: {checkpoint})"
    if "teacher_checkpoint_sha256" in manifest:
        actual = teacher_weights_record(checkpoint)["teacher_checkpoint_sha256"]
        if actual != manifest["teacher_checkpoint_sha256"]:
            return (f"teacher checkpoint {recorded} (sha256 {manifest['teacher_checkpoint_sha256'][:12]}...; run: "
                    f"{checkpoint}, sha256 {actual[:12]}...)")
        return None
    # Manifests written before the sha256 was recorded: the file name is all there is.
    if Path(recorded).name != Path(checkpoint).name:
        return f"teacher checkpoint {recorded} (run: {checkpoint})"
    return None


def check_manifest(folder: str | Path, teacher_model_type: str, feature_level: int | None, img_size: int,
                   teacher_checkpoint: str | None | object = _UNSET) -> dict:
    """Read the manifest and refuse features made with other settings than this run's.

    Arguments:
      feature_level: the run's distill_feature_level, possibly negative (resolved with the manifest's block count);
        None when only the final image embeddings are used (distillation.teacher.embeddings_dir).
    Returns:
      The manifest dict.
    teacher_checkpoint: the run's teacher weights file (None: random weights), compared by sha256 with the one
      the features were made with; left out, the weights are not compared.
    """
    folder = Path(folder)
    path = folder / MANIFEST_NAME
    if not path.is_file():
        raise FileNotFoundError(f"teacher features folder {folder} has no {MANIFEST_NAME}; "
                                "create it with sam-extract-features")
    try:
        manifest = json.loads(path.read_text())
        count = manifest["num_blocks"]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise ValueError(f"{path} is damaged ({type(err).__name__}: {err}); re-run sam-extract-features") from err
    level = feature_level % count if feature_level is not None and -count <= feature_level < count else None
    wrong = []
    if manifest["teacher_model_type"] != teacher_model_type:
        wrong.append(f"teacher_model_type {manifest['teacher_model_type']!r} (run: {teacher_model_type!r})")
    if feature_level is not None and manifest["feature_level"] != level:
        wrong.append(f"feature_level {manifest['feature_level']} (run: distill_feature_level={feature_level})")
    if manifest["img_size"] != img_size:
        wrong.append(f"img_size {manifest['img_size']} (run: {img_size})")
    if teacher_checkpoint is not _UNSET:
        mismatch = _teacher_weights_mismatch(manifest, teacher_checkpoint)
        if mismatch:
            wrong.append(mismatch)
    if wrong:
        raise ValueError(f"teacher features in {folder} were extracted with other settings: {'; '.join(wrong)}. "
                         "Re-run sam-extract-features with this config.")
    return manifest


def load_teacher_features(folder: Path, manifest: dict, image_path: str, digest: str, suffix: str = ".pt") -> torch.Tensor:
    """The (C, h, w) float32 teacher features of one image; refuses missing or stale (image edited) files.

    suffix: ".pt" for the block features, ".embedding.pt" for the final image embeddings.
    """
    stem = Path(image_path).stem
    recorded = manifest["images"].get(stem)
    if recorded is None:
        raise FileNotFoundError(f"no teacher features for image {image_path} in {folder}; re-run sam-extract-features")
    if recorded != digest:
        raise ValueError(f"teacher features for {image_path} were made from different image content; "
                         "re-run sam-extract-features")
    return torch.load(Path(folder) / f"{stem}{suffix}", map_location="cpu", weights_only=True).float()
