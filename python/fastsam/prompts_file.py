"""Per-image prompts for ``sam-segment`` from a JSON file, checked with messages that name the entry.

Format: ``{"IMAGE_FILE_NAME": {"boxes": [[x0, y0, x1, y1], ...], "points": [[x, y, label], ...]}, ...}``
with XYXY boxes and points in original-image pixels, label 1 foreground / 0 background. Every box is one
prompt (one mask each, decoded as a batch); points alone are one prompt; points with exactly one box join it.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ImagePrompts:
    points: tuple[tuple[float, float, int], ...] = ()
    boxes: tuple[tuple[float, float, float, float], ...] = ()


class PromptsFileError(ValueError):
    """The prompts file is unreadable or an entry is malformed."""


def read_prompts_file(path: str | Path) -> dict[str, ImagePrompts]:
    """Map from image file name to its prompts. Raises PromptsFileError naming the file and the entry."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise PromptsFileError(f"cannot read prompts file {path}: {err}") from err
    if not isinstance(data, dict):
        raise PromptsFileError(f"prompts file {path} must hold an object {{image file name: prompts}}, "
                               f"got {type(data).__name__}")
    return {str(name): _entry(path, str(name), entry) for name, entry in data.items()}


def _entry(path: Path, name: str, entry) -> ImagePrompts:
    where = f"prompts file {path}, entry {name!r}"
    if not isinstance(entry, dict) or set(entry) - {"boxes", "points"}:
        raise PromptsFileError(f"{where}: expected {{\"boxes\": [[x0, y0, x1, y1], ...], "
                               f"\"points\": [[x, y, label], ...]}}, got {json.dumps(entry)[:80]}")
    boxes = tuple(_numbers(where, "box", b, (4,)) for b in entry.get("boxes", []))
    for box in boxes:
        if box[2] < box[0] or box[3] < box[1]:
            raise PromptsFileError(f"{where}: box {list(box)} needs x1 >= x0 and y1 >= y0")
    points = []
    for p in entry.get("points", []):
        values = _numbers(where, "point", p, (2, 3))
        label = int(values[2]) if len(values) == 3 else 1
        if len(values) == 3 and values[2] not in (0, 1):
            raise PromptsFileError(f"{where}: point label must be 1 (foreground) or 0 (background), got {p}")
        points.append((values[0], values[1], label))
    if not boxes and not points:
        raise PromptsFileError(f"{where}: no boxes and no points")
    if points and len(boxes) > 1:
        raise PromptsFileError(f"{where}: points can join one box, not {len(boxes)} boxes")
    return ImagePrompts(points=tuple(points), boxes=boxes)


def _numbers(where: str, what: str, value, lengths: tuple[int, ...]) -> tuple[float, ...]:
    if not isinstance(value, list) or len(value) not in lengths \
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        raise PromptsFileError(f"{where}: each {what} must be a list of {' or '.join(map(str, lengths))} numbers, "
                               f"got {json.dumps(value)}")
    return tuple(float(v) for v in value)
