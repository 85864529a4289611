"""Precision variants (manifest ``variants``), the fp16 encoder export and the TensorRT cache profiles, on CPU.

The variant directory is the standalone model's fp32 export plus an fp16 encoder written by the export's own
fp16 step (parity-gated) and dynamically quantised int8 files: enough to check which file serves which role.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from fastsam.export import io_spec, manifest, parity, pipeline, trt_cache
from fastsam.export.fp16 import unshare_mixed_initializers
from fastsam.export.variants import variant_table

FP32_MODELS = {key: {"file": f"{key}.onnx"} for key in io_spec.EXPORTED_MODELS}


def test_variant_table_mixes_the_fp16_encoder_with_fp32_decoders():
    models = {**FP32_MODELS, "encoder_fp16": {}, "encoder_int8": {}, "decoder_int8": {}, "decoder_batched_int8": {}}
    table = variant_table(models)
    assert table["fp32"] == {key: key for key in io_spec.EXPORTED_MODELS}
    assert table["fp16"] == {**table["fp32"], "encoder": "encoder_fp16"}
    assert table["int8"] == {"encoder": "encoder_int8", "decoder": "decoder_int8",
                             "decoder_batched": "decoder_batched_int8"}
    assert set(variant_table(FP32_MODELS)) == {"fp32"}
    with pytest.raises(ValueError, match="fp32 models .*decoder_masks"):
        variant_table({k: v for k, v in FP32_MODELS.items() if k != "decoder_masks"})
    with pytest.raises(ValueError, match="variant int8 names models that were not written: .*decoder_int8"):
        variant_table({**FP32_MODELS, "encoder_int8": {}})


def test_unshare_gives_fp16_consumers_their_own_copy_of_a_shared_initializer():
    """The cause of the fp16 export failure: one zero bias read by a Conv (fp16) and a LayerNorm (kept fp32)."""
    from onnx import TensorProto, helper

    zeros = onnx.numpy_helper.from_array(np.zeros(4, np.float32), "zeros")
    weight = onnx.numpy_helper.from_array(np.ones((4, 4, 1, 1), np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w", "zeros"], ["c"]),
         helper.make_node("LayerNormalization", ["c", "zeros", "zeros"], ["y"], axis=1)],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 2, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 2, 2])], [zeros, weight])
    assert unshare_mixed_initializers(graph, {"LayerNormalization"}) == 1
    conv, norm = graph.node
    assert conv.input[2] != "zeros" and list(norm.input[1:]) == ["zeros", "zeros"]
    copy = next(init for init in graph.initializer if init.name == conv.input[2])
    assert np.array_equal(onnx.numpy_helper.to_array(copy), np.zeros(4, np.float32))
    assert unshare_mixed_initializers(graph, {"LayerNormalization"}) == 0  # nothing shared any more


@pytest.fixture(scope="module")
def variant_dir(standalone_dir, standalone_sam, tmp_path_factory) -> Path:
    """fp32 files + encoder.fp16.onnx (the export's fp16 step) + dynamic int8 files, with the manifest's variants."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    out = tmp_path_factory.mktemp("variants")
    for key in io_spec.EXPORTED_MODELS:
        shutil.copy(standalone_dir / f"{key}.onnx", out / f"{key}.onnx")
    data = manifest.read_manifest(standalone_dir)
    specs = io_spec.model_specs(data["image_size"])
    paths = {key: out / f"{key}.onnx" for key in io_spec.EXPORTED_MODELS}
    images = pipeline.parity_inputs(data["image_size"])
    references = {case: parity.torch_embedding(standalone_sam, image) for case, image in images.items()}
    options = pipeline.ExportOptions(output_dir=out, fp16=True)
    fp16_path, checks = pipeline.write_fp16_encoder(standalone_sam, options, paths, images, references, lambda _: None)
    assert not parity.failures(checks), [c.line() for c in checks]
    data["models"]["encoder_fp16"] = manifest.model_entry(out, specs["encoder"], fp16_path.name, "fp16")
    for key in io_spec.BASE_MODELS:
        name = io_spec.variant_file(key, "int8")
        quantize_dynamic(str(paths[key]), str(out / name), weight_type=QuantType.QUInt8)
        data["models"][io_spec.variant_key(key, "int8")] = manifest.model_entry(out, specs[key], name, "int8")
    data["variants"] = variant_table(data["models"])
    manifest.write_manifest(out, data)
    return out


def _embedding(path: Path, image: np.ndarray) -> np.ndarray:
    from fastsam.export import calibration

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {io_spec.IMAGE: calibration.encoder_input(image, 256)})[0]


def test_runtime_loads_each_variant_by_precision_alone(variant_dir):
    fastsam_rt = pytest.importorskip("fastsam_rt")
    from fastsam.export import calibration

    image = calibration.generate_image(seed=7, long_side=256)
    box = np.array([40, 30, 200, 150], np.float32)
    embeddings, masks = {}, {}
    for precision in ("fp32", "int8", "fp16"):
        predictor = fastsam_rt.Predictor(str(variant_dir), precision=precision, intra_op_threads=1)
        predictor.set_image(image)
        embeddings[precision] = predictor.get_image_embedding()
        masks[precision] = predictor.predict(box=box, multimask_output=False)[0][0]
    # Wiring: each precision's embedding is the one of the file its variant names (same ORT CPU kernels: 1e-5),
    # and the variants differ from each other (fp16 by ~1e-3, int8 by more), so the check could fail.
    for precision, file in (("fp32", "encoder.onnx"), ("int8", "encoder.int8.onnx"), ("fp16", "encoder.fp16.onnx")):
        expected = _embedding(variant_dir / file, image)
        np.testing.assert_allclose(embeddings[precision], expected, atol=1e-5, err_msg=precision)
    for precision in ("int8", "fp16"):
        assert np.abs(embeddings[precision] - embeddings["fp32"]).max() > 1e-4, precision
        # The fp16 variant decodes with the fp32 decoders (no decoder_fp16 file exists); both stay close to fp32.
        inter = np.logical_and(masks[precision], masks["fp32"]).sum()
        union = np.logical_or(masks[precision], masks["fp32"]).sum()
        assert union == 0 or inter / union >= 0.9, (precision, inter / union)
    assert not list(variant_dir.glob("decoder*.fp16.onnx"))


def test_export_without_variants_names_the_flag_to_reexport(variant_dir, tmp_path):
    fastsam_rt = pytest.importorskip("fastsam_rt")
    old = tmp_path / "old"
    shutil.copytree(variant_dir, old)
    data = json.loads((old / "manifest.json").read_text())
    del data["variants"], data["models"]["encoder_fp16"]  # what sam-export --fp16 wrote before "variants"
    (old / "manifest.json").write_text(json.dumps(data))
    fastsam_rt.Predictor(str(old), precision="int8")  # suffixed keys still load
    with pytest.raises(RuntimeError, match="re-export with sam-export --fp16"):
        fastsam_rt.Predictor(str(old), precision="fp16")


def test_tensorrt_profiles_cover_every_dynamic_input():
    ranges = trt_cache.dim_ranges(1024)
    for key in trt_cache.CACHED_ROLES:
        spec = io_spec.model_specs(1024)[key]
        shapes = {which: dict(item.split(":") for item in text.split(","))
                  for which, text in trt_cache.profile(spec, ranges).items()}
        dynamic = {t.name: t.shape for t in spec.inputs if t.dynamic_axes()}
        assert set(shapes["min"]) == set(dynamic), key
        for name, dims in dynamic.items():
            lo, opt, hi = ([int(d) for d in shapes[which][name].split("x")] for which in ("min", "opt", "max"))
            for a, b, c, dim in zip(lo, opt, hi, dims):
                assert 1 <= a <= b <= c and (isinstance(dim, str) or a == b == c == dim), (key, name)
    assert "orig_im_size" not in trt_cache.profile(io_spec.decoder_batched_spec(1024), ranges)["max"]
    assert trt_cache.profile(io_spec.encoder_spec(256), trt_cache.dim_ranges(256))["max"] == "image:1x3x256x256"
    with pytest.raises(ValueError, match="no TensorRT profile range for dimension 'num_prompts'"):
        trt_cache.profile(io_spec.decoder_batched_spec(1024), {})


def test_tensorrt_cache_needs_the_tensorrt_provider():
    if trt_cache.PROVIDER in ort.get_available_providers():
        pytest.skip("this onnxruntime has the TensorRT provider")
    with pytest.raises(trt_cache.TensorRTUnavailable, match="pip install .\\[gpu\\]"):
        trt_cache.require_provider()


def test_tensorrt_cache_build_failures_are_one_line_errors(tmp_path):
    import warnings

    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    onnx.save(helper.make_model(graph), str(tmp_path / "identity.onnx"))
    options = trt_cache.provider_options(tmp_path / "cache", True, {"min": "", "opt": "", "max": ""})
    inputs = {"x": np.zeros(1, np.float32)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ONNX Runtime warns that the requested provider is not available
        with pytest.raises(trt_cache.TensorRTBuildError, match="TensorRT engine for missing.onnx failed: ") as err:
            trt_cache._build_one(tmp_path / "missing.onnx", options, inputs)
        assert "\n" not in str(err.value)
        if trt_cache.PROVIDER not in ort.get_available_providers():
            # ONNX Runtime silently falls back to another provider: that must not pass for a TensorRT cache.
            with pytest.raises(trt_cache.TensorRTUnavailable, match="could not start its TensorRT provider"):
                trt_cache._build_one(tmp_path / "identity.onnx", options, inputs)
