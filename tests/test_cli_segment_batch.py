"""sam-segment on folders (one COCO results file, a bad image skipped), per-image prompt files, polygon output,
and the runtime backend, which must work where PyTorch cannot be imported."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from fastsam.cli.segment import main
from fastsam.coco_results import segmentation_to_mask
from fastsam.demo_image import make_demo_image
from fastsam.image_io import read_rgb, write_png

REPO_PYTHON = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "python")


@pytest.fixture()
def folder(tmp_path):
    """Two generated scenes and one file that is not an image."""
    images = tmp_path / "images"
    write_png(images / "a.png", make_demo_image(120, 160, seed=1))
    write_png(images / "b.png", make_demo_image(96, 128, seed=2))
    (images / "c_corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n but then nothing")
    return images


def _invoke(*args):
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    assert "Traceback" not in result.output
    return result


def test_folder_with_a_corrupt_image_writes_the_rest_and_reports_it(folder, tmp_path, standalone_dir):
    prompts = tmp_path / "prompts.json"
    prompts.write_text(json.dumps({"a.png": {"boxes": [[10, 10, 80, 70], [60, 40, 150, 110]]},
                                   "b.png": {"points": [[60, 40, 1], [10, 10, 0]]},
                                   "c_corrupt.png": {"boxes": [[0, 0, 10, 10]]}}))
    out = tmp_path / "out"
    result = _invoke(folder, "--model-dir", standalone_dir, "--prompts", prompts, "--out", out)
    assert result.exit_code == 0, result.output
    assert "skipped c_corrupt.png: could not read image" in result.output
    assert "2 image(s), 5 mask(s)" in result.output and "1 skipped" in result.output

    doc = json.loads((out / "results.json").read_text())
    assert [im["file_name"] for im in doc["images"]] == ["a.png", "b.png"]
    assert doc["errors"][0]["file_name"] == "c_corrupt.png" and doc["info"]["backend"] == "runtime"
    by_image = {im["id"]: im for im in doc["images"]}
    boxes_a = [ann for ann in doc["annotations"] if by_image[ann["image_id"]]["file_name"] == "a.png"]
    assert [ann["box"] for ann in boxes_a] == [[10, 10, 80, 70], [60, 40, 150, 110]]  # one mask per box
    assert sorted(p.name for p in (out / "overlays").iterdir()) == ["a.png", "b.png"]

    # Box masks equal fastsam_rt's batched decoder on the same image.
    import fastsam_rt

    predictor = fastsam_rt.Predictor(str(standalone_dir))
    predictor.set_image(read_rgb(folder / "a.png"))
    masks, scores, _ = predictor.predict_boxes(np.array([[10, 10, 80, 70], [60, 40, 150, 110]], np.float32),
                                               multimask_output=False)
    for ann, mask, score in zip(boxes_a, masks, scores):
        assert np.array_equal(segmentation_to_mask(ann["segmentation"], 120, 160), mask[0])
        assert ann["score"] == pytest.approx(float(score[0]), abs=1e-6)

    from pycocotools.coco import COCO

    coco = COCO(str(out / "results.json"))  # the file is a COCO document pycocotools reads
    assert np.array_equal(coco.annToMask(coco.anns[1]).astype(bool), masks[0][0])


def test_torch_backend_decodes_a_batch_of_boxes_as_single_prompts(folder, tmp_path, standalone_checkpoint,
                                                                  standalone_sam):
    from fastsam import SamPredictor

    boxes = [[10, 10, 80, 70], [60, 40, 150, 110], [0, 0, 160, 120]]
    prompts = tmp_path / "prompts.json"
    prompts.write_text(json.dumps({"a.png": {"boxes": boxes}, "b.png": {"points": [[5, 5]]}}))
    out = tmp_path / "out"
    result = _invoke(folder, "--checkpoint", standalone_checkpoint, "--prompts", prompts, "--out", out)
    assert result.exit_code == 0, result.output
    assert "torch backend" in result.output and "2 image(s)" in result.output
    doc = json.loads((out / "results.json").read_text())
    anns = [a for a in doc["annotations"] if a["image_id"] == 1]
    predictor = SamPredictor(standalone_sam)
    predictor.set_image(read_rgb(folder / "a.png"))
    for ann, box in zip(anns, boxes):
        masks, scores, _ = predictor.predict(box=np.array(box), multimask_output=False)
        got = segmentation_to_mask(ann["segmentation"], 120, 160)
        assert (got == masks[0]).mean() > 0.999  # the batch may differ from one prompt in the last float bits
        assert ann["score"] == pytest.approx(float(scores[0]), abs=1e-4)


def test_polygon_output_matches_rle_output(folder, tmp_path, standalone_dir):
    common = [folder / "a.png", "--model-dir", standalone_dir, "--box", "20,15,140,100", "--single-mask"]
    assert _invoke(*common, "--out", tmp_path / "rle").exit_code == 0
    result = _invoke(*common, "--format", "polygons", "--out", tmp_path / "poly")
    assert result.exit_code == 0, result.output
    rle = json.loads((tmp_path / "rle" / "masks.json").read_text())["annotations"][0]
    poly = json.loads((tmp_path / "poly" / "masks.json").read_text())["annotations"][0]
    assert isinstance(poly["segmentation"], list) and all(len(p) >= 6 for p in poly["segmentation"])
    a = segmentation_to_mask(rle["segmentation"], 120, 160)
    b = segmentation_to_mask(poly["segmentation"], 120, 160)
    assert a.sum() > 0 and (a & b).sum() / (a | b).sum() >= 0.95


def test_prompt_file_and_backend_errors_are_one_line(folder, tmp_path, standalone_dir):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"a.png": {"boxes": [[1, 2, 3]]}}))
    result = CliRunner().invoke(main, [str(folder), "--model-dir", str(standalone_dir), "--prompts", str(bad)])
    assert result.exit_code != 0 and "entry 'a.png': each box must be a list of 4 numbers" in result.output
    result = CliRunner().invoke(main, [str(folder), "--model-dir", str(tmp_path)])
    assert result.exit_code != 0 and "is not an exported model directory (no manifest.json)" in result.output
    result = CliRunner().invoke(main, [str(folder), "--backend", "runtime", "--checkpoint", "x.pth"])
    assert result.exit_code != 0 and "not a --checkpoint" in result.output
    empty = tmp_path / "empty"
    empty.mkdir()
    result = CliRunner().invoke(main, [str(empty), "--model-dir", str(standalone_dir)])
    assert result.exit_code != 0 and "no images" in result.output


def test_runtime_backend_runs_without_torch(folder, tmp_path, standalone_dir, hidden_torch_path):
    """`import torch` fails in the child (conftest's hidden_torch_path)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(hidden_torch_path), REPO_PYTHON]), "OMP_NUM_THREADS": "1"}
    check = subprocess.run([sys.executable, "-c", "import torch"], env=env, capture_output=True, text=True)
    assert check.returncode != 0 and "ModuleNotFoundError" in check.stderr  # torch really is hidden
    out = tmp_path / "out"
    cmd = [sys.executable, "-c", "from fastsam.cli.segment import main; main()", str(folder),
           "--backend", "runtime", "--model-dir", str(standalone_dir), "--everything", "--points-per-side", "4",
           "--pred-iou-thresh", "0", "--stability-score-thresh", "0", "--format", "polygons", "--out", str(out)]
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "runtime backend" in run.stdout and "2 image(s)" in run.stdout
    doc = json.loads((out / "results.json").read_text())
    assert len(doc["annotations"]) >= 1 and isinstance(doc["annotations"][0]["segmentation"], list)
