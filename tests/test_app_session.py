"""sam-app's logic without a browser: clicks to prompts, one encoder run per image (bounded cache), overlays,
segment everything, downloads, and one-line errors; sam-app's start-up errors."""
from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from fastsam.app.predictor_cache import PredictorCache
from fastsam.app.session import CLICK_MODES, AppSession, Clicks
from fastsam.backends import RuntimeBackend
from fastsam.coco_results import segmentation_to_mask
from fastsam.demo_image import make_demo_image
from fastsam.segment_image import EverythingSettings

FG, BG, BOX = CLICK_MODES


@pytest.fixture(scope="module")
def session(standalone_dir, tmp_path_factory):
    return AppSession(RuntimeBackend(standalone_dir, threads=1), cache_images=2,
                      out_dir=tmp_path_factory.mktemp("app"))


def test_clicks_build_points_and_a_box_from_two_corners():
    clicks = Clicks().add(10, 20, FG).add(30, 40, BG)
    assert clicks.points == ((10, 20), (30, 40)) and clicks.labels == (1, 0) and clicks.ready
    half = Clicks().add(50, 60, BOX)
    assert half.corner == (50, 60) and not half.ready
    assert half.add(5, 70, BOX).box == (5, 60, 50, 70)
    with pytest.raises(ValueError, match="click mode must be one of"):
        Clicks().add(1, 1, "lasso")


def test_each_image_is_encoded_once_and_the_cache_is_bounded():
    made = []

    class Fake:
        def set_image(self, image):
            self.image = image

    cache = PredictorCache(lambda: made.append(Fake()) or made[-1], capacity=2)
    a, b, c = (np.full((4, 4, 3), v, np.uint8) for v in (1, 2, 3))
    assert cache.get(a) is cache.get(a) and cache.encodes == 1
    cache.get(b), cache.get(c)  # a is evicted, its predictor reused for c
    assert len(made) == 2 and cache.encodes == 3 and a not in cache and c in cache
    with pytest.raises(ValueError, match="capacity must be >= 1"):
        PredictorCache(Fake, capacity=0)


def test_predict_matches_the_runtime_and_reuses_the_embedding(session, standalone_dir):
    import fastsam_rt

    image = make_demo_image(120, 160, seed=5)
    assert "embedded in" in session.embed(image)
    encodes = session.cache.encodes
    clicks = Clicks().add(80, 60, FG)
    result = session.predict(image, clicks)
    result = session.predict(image, clicks.add(20, 20, BG))
    assert session.cache.encodes == encodes and "cached" in session.embed(image)
    predictor = fastsam_rt.Predictor(str(standalone_dir))
    predictor.set_image(image)
    masks, scores, _ = predictor.predict(point_coords=[[80, 60], [20, 20]], point_labels=[1, 0])
    assert np.array_equal(result.masks[0], masks[int(np.argmax(scores))])
    assert f"predicted IoU {scores.max():.3f}" in result.summary
    assert result.overlay.shape == image.shape  # no title strip: clicks on the overlay map to image pixels

    pending = session.predict(image, Clicks().add(5, 5, BOX))
    assert pending.masks == [] and "opposite corner" in pending.summary


def test_everything_and_downloads_in_both_formats(session):
    image = make_demo_image(96, 128, seed=6)
    result = session.everything(image, EverythingSettings(4, 0.0, 0.0), progress=lambda f, d: None)
    assert len(result.masks) >= 1 and result.summary.startswith(f"{len(result.masks)} masks in")
    for fmt in ("rle", "polygons"):
        png, js = session.downloads(image, result, fmt, "scene")
        label = np.asarray(Image.open(png))
        doc = json.loads(js.read_text())
        assert label.shape == (96, 128) and len(doc["annotations"]) == len(result.masks)
        seg = segmentation_to_mask(doc["annotations"][-1]["segmentation"], 96, 128)
        last = result.masks[-1]
        assert (seg & last).sum() / max(1, (seg | last).sum()) >= (1.0 if fmt == "rle" else 0.9)


@pytest.mark.parametrize("call, message", [
    (lambda s: s.embed(None), "no image yet"),
    (lambda s: s.predict(np.zeros((4, 4), np.uint8), Clicks().add(1, 1, FG)), "expected an HxWx3 uint8 RGB image"),
    (lambda s: s.downloads(make_demo_image(64, 64), None, "rle", "x"), "no masks to download yet"),
    (lambda s: s.predict(make_demo_image(64, 64), Clicks().add(500, 1, FG)), "outside"),
])
def test_errors_are_one_line_messages(session, call, message):
    with pytest.raises((ValueError, RuntimeError), match=message) as info:
        call(session)
    assert "\n" not in str(info.value)


def test_load_another_model_takes_a_folder_or_a_checkpoint(standalone_dir, tmp_path):
    from fastsam.backends import ModelLoadError
    from fastsam.cli.app import _loader

    load = _loader(None, 1)
    assert load(str(standalone_dir)).name == "runtime"
    with pytest.raises(FileNotFoundError, match="does not exist: give an exported model folder or a .pth"):
        load(str(tmp_path / "nope"))
    with pytest.raises(ModelLoadError, match="no manifest.json"):
        load(str(tmp_path))
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelLoadError):
        load(str(bad))


def test_sam_app_start_up_errors_are_one_line(tmp_path):
    from fastsam.cli.app import main

    result = CliRunner().invoke(main, ["--model-dir", str(tmp_path)])
    assert result.exit_code != 0 and "is not an exported model directory (no manifest.json)" in result.output
    result = CliRunner().invoke(main, ["--model-dir", str(tmp_path), "--checkpoint", "x.pth"])
    assert result.exit_code != 0 and "not both" in result.output
    assert "Traceback" not in result.output
