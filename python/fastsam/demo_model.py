"""Where the project's own demo weights are: the committed base model and the latest demo run's outputs.

The base checkpoint (``models/demo/vit_t_shapes.pth``, made by ``python -m fastsam.train.demo_base``) ships
inside the installed package as ``fastsam/assets/vit_t_shapes.pth``; from a source checkout it is read in
place. ``sam-train --demo`` finetunes it and exports the result; that export is then the default model of
the other demo commands.
"""
from __future__ import annotations

from pathlib import Path

BASE_NAME = "vit_t_shapes.pth"
BASE_IMAGE_SIZE = 256
_PACKAGE_DIR = Path(__file__).resolve().parent
_CANDIDATES = (_PACKAGE_DIR / "assets" / BASE_NAME, _PACKAGE_DIR.parents[1] / "models" / "demo" / BASE_NAME)


def base_checkpoint_path() -> Path:
    """The committed base checkpoint (vit_t at 256 px, trained on generated flat-colour shapes).

    Raises:
      FileNotFoundError: naming the places looked at and the command that recreates the file.
    """
    for path in _CANDIDATES:
        if path.is_file():
            return path
    looked = ", ".join(str(p) for p in _CANDIDATES)
    raise FileNotFoundError(f"the demo base checkpoint {BASE_NAME} is missing (looked in {looked}); reinstall "
                            "fastsam with `pip install .` from a full checkout, or recreate it with "
                            "`python -m fastsam.train.demo_base`")


def demo_run_dir(output_dir: str | Path = "runs") -> Path:
    """The run folder `sam-train --demo --output-dir output_dir` writes."""
    return Path(output_dir) / "demo" / "finetune"


def demo_export_dir(output_dir: str | Path = "runs") -> Path:
    """Where `sam-train --demo --output-dir output_dir` exports its best checkpoint (the runtime's demo model)."""
    return demo_run_dir(output_dir) / "export"


def default_demo_checkpoint(output_dir: str | Path = "runs") -> tuple[Path, str]:
    """The model the demo commands use when none is given: the demo run's finetuned checkpoint if
    `sam-train --demo` has run (into `output_dir`), else the committed base model.

    Returns:
      (checkpoint path, a phrase saying which weights these are, for the user).
    """
    finetuned = demo_run_dir(output_dir) / "best_model.pth"
    if finetuned.is_file():
        return finetuned, f"the demo's finetuned model {finetuned}"
    base = base_checkpoint_path()
    return base, f"fastsam's base demo model {base} (run `sam-train --demo` to finetune it)"
