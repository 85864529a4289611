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


def test_node_groups_follow_stage_and_projection_kind():
    from fastsam.export.int8_search import node_group

    assert node_group("encoder", "/image_encoder/layers.2/blocks.4/mlp/fc1/MatMul") == "encoder layers.2 mlp/fc1"
    assert node_group("encoder", "/image_encoder/layers.2/blocks.0/mlp/fc1/MatMul") == "encoder layers.2 mlp/fc1"
    assert node_group("encoder", "/image_encoder/layers.1/blocks.1/attn/qkv/MatMul") == "encoder layers.1 attn/qkv"
    # decoder and decoder_batched name the same projection MatMul or Gemm: one group.
    assert (node_group("decoder", "/transformer/layers.0/cross_attn_token_to_image/v_proj/MatMul_output_0")
            == node_group("decoder", "/transformer/layers.0/cross_attn_token_to_image/v_proj/MatMul")
            == "decoder layers.0/cross_attn_token_to_image")
    assert node_group("decoder", "/output_hypernetworks_mlps.3/layers.1/Gemm") == "decoder output_hypernetworks_mlps"
    assert node_group("decoder", "/MatMul_1") == "decoder /MatMul_1"


def test_greedy_exclusion_keeps_the_most_sensitive_groups_float_until_the_target():
    from fastsam.export.int8_search import greedy_exclusion

    gain = {"a": 0.05, "b": 0.01, "c": 0.08, "d": 0.0}
    calls = []

    def score(excluded):
        calls.append(excluded)
        return 0.85 + sum(gain[g] for g in excluded)

    result = greedy_exclusion(gain, score, target=0.97, log=lambda line: None)
    assert result.excluded == ["c", "a"] and result.target_met
    assert result.baseline == pytest.approx(0.85) and result.score == pytest.approx(0.98)
    assert result.sensitivity == pytest.approx(gain)
    assert [s["keep_float"] for s in result.steps] == ["c", "a"]
    assert len(calls) == len(set(calls)) == 1 + 4 + 1  # {c} is not measured twice

    unreachable = greedy_exclusion(gain, score, target=1.5, log=lambda line: None)
    assert not unreachable.target_met and sorted(unreachable.excluded) == sorted(gain)
    already = greedy_exclusion(gain, lambda excluded: 0.99, target=0.97, log=lambda line: None)
    assert already.excluded == [] and already.target_met and already.sensitivity == {}


def test_keep_float_restores_float_operands_of_a_qdq_graph(tmp_path):
    import onnxruntime as ort

    from fastsam.export import quantize
    from fastsam.export.int8_search import quantized_nodes, groups_of, keep_float

    rng = np.random.default_rng(0)
    names = ["/image_encoder/layers.1/blocks.0/attn/qkv/MatMul", "/image_encoder/layers.1/blocks.0/mlp/fc1/MatMul"]
    weights = [helper.make_tensor(f"w{i}", TensorProto.FLOAT, [16, 16], rng.normal(size=256).tolist()) for i in range(2)]
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["image", "w0"], ["t"], name=names[0]),
         helper.make_node("MatMul", ["t", "w1"], ["u"], name=names[1]), helper.make_node("Add", ["u", "bias"], ["y"])],
        "two_matmuls", [helper.make_tensor_value_info("image", TensorProto.FLOAT, [4, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 16])],
        initializer=[*weights, helper.make_tensor("bias", TensorProto.FLOAT, [16], [0.5] * 16)])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(tmp_path / "f.onnx"))
    inputs = [rng.normal(size=(4, 16)).astype(np.float32) for _ in range(4)]
    quantize.quantize_encoder_static(tmp_path / "f.onnx", tmp_path / "q.onnx", iter(inputs), 4, progress=False,
                                     preprocess=False)
    float_model, qdq = onnx.load(str(tmp_path / "f.onnx")), onnx.load(str(tmp_path / "q.onnx"))
    assert quantized_nodes(qdq) == set(names)
    assert set(groups_of(tmp_path / "q.onnx", "encoder")) == {"encoder layers.1 attn/qkv", "encoder layers.1 mlp/fc1"}

    def run(model):
        session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        return session.run(None, {"image": inputs[0]})[0]

    reference = run(float_model)
    assert not np.allclose(run(qdq), reference, atol=1e-4)
    half = keep_float(qdq, float_model, [names[1]])
    assert quantized_nodes(half) == {names[0]}
    all_float = keep_float(qdq, float_model, names)
    assert quantized_nodes(all_float) == set()
    assert not any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in all_float.graph.node)
    np.testing.assert_allclose(run(all_float), reference, rtol=1e-5, atol=1e-5)
    assert len(qdq.graph.node) == len(onnx.load(str(tmp_path / "q.onnx")).graph.node)  # input left untouched


def test_dynamic_quantisation_keeps_excluded_gemms_float(tmp_path):
    from fastsam.export import quantize

    rng = np.random.default_rng(1)
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["x", "w", "b"], ["t"], name="/iou_prediction_head/layers.0/Gemm"),
         helper.make_node("MatMul", ["t", "w"], ["y"], name="/transformer/layers.0/mlp/lin1/MatMul")],
        "gemm_matmul", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 32])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 32])],
        initializer=[helper.make_tensor("w", TensorProto.FLOAT, [32, 32], rng.normal(size=1024).tolist()),
                     helper.make_tensor("b", TensorProto.FLOAT, [32], rng.normal(size=32).tolist())])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(tmp_path / "d.onnx"))

    def integer_products(excluded):
        quantize.quantize_decoder_dynamic(tmp_path / "d.onnx", tmp_path / "q.onnx", nodes_to_exclude=excluded)
        return sum(n.op_type == "MatMulInteger" for n in onnx.load(str(tmp_path / "q.onnx")).graph.node)

    assert integer_products([]) == 2
    assert integer_products(["/iou_prediction_head/layers.0/Gemm"]) == 1  # the Gemm too, not only MatMuls
    assert integer_products(["/iou_prediction_head/layers.0/Gemm", "/transformer/layers.0/mlp/lin1/MatMul"]) == 0
