"""The bad-input matrix (docs/bad_inputs.md): every entry point given bad input ends in one clear message that
names the input and says what to do; CLIs exit non-zero without a traceback, APIs raise a typed exception
(ValueError/TypeError for bad arguments, FileNotFoundError for missing files, RuntimeError for a damaged
model or a call out of order), and nothing is written that could pass for a good result.

Sections: sam-export, sam-segment (one image, runtime backend), fastsam_rt.Predictor / AutomaticMaskGenerator.
The trainer's entry points (sam-train, sam-extract-features) have their own section below, kept by the
trainer's tests. The C++ API's cases are in cpp/tests/test_bad_inputs.cpp.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

fastsam_rt = pytest.importorskip("fastsam_rt")

# A path that cannot be created even by root (procfs refuses new entries): the unwritable-output case.
UNWRITABLE = Path("/proc/fastsam_bad_inputs/out")


def _cli_error(result, *fragments: str) -> str:
    """The one-line error of a failed click command; fails the test on success, a traceback or a missing word."""
    assert result.exit_code != 0, result.output
    assert isinstance(result.exception, SystemExit), f"uncaught {result.exception!r}"
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.output
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]


@pytest.fixture(scope="module")
def image_files(tmp_path_factory) -> dict[str, Path]:
    """Image files of every awkward kind, 60x40 unless the case is about the size."""
    root = tmp_path_factory.mktemp("images")
    gen = np.random.default_rng(0)
    rgb = gen.integers(0, 256, size=(40, 60, 3), dtype=np.uint8)
    files = {name: root / name for name in ("ok.png", "grey.png", "grey16.png", "cmyk.jpg", "truncated.png",
                                            "corrupt.png", "empty.png", "huge.png", "float.tif", "int32.tif")}
    Image.fromarray(rgb).save(files["ok.png"])
    Image.fromarray(rgb[..., 0]).save(files["grey.png"])
    Image.fromarray(gen.integers(0, 65536, size=(40, 60), dtype=np.uint16)).save(files["grey16.png"])
    Image.fromarray(rgb).convert("CMYK").save(files["cmyk.jpg"])
    data = files["ok.png"].read_bytes()
    files["truncated.png"].write_bytes(data[: len(data) // 2])
    files["corrupt.png"].write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(gen.integers(0, 256, 200, dtype=np.uint8)))
    files["empty.png"].write_bytes(b"")
    Image.fromarray(gen.random((40, 60), dtype=np.float32)).save(files["float.tif"])
    Image.fromarray(np.full((40, 60), 100_000, dtype=np.int32)).save(files["int32.tif"])
    Image.new("1", (20000, 20000)).save(files["huge.png"])  # 4e8 pixels in 49 kB: a decompression bomb
    return files


# ---- sam-export ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory, standalone_dir) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("checkpoints")
    good = standalone_dir / "standalone_vit_t.pth"
    files = {"vit_t": good, "truncated": root / "truncated.pth", "garbage": root / "garbage.pth"}
    files["truncated"].write_bytes(good.read_bytes()[:100_000])
    files["garbage"].write_bytes(b"this is not a checkpoint\n")
    return files


def _export(args, out: Path):
    from fastsam.cli.export import main

    return CliRunner().invoke(main, [*map(str, args), "--output-dir", str(out)])


@pytest.mark.parametrize("case, fragments", [
    ("missing", ["missing.pth not found"]),
    ("truncated", ["could not read checkpoint", "truncated.pth", "torch.save"]),
    ("garbage", ["could not read checkpoint", "garbage.pth"]),
])
def test_export_refuses_unreadable_checkpoints(checkpoints, tmp_path, case, fragments):
    path = checkpoints.get(case, tmp_path / "missing.pth")
    _cli_error(_export(["--checkpoint", path], tmp_path / "out"), *fragments)
    assert not (tmp_path / "out").exists()


def test_export_refuses_a_checkpoint_of_another_model_type(checkpoints, tmp_path):
    result = _export(["--checkpoint", checkpoints["vit_t"], "--model-type", "vit_b"], tmp_path / "out")
    _cli_error(result, "does not match model type 'vit_b'", "it looks like a 'vit_t' checkpoint")
    assert not (tmp_path / "out").exists()


def test_export_refuses_an_unwritable_output_dir(checkpoints):
    _cli_error(_export(["--checkpoint", checkpoints["vit_t"]], UNWRITABLE), str(UNWRITABLE), "not writable")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_export_refuses_a_read_only_output_dir(checkpoints, tmp_path):
    tmp_path.chmod(0o555)
    try:
        _cli_error(_export(["--checkpoint", checkpoints["vit_t"]], tmp_path / "out"), "not writable")
    finally:
        tmp_path.chmod(0o755)


# ---- sam-segment (one image; the runtime backend, so no encoder runs in torch) ---------------------------

def _segment(image, out: Path, model_dir: Path, *prompt: str):
    from fastsam.cli.segment import main

    return CliRunner().invoke(main, [str(image), "--backend", "runtime", "--model-dir", str(model_dir),
                                     "--out", str(out), *prompt])


@pytest.mark.parametrize("name, fragments", [
    ("missing.png", ["image file not found", "missing.png"]),
    ("truncated.png", ["could not read image", "truncated.png", "truncated"]),
    ("corrupt.png", ["could not read image", "corrupt.png"]),
    ("empty.png", ["could not read image", "empty.png"]),
    ("huge.png", ["huge.png is too large", "downscale it"]),
    ("float.tif", ["float.tif is a floating-point image", "save it as 8- or 16-bit"]),
    ("int32.tif", ["int32.tif is 32-bit", "outside 0..65535"]),
])
def test_segment_refuses_unreadable_images(image_files, standalone_dir, tmp_path, name, fragments):
    image = image_files.get(name, tmp_path / name)
    _cli_error(_segment(image, tmp_path / "out", standalone_dir), *fragments)
    assert not list((tmp_path / "out").glob("*")), "a failed run left files behind"


@pytest.mark.parametrize("name", ["grey.png", "grey16.png", "cmyk.jpg"])
def test_segment_accepts_grey_16bit_and_cmyk_images(image_files, standalone_dir, tmp_path, name):
    result = _segment(image_files[name], tmp_path, standalone_dir, "--box", "5,5,50,30")
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "masks.json").read_text())


def test_16bit_images_keep_their_top_8_bits(image_files):
    from fastsam.image_io import read_rgb

    grey = np.asarray(Image.open(image_files["grey16.png"]))
    rgb = read_rgb(image_files["grey16.png"])
    # Not PIL's convert("RGB"), which clips every value above 255 to white.
    assert rgb.dtype == np.uint8 and np.array_equal(rgb[..., 1], (grey >> 8).astype(np.uint8))


@pytest.mark.parametrize("prompt, fragments", [
    (["--points", "nan,10"], ["--points", "nan,10", "outside the 60x40 image"]),
    (["--points", "inf,10"], ["--points", "inf,10"]),
    (["--points", "70,10"], ["--points", "outside the 60x40 image"]),
    (["--box", "30,30,5,5"], ["--box", "x1 >= x0", "30,30,5,5"]),
    (["--box", "-5,0,10,10"], ["box", "outside the 60x40 image"]),
    (["--box", "0,0,10"], ["--box"]),
])
def test_segment_refuses_bad_prompts(image_files, standalone_dir, tmp_path, prompt, fragments):
    _cli_error(_segment(image_files["ok.png"], tmp_path / "out", standalone_dir, *prompt), *fragments)
    assert not (tmp_path / "out" / "masks.json").exists()


def test_segment_refuses_a_model_dir_without_export(image_files, tmp_path):
    _cli_error(_segment(image_files["ok.png"], tmp_path / "out", tmp_path), "no manifest.json", "sam-export")


def test_segment_refuses_an_unwritable_output_dir(image_files, standalone_dir):
    _cli_error(_segment(image_files["ok.png"], UNWRITABLE, standalone_dir), str(UNWRITABLE), "writable --out")


# ---- fastsam_rt.Predictor / AutomaticMaskGenerator --------------------------------------------------------

@pytest.fixture(scope="module")
def predictor(standalone_dir):
    p = fastsam_rt.Predictor(str(standalone_dir), intra_op_threads=1)
    p.set_image(np.full((40, 60, 3), 90, dtype=np.uint8))
    return p


def _redirected(model_dir: Path, out: Path, **files: Path) -> Path:
    """A model dir whose manifest lists the export's files by absolute path, some of them replaced."""
    manifest = json.loads((model_dir / "manifest.json").read_text())
    for key, entry in manifest["models"].items():
        entry["file"] = str(files.get(key, model_dir / entry["file"]))
    out.mkdir(parents=True, exist_ok=True)
    (out / "manifest.json").write_text(json.dumps(manifest))
    return out


def test_model_dir_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"model directory not found: .*nowhere \(write it with sam-export\)"):
        fastsam_rt.Predictor(str(tmp_path / "nowhere"))


def test_model_dir_with_a_missing_file(standalone_dir, tmp_path):
    model_dir = _redirected(standalone_dir, tmp_path, encoder=tmp_path / "gone.onnx")
    with pytest.raises(FileNotFoundError, match="gone.onnx"):
        fastsam_rt.Predictor(str(model_dir))


def test_model_dir_with_an_altered_file(standalone_dir, tmp_path):
    damaged = tmp_path / "decoder_batched.onnx"
    data = bytearray((standalone_dir / "decoder_batched.onnx").read_bytes())
    data[len(data) // 2] ^= 0x01
    damaged.write_bytes(bytes(data))
    model_dir = _redirected(standalone_dir, tmp_path / "m", decoder_batched=damaged)
    with pytest.raises(RuntimeError, match=r"decoder_batched.onnx does not match manifest.json.*re-run sam-export"):
        fastsam_rt.Predictor(str(model_dir))


def test_model_dir_with_a_corrupt_manifest(standalone_dir, tmp_path):
    text = (standalone_dir / "manifest.json").read_text()
    (tmp_path / "manifest.json").write_text(text[: len(text) // 2])
    with pytest.raises(RuntimeError, match=r"manifest.json: JSON parse error at byte"):
        fastsam_rt.Predictor(str(tmp_path))


def test_model_dir_without_the_requested_precision(standalone_dir):
    with pytest.raises(RuntimeError, match=r"has no 'int8' variant \(variants: fp32\); re-export with sam-export --quantize"):
        fastsam_rt.Predictor(str(standalone_dir), precision="int8")


@pytest.mark.parametrize("image, error, message", [
    (np.zeros((40, 60, 3), dtype=np.float32), TypeError, "image must have dtype uint8, got float32"),
    (np.zeros((40, 60, 3), dtype=np.uint16), TypeError, "image must have dtype uint8, got uint16"),
    (np.zeros((40, 60), dtype=np.uint8), ValueError, r"image must have shape \(H, W, 3\).*\(40, 60\)"),
    (np.zeros((40, 60, 4), dtype=np.uint8), ValueError, r"image must have shape \(H, W, 3\)"),
    (np.zeros((0, 60, 3), dtype=np.uint8), ValueError, "H, W > 0"),
    ([[[0, 0, 0]]], TypeError, "image must be a numpy.ndarray"),
    (np.zeros((1, 5000, 3), dtype=np.uint8), ValueError, "1x5000 image is too elongated for image_size 256"),
], ids=["float32", "uint16", "grey_2d", "rgba", "zero_size", "list", "elongated"])
def test_set_image_refuses_bad_arrays(standalone_dir, image, error, message):
    p = fastsam_rt.Predictor(str(standalone_dir), intra_op_threads=1, verify_model_files=False)
    with pytest.raises(error, match=message):
        p.set_image(image)
    assert not p.is_image_set


def test_set_image_accepts_any_strides(predictor):
    """Views (every other pixel, flipped, Fortran order) give what their contiguous copy gives."""
    gen = np.random.default_rng(1)
    base = gen.integers(0, 256, size=(80, 120, 3), dtype=np.uint8)
    for view in (base[::2, ::2], base[::-1], np.asfortranarray(base)):
        predictor.set_image(view)
        strided = predictor.get_image_embedding()
        predictor.set_image(np.ascontiguousarray(view))
        assert np.array_equal(strided, predictor.get_image_embedding())
    predictor.set_image(np.full((40, 60, 3), 90, dtype=np.uint8))


NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(point_coords=[[NAN, 10]], point_labels=[1]), ValueError, r"point_coords\[0\] \(nan, 10\) must hold finite"),
    (dict(point_coords=[[10, -INF]], point_labels=[1]), ValueError, r"point_coords\[0\] \(10, -inf\) must hold finite"),
    (dict(point_coords=[[61, 10]], point_labels=[1]), ValueError, "is outside the 60x40 image"),
    (dict(box=[0, 0, NAN, 10]), ValueError, r"box \(0, 0, nan, 10\) must hold finite"),
    (dict(box=[-5, 0, 10, 10]), ValueError, "is outside the 60x40 image"),
    (dict(box=[30, 30, 10, 10]), ValueError, r"must be XYXY with x1 >= x0 and y1 >= y0"),
    (dict(box=[0, 0, 10, 10, 5]), ValueError, r"box must have shape \(4,\) XYXY"),
    (dict(point_coords=[[1, 2, 3]], point_labels=[1]), ValueError, r"point_coords must have shape \(N, 2\)"),
    (dict(point_coords=[["a", "b"]], point_labels=[1]), TypeError, "point_coords must be array-like of numbers"),
    (dict(point_coords=[[5, 5]], point_labels=[0.5]), ValueError, "point_labels must be 0 or 1"),
    (dict(point_coords=[[5, 5]], point_labels=[2]), ValueError, "point_labels must be 0 .* or 1"),
    (dict(point_coords=[[5, 5]], point_labels=[1, 1]), ValueError, "point_labels must have shape"),
    (dict(point_coords=[[5, 5]]), ValueError, "point_labels must be supplied together with point_coords"),
    (dict(box=[0, 0, 10, 10], mask_input=np.zeros((1, 256, 256), np.float32)), ValueError,
     r"mask_input must have shape \(1, 64, 64\)"),
], ids=["nan_point", "inf_point", "point_outside", "nan_box", "negative_box", "inverted_box", "box_shape",
        "coords_shape", "coords_strings", "label_half", "label_two", "labels_count", "labels_missing",
        "mask_input_shape"])
def test_predict_refuses_bad_prompts(predictor, kwargs, error, message):
    with pytest.raises(error, match=message):
        predictor.predict(**kwargs)
    masks, _, _ = predictor.predict(point_coords=[[30, 20]], point_labels=[1])  # still usable
    assert masks.shape == (3, 40, 60)


def test_predict_boxes_refuses_bad_boxes(predictor):
    with pytest.raises(ValueError, match=r"boxes\[1\] \(0, 0, inf, 10\) must hold finite"):
        predictor.predict_boxes(np.array([[0, 0, 10, 10], [0, 0, INF, 10]], dtype=np.float32))
    with pytest.raises(ValueError, match="boxes must hold at least one box"):
        predictor.predict_boxes(np.zeros((0, 4), dtype=np.float32))


def test_predict_before_set_image(standalone_dir):
    p = fastsam_rt.Predictor(str(standalone_dir), verify_model_files=False)
    with pytest.raises(RuntimeError, match=r"set_image\(\) before mask prediction"):
        p.predict(point_coords=[[1, 1]], point_labels=[1])


@pytest.mark.parametrize("kwargs, message", [
    (dict(pred_iou_thresh=NAN), "pred_iou_thresh must be a finite number"),
    (dict(box_nms_thresh=1.5), r"box_nms_thresh must be in \[0, 1\]"),
    (dict(points_per_batch=0), "points_per_batch must be > 0"),
    (dict(points_per_side=None, point_grids=[np.array([[0.5, 1.5]])]), r"point_grids must hold points in \[0, 1\]"),
    (dict(output_mode="png"), "output_mode"),
])
def test_generator_refuses_bad_options(standalone_dir, kwargs, message):
    with pytest.raises(ValueError, match=message):
        fastsam_rt.AutomaticMaskGenerator(str(standalone_dir), **kwargs)


def test_generate_refuses_bad_arrays(standalone_dir):
    generator = fastsam_rt.AutomaticMaskGenerator(str(standalone_dir), points_per_side=2, verify_model_files=False)
    with pytest.raises(TypeError, match="image must have dtype uint8"):
        generator.generate(np.zeros((8, 8, 3), dtype=np.float64))
    with pytest.raises(ValueError, match="H, W > 0"):
        generator.generate(np.zeros((8, 0, 3), dtype=np.uint8))


# ---- sam-train, sam-extract-features: kept with the trainer's tests (tests/test_train_*) ------------------
