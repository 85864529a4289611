"""Shared test fixtures.

The golden material lives in ../shared (outside the repository). Every fixture that
needs it skips cleanly when it is absent. Expensive things (the fixture model, image
embeddings) are session-scoped so the suite runs the encoder once per image.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = Path(os.environ.get("FASTSAM_SHARED_DIR", REPO_ROOT.parent / "shared"))
OFFICIAL_DIR = SHARED_DIR / "fixtures" / "official_vit_t"
COCO128_DIR = SHARED_DIR / "data" / "coco128seg"

# Index order used by predictor.npz keys (img0, img1, img2); see MANIFEST.md.
FIXTURE_IMAGES = ("truck.jpg", "groceries.jpg", "picture1.jpg")

# Every single-image prompt recorded in predictor.npz for each image (see the fixture MANIFEST).
RECORDED_PROMPTS = (
    "p0_point_fg",
    "p1_point_fg_fractional",
    "p2_points_fg_bg",
    "p3_box",
    "p4_box_point_bg",
    "p5_point_with_mask_input",
)


@pytest.fixture(scope="session", autouse=True)
def _single_process_torch():
    """Keep torch's thread count fixed so timings and numerics are stable across runs."""
    import torch

    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(scope="session")
def official_dir() -> Path:
    if not (OFFICIAL_DIR / "vit_t_fixture.pth").is_file():
        pytest.skip(f"golden fixtures not found at {OFFICIAL_DIR}")
    return OFFICIAL_DIR


@pytest.fixture(scope="session")
def coco128_dir() -> Path:
    if not COCO128_DIR.is_dir():
        pytest.skip(f"coco128seg data not found at {COCO128_DIR}")
    return COCO128_DIR


@pytest.fixture(scope="session")
def fixture_checkpoint(official_dir: Path) -> Path:
    return official_dir / "vit_t_fixture.pth"


@pytest.fixture(scope="session")
def official_meta(official_dir: Path) -> dict:
    return json.loads((official_dir / "meta.json").read_text())


@pytest.fixture(scope="session")
def predictor_golden(official_dir: Path):
    """predictor.npz as a dict of arrays (loaded once)."""
    with np.load(official_dir / "predictor.npz") as data:
        return {k: data[k] for k in data.files}


@pytest.fixture(scope="session")
def fixture_images(official_dir: Path) -> list[np.ndarray]:
    """The three golden photos as HxWx3 uint8 RGB (PIL decode equals cv2's here)."""
    from PIL import Image

    return [np.asarray(Image.open(official_dir / name).convert("RGB")) for name in FIXTURE_IMAGES]


@pytest.fixture(scope="session")
def fixture_model(fixture_checkpoint: Path):
    """The official-layout vit_t fixture weights, loaded strictly, in eval mode."""
    from fastsam import build_sam

    model = build_sam("vit_t", checkpoint=fixture_checkpoint)
    model.eval()
    return model


@pytest.fixture(scope="session")
def fixture_predictors(fixture_model, fixture_images):
    """One SamPredictor per golden image with set_image already run (the encoder runs once per image)."""
    from fastsam import SamPredictor

    predictors = []
    for image in fixture_images:
        predictor = SamPredictor(fixture_model)
        predictor.set_image(image)
        predictors.append(predictor)
    return predictors
