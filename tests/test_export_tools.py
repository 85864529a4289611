"""Export helpers that need no exported model: simplification fall-back, calibration images."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from PIL import Image

from fastsam.export import calibration, simplify


def _tiny_model(path):
    # y = (x + 0) * 1: a simplifier removes both no-op nodes.
    zero = helper.make_tensor("zero", TensorProto.FLOAT, [1], [0.0])
    one = helper.make_tensor("one", TensorProto.FLOAT, [1], [1.0])
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "zero"], ["t"]), helper.make_node("Mul", ["t", "one"], ["y"])],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3])],
        initializer=[zero, one],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(path))
    return path


def test_simplify_falls_back_to_the_original_graph_with_a_reason(tmp_path, monkeypatch):
    path = _tiny_model(tmp_path / "tiny.onnx")
    before = path.read_bytes()

    def broken(model):
        raise RuntimeError("shape inference exploded")

    def missing(model):
        raise ImportError("no module named onnxsim")

    monkeypatch.setattr(simplify, "SIMPLIFIERS", (("onnxslim", broken), ("onnxsim", missing)))
    result = simplify.simplify_onnx_file(path)
    assert result.tool is None
    assert "onnxslim failed: RuntimeError: shape inference exploded" in result.message
    assert "onnxsim not installed" in result.message
    assert path.read_bytes() == before


def test_simplify_rejects_a_result_with_a_changed_interface(tmp_path, monkeypatch):
    path = _tiny_model(tmp_path / "tiny.onnx")

    def renaming(model):
        model = onnx.ModelProto.FromString(model.SerializeToString())
        model.graph.output[0].name = "renamed"
        model.graph.node[-1].output[0] = "renamed"
        return model

    monkeypatch.setattr(simplify, "SIMPLIFIERS", (("renamer", renaming),))
    result = simplify.simplify_onnx_file(path)
    assert result.tool is None and "changed input/output names" in result.message
    assert onnx.load(str(path)).graph.output[0].name == "y"


def test_simplify_with_the_installed_simplifier(tmp_path):
    if not any(_importable(name) for name, _ in simplify.SIMPLIFIERS):
        pytest.skip("neither onnxslim nor onnxsim is installed")
    path = _tiny_model(tmp_path / "tiny.onnx")
    result = simplify.simplify_onnx_file(path)
    assert result.tool is not None and result.nodes_after < result.nodes_before == 2
    assert onnx.load(str(path)).graph.output[0].name == "y"


def _importable(name):
    try:
        __import__(name)
    except ImportError:
        return False
    return True


def test_generated_calibration_images_are_deterministic_and_varied():
    images = calibration.generate_images(6, seed=3, long_side=256)
    again = calibration.generate_images(6, seed=3, long_side=256)
    assert all(np.array_equal(a, b) for a, b in zip(images, again))
    assert all(max(img.shape[:2]) == 256 and img.dtype == np.uint8 and img.shape[2] == 3 for img in images)
    assert len({img.shape[:2] for img in images}) >= 2  # several aspect ratios
    means = [float(img.mean()) for img in images]
    assert max(means) - min(means) > 10  # exposures differ
    assert all(img.std() > 5 for img in images)  # not flat


def test_calibration_dir_listing_and_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        calibration.list_image_files(tmp_path / "missing")
    with pytest.raises(ValueError, match="contains no images"):
        calibration.list_image_files(tmp_path)
    Image.fromarray(calibration.generate_image(1, 128)).save(tmp_path / "b.png")
    Image.fromarray(calibration.generate_image(2, 128)).save(tmp_path / "a.JPG")
    (tmp_path / "readme.txt").write_text("x")
    files = calibration.list_image_files(tmp_path)
    assert [f.name for f in files] == ["a.JPG", "b.png"]
    assert calibration.read_image(files[1]).shape[2] == 3


def test_encoder_input_resizes_longest_side_and_checks_input():
    image = calibration.generate_image(5, long_side=300)
    x = calibration.encoder_input(image, 1024)
    assert x.dtype == np.float32 and x.shape[:2] == (1, 3) and max(x.shape[2:]) == 1024
    assert 0 <= x.min() and x.max() <= 255
    with pytest.raises(ValueError, match="uint8"):
        calibration.encoder_input(image.astype(np.float32))


def test_calibration_sets_hold_out_images_from_a_folder(tmp_path):
    from fastsam.export import pipeline

    for i in range(10):
        Image.fromarray(calibration.generate_image(i, 96)).save(tmp_path / f"img{i:02d}.png")
    options = pipeline.ExportOptions(output_dir=tmp_path / "out", calib_dir=tmp_path, calib_count=3, heldout_count=4)
    calib, held = pipeline.calibration_sets(options, image_size=128)
    # 10 images: at most a fifth (2) held out, the first 3 of the rest calibrate.
    assert [h.name for h in held] == ["img08.png", "img09.png"]
    assert len(calib) == 3
    x = calib[0]()
    assert x.shape[:2] == (1, 3) and max(x.shape[2:]) == 128
    assert all(h.boxes.shape == (8, 4) for h in held)
    generated_calib, generated_held = pipeline.calibration_sets(
        pipeline.ExportOptions(output_dir=tmp_path / "out", calib_count=2, heldout_count=1), image_size=128)
    assert len(generated_calib) == 2 and len(generated_held) == 1
    calib_arrays = [make() for make in generated_calib]
    held_array = generated_held[0].encoder_input
    assert not any(a.shape == held_array.shape and np.array_equal(a, held_array) for a in calib_arrays)


def test_tensorrt_profiles_cover_the_io_spec_inputs():
    from fastsam.export import io_spec, tensorrt_engine

    for profiles, spec in ((tensorrt_engine.encoder_profiles(), io_spec.encoder_spec()),
                           (tensorrt_engine.decoder_profiles(), io_spec.decoder_batched_spec())):
        dynamic = {t.name: t for t in spec.inputs if any(isinstance(d, str) for d in t.shape)}
        assert {p.name for p in profiles} == set(dynamic)
        for profile in profiles:
            fixed = dynamic[profile.name].shape
            for lo, opt, hi, dim in zip(profile.min, profile.opt, profile.max, fixed):
                assert 1 <= lo <= opt <= hi
                if isinstance(dim, int):
                    assert lo == opt == hi == dim  # static dims cannot vary in a profile
    # orig_im_size never reaches an engine: decoder.engine is built from the batched graph.
    assert "orig_im_size" not in io_spec.decoder_batched_spec().input_names


def test_tensorrt_build_rejects_bad_arguments_before_needing_tensorrt(tmp_path):
    from fastsam.export import tensorrt_engine

    with pytest.raises(ValueError, match="precision"):
        tensorrt_engine.build_engine(tmp_path / "a.onnx", tmp_path / "a.engine", [], precision="int4")
    with pytest.raises(ValueError, match="calibration"):
        tensorrt_engine.build_engine(tmp_path / "a.onnx", tmp_path / "a.engine", [], precision="int8")
