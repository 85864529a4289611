"""A model the test run exports itself, so runtime tests need no ../shared.

A seeded random-weights vit_t at image size 256, exported through the same pipeline as ``sam-export``, with its
torch weights saved beside the ONNX files so a test can build the identical PyTorch model. Used by the
``standalone_dir`` fixture (tests/conftest.py) and by .ci/test (ctest, the example app):

    python tests/standalone_model.py OUT_DIR
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

SEED = 0
IMAGE_SIZE = 256  # small: the encoder runs in well under a second on 2 cores
WEIGHTS_FILE = "standalone_vit_t.pth"


def build_model(checkpoint: Path | None = None):
    """The standalone vit_t in eval mode: seeded random weights, or ``checkpoint`` (its saved weights)."""
    import torch

    from fastsam.build_sam import sam_model_registry

    torch.manual_seed(SEED)
    return sam_model_registry["vit_t"](checkpoint=checkpoint, image_size=IMAGE_SIZE).eval()


def is_exported(out_dir: Path) -> bool:
    """True when ``out_dir`` holds a finished export (the manifest is written last) and its weights."""
    return (out_dir / "manifest.json").is_file() and (out_dir / WEIGHTS_FILE).is_file()


def export(out_dir: Path, log=print) -> Path:
    """Export the standalone model into ``out_dir`` (parity-gated like sam-export); returns ``out_dir``."""
    import torch

    from fastsam.export.pipeline import ExportOptions, run_export

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    sam = build_model()
    # Weights first: the manifest marks a finished export, so it must come last.
    torch.save(sam.state_dict(), out_dir / WEIGHTS_FILE)
    options = ExportOptions(output_dir=out_dir, model_type="vit_t",
                            extra_manifest={"checkpoint": WEIGHTS_FILE, "standalone_seed": SEED})
    run_export(sam, options, log=log)
    return out_dir


def load_model(out_dir: Path):
    """The PyTorch model whose weights ``out_dir`` was exported from."""
    return build_model(Path(out_dir) / WEIGHTS_FILE)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(f"usage: {argv[0]} OUT_DIR", file=sys.stderr)
        return 2
    start = time.perf_counter()
    export(Path(argv[1]), log=lambda line: None)
    print(f"standalone vit_t ({IMAGE_SIZE} px, seed {SEED}) exported to {argv[1]} in "
          f"{time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
