"""sam-segment: end-to-end runs on generated images and one-line errors for bad input."""
from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from pycocotools import mask as mask_utils

from fastsam.cli.segment import main
from fastsam.image_io import read_rgb, write_png


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


@pytest.fixture()
def small_image(tmp_path):
    from fastsam.demo_image import make_demo_image

    return write_png(tmp_path / "scene.png", make_demo_image(120, 160, seed=3))


def _invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_point_prompt_writes_overlay_and_rle_matching_predictor(small_image, tmp_path, standalone_checkpoint,
                                                                standalone_sam):
    from fastsam import SamPredictor

    out = tmp_path / "out"
    result = _invoke(small_image, "--checkpoint", standalone_checkpoint, "--points", "40,30", "--points", "120,90,0",
                     "--out", out)
    assert result.exit_code == 0, result.output
    assert "random weights" not in result.output.lower()
    overlay = read_rgb(out / "overlay.png")
    assert overlay.shape[1:] == (160, 3) and overlay.shape[0] > 120  # the image plus title and legend strips

    data = json.loads((out / "masks.json").read_text())
    assert data["image_size"] == [120, 160]
    assert len(data["annotations"]) == 3  # multimask candidates, best first

    predictor = SamPredictor(standalone_sam)
    predictor.set_image(read_rgb(small_image))
    masks, scores, _ = predictor.predict(
        point_coords=np.array([[40, 30], [120, 90]], dtype=np.float32), point_labels=np.array([1, 0])
    )
    best = int(np.argmax(scores))
    ann = data["annotations"][0]
    decoded = mask_utils.decode(ann["segmentation"]).astype(bool)
    assert np.array_equal(decoded, masks[best])
    assert ann["area"] == int(masks[best].sum())
    assert ann["predicted_iou"] == pytest.approx(float(scores[best]), abs=1e-6)


def test_demo_everything_uses_the_demo_model_and_writes_json(tmp_path):
    out = tmp_path / "demo"
    result = CliRunner().invoke(
        main,
        ["--demo", "--everything", "--points-per-side", "4", "--pred-iou-thresh", "0", "--stability-score-thresh", "0", "--out", str(out)],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert "model: fastsam's base demo model" in result.output and "RANDOM" not in result.output
    assert (out / "demo_input.png").is_file() and (out / "overlay.png").is_file()
    data = json.loads((out / "masks.json").read_text())
    assert data["mode"] == "everything"
    assert len(data["annotations"]) >= 1
    for ann in data["annotations"]:
        mask = mask_utils.decode(ann["segmentation"])
        assert mask.shape == (480, 640)
        assert int(mask.sum()) == ann["area"]
        assert 0.0 <= ann["stability_score"] <= 1.0


def test_demo_prefers_the_finetuned_demo_run_and_builds_it_at_its_trained_size(tmp_path, monkeypatch):
    import shutil

    import fastsam.export.settings as settings
    from fastsam.demo_model import base_checkpoint_path, demo_run_dir

    finetuned = demo_run_dir("runs") / "best_model.pth"  # relative to the test's working directory (tmp)
    finetuned.parent.mkdir(parents=True)
    shutil.copy(base_checkpoint_path(), finetuned)
    built = []
    build_model = settings.build_model
    monkeypatch.setattr(settings, "build_model", lambda *a: built.append(build_model(*a)) or built[-1])
    result = _invoke("--demo", "--box", "100,100,300,300", "--out", tmp_path / "o")
    assert result.exit_code == 0, result.output
    assert f"model: the demo's finetuned model {finetuned}" in result.output
    assert built[0][1].image_size == 256 and built[0][0].image_encoder.img_size == 256


@pytest.mark.parametrize(
    "args, message",
    [
        (["--points", "1,2,3"], "point label must be 1"),
        (["--points", "a,b"], "must be numbers"),
        (["--points", "5"], "expected 'x,y'"),
        (["--box", "50,10,20,40"], "x1 >= x0"),
        (["--box", "1,2,3"], "four numbers"),
        (["--everything", "--box", "1,2,3,4"], "cannot be combined"),
        (["--checkpoint", "missing.pth"], "checkpoint"),
        (["--points", "40,30", "--points", "161,10"],
         "point 161,10 is outside the 160x120 image: x must be in [0, 160] and y in [0, 120]"),
        (["--points", "-2,10,0"], "point -2,10 is outside the 160x120 image"),
        (["--box", "0,0,100,121"], "box 0,0,100,121 is outside the 160x120 image"),
    ],
)
def test_bad_arguments_give_one_line_errors(small_image, args, message):
    result = CliRunner().invoke(main, [str(small_image), *args])
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output


def test_missing_and_unreadable_images(tmp_path):
    result = CliRunner().invoke(main, [str(tmp_path / "nope.png")])
    assert result.exit_code != 0 and "image file not found" in result.output
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image at all")
    result = CliRunner().invoke(main, [str(bad)])
    assert result.exit_code != 0 and "could not read image" in result.output
    result = CliRunner().invoke(main, [])
    assert result.exit_code != 0 and "missing IMAGE" in result.output
