"""Shared test fixtures.

The golden material lives in ../shared (outside the repository). Every fixture that
needs it skips cleanly when it is absent; tests that do not compare with the official
outputs use the standalone model instead (tests/standalone_model.py), which the test run
exports itself. Expensive things (exports, the fixture model, image embeddings) are
session-scoped so the suite runs each export and the encoder once per image.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import standalone_model

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = Path(os.environ.get("FASTSAM_SHARED_DIR", REPO_ROOT.parent / "shared"))
OFFICIAL_DIR = SHARED_DIR / "fixtures" / "official_vit_t"
# Exports written by .ci/test before pytest runs, reused instead of exporting again.
STANDALONE_ENV = "FASTSAM_RT_STANDALONE_DIR"
FIXTURE_EXPORT_ENV = "FASTSAM_RT_FIXTURE_MODEL_DIR"

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


@pytest.fixture(scope="session")
def standalone_dir(tmp_path_factory) -> Path:
    """The standalone model's export: $FASTSAM_RT_STANDALONE_DIR when set (.ci/test wrote it), else exported here."""
    if os.environ.get(STANDALONE_ENV):
        path = Path(os.environ[STANDALONE_ENV])
        if not standalone_model.is_exported(path):
            pytest.fail(f"${STANDALONE_ENV}={path} holds no finished export; "
                        f"run `python tests/standalone_model.py {path}` or unset it")
        return path
    return standalone_model.export(tmp_path_factory.mktemp("standalone_model"), log=lambda line: None)


@pytest.fixture(scope="session")
def standalone_sam(standalone_dir: Path):
    """The PyTorch model with exactly the weights of ``standalone_dir``, in eval mode."""
    return standalone_model.load_model(standalone_dir)


@pytest.fixture(scope="session")
def fixture_export_dir(tmp_path_factory, fixture_checkpoint: Path) -> Path:
    """The golden fixture exported by ``sam-export`` (or $FASTSAM_RT_FIXTURE_MODEL_DIR, exported by .ci/test)."""
    if os.environ.get(FIXTURE_EXPORT_ENV):
        return Path(os.environ[FIXTURE_EXPORT_ENV])
    from click.testing import CliRunner

    from fastsam.cli.export import main as export_main

    out = tmp_path_factory.mktemp("fixture_export")
    result = CliRunner().invoke(export_main, ["--checkpoint", str(fixture_checkpoint), "--output-dir", str(out)],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture()
def hidden_torch_path(tmp_path) -> Path:
    """A folder to put first on a child process's PYTHONPATH so that `import torch` fails there (its
    sitecustomize sets sys.modules['torch'] = None): proves a code path runs without PyTorch."""
    folder = tmp_path / "hide_torch"
    folder.mkdir()
    (folder / "sitecustomize.py").write_text("import sys\nsys.modules['torch'] = None  # any import of torch fails\n")
    return folder


@pytest.fixture()
def standalone_checkpoint(standalone_dir, tmp_path) -> Path:
    """The standalone weights with the image size the trainer would store, so sam-segment builds them at 256 px."""
    import torch

    state = torch.load(standalone_dir / standalone_model.WEIGHTS_FILE, map_location="cpu", weights_only=True)
    path = tmp_path / "standalone.pth"
    torch.save({"model": state, "model_type": "vit_t",
                "config": {"model_type": "vit_t", "img_size": standalone_model.IMAGE_SIZE}}, path)
    return path

