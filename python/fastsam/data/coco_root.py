"""A dataset root laid out as a Roboflow-style COCO export: ``root/{train,val}/_annotations.coco.json`` with
each split's images beside its JSON (Roboflow names the validation split ``valid``; both are accepted)."""
from __future__ import annotations

from pathlib import Path

ANNOTATION_NAME = "_annotations.coco.json"
# Folder names tried per split, in order.
SPLIT_FOLDERS = {"train": ("train",), "val": ("val", "valid")}


def split_folder(root: str | Path, split: str) -> Path:
    """The split's folder under `root`: the first of SPLIT_FOLDERS[split] that exists (else the first name)."""
    names = SPLIT_FOLDERS[split]
    for name in names:
        if (Path(root) / name).is_dir():
            return Path(root) / name
    return Path(root) / names[0]


def coco_root_paths(root: str | Path) -> dict[str, str]:
    """Config keys train_img_dir, train_coco, val_img_dir, val_coco derived from `root` (no file is checked)."""
    paths = {}
    for split in SPLIT_FOLDERS:
        folder = split_folder(root, split)
        paths[f"{split}_img_dir"] = str(folder)
        paths[f"{split}_coco"] = str(folder / ANNOTATION_NAME)
    return paths


def check_coco_root(root: str | Path) -> None:
    """FileNotFoundError naming every missing folder or annotation file of the layout, at once."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"data_root {root} is not a folder; expected {root}/train/{ANNOTATION_NAME} and "
                                f"{root}/val/{ANNOTATION_NAME} with the images beside each")
    missing = []
    for split, names in SPLIT_FOLDERS.items():
        folder = split_folder(root, split)
        if not folder.is_dir():
            missing.append(f"folder {' or '.join(str(root / n) for n in names)}")
        elif not (folder / ANNOTATION_NAME).is_file():
            missing.append(f"{folder / ANNOTATION_NAME}")
    if missing:
        raise FileNotFoundError(f"data_root {root} lacks " + "; ".join(missing) + f" (expected layout: "
                                f"{{train,val}}/{ANNOTATION_NAME} with the images beside it, as a COCO export has it)")
