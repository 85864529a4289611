// Manifest reading and Predictor construction errors (no model needed).
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "fastsam/error.hpp"
#include "fastsam/predictor.hpp"
#include "harness.hpp"
#include "json.hpp"
#include "manifest.hpp"
#include "sha256.hpp"

namespace fs = std::filesystem;

static fs::path temp_dir(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / ("fastsam_test_" + name + "_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  return dir;
}

TEST(json_parses_nested_values_and_reports_offsets) {
  const auto v = fastsam::json::parse(R"({"a": [1, -2.5e1, "x\"y"], "b": {"c": true, "d": null}})");
  CHECK(v.find("a")->array.size() == 3u);
  CHECK_NEAR(v.find("a")->array[1].number, -25.0, 0.0);
  CHECK_EQ(v.find("a")->array[2].string, std::string("x\"y"));
  CHECK(v.find("b")->find("c")->boolean);
  CHECK_THROWS(fastsam::json::parse("{\"a\": [1, 2}"), std::runtime_error, "byte");
}

TEST(manifest_reads_models_and_names_missing_keys) {
  const fs::path dir = temp_dir("manifest");
  std::ofstream(dir / "manifest.json") << R"({"format_version": 1, "model_type": "vit_t", "image_size": 1024,
    "mask_threshold": 0.0, "models": {"encoder": {"file": "encoder.onnx", "precision": "fp32",
    "inputs": [{"name": "image", "dtype": "float32", "shape": ["B", 3, "H", "W"]}],
    "outputs": [{"name": "image_embeddings", "dtype": "float32", "shape": ["B", 256, 64, 64]}]}}})";
  const auto m = fastsam::detail::load_manifest(dir.string());
  CHECK_EQ(m.model_type, std::string("vit_t"));
  CHECK(m.model("encoder").inputs[0].shape == std::vector<int64_t>({-1, 3, -1, -1}));
  CHECK_EQ(m.model("encoder").path, (dir / "encoder.onnx").string());
  CHECK_THROWS(m.model("decoder_batched"), fastsam::Error, "no model 'decoder_batched' (models: encoder)");
  // The encoder file itself is missing.
  try {
    fastsam::Predictor p(dir.string());
    harness::fail(__FILE__, __LINE__, "Predictor accepted a missing encoder.onnx");
  } catch (const fastsam::Error& e) {
    CHECK(e.code() == fastsam::ErrorCode::kFileNotFound);
    CHECK(std::string(e.what()).find("encoder.onnx") != std::string::npos);
  }
  fs::remove_all(dir);
}

TEST(predictor_reports_missing_directory_and_bad_options) {
  try {
    fastsam::Predictor p("/nonexistent/fastsam/model");
    harness::fail(__FILE__, __LINE__, "Predictor accepted a missing directory");
  } catch (const fastsam::Error& e) {
    CHECK(e.code() == fastsam::ErrorCode::kFileNotFound);
    CHECK(std::string(e.what()).find("/nonexistent/fastsam/model") != std::string::npos);
  }
  fastsam::RuntimeOptions bad;
  bad.precision = "int4";
  CHECK_THROWS(fastsam::Predictor("/nonexistent", bad), std::invalid_argument, "precision");
  CHECK_THROWS(fastsam::parse_execution_provider("gpu"), std::invalid_argument, "'cpu', 'cuda' or 'tensorrt'");
  CHECK(fastsam::parse_execution_provider("tensorrt") == fastsam::ExecutionProvider::kTensorRt);
  const fs::path dir = temp_dir("badjson");
  std::ofstream(dir / "manifest.json") << "{\"models\": [}";
  CHECK_THROWS(fastsam::Predictor(dir.string()), fastsam::Error, "manifest.json");
  fs::remove_all(dir);
}

TEST(verify_file_checks_the_manifest_sha256) {
  const fs::path dir = temp_dir("verify");
  std::ofstream(dir / "decoder.onnx") << "model bytes";
  const std::string good = fastsam::detail::sha256_hex("model bytes");
  std::ofstream(dir / "manifest.json") << R"({"models": {"decoder": {"file": "decoder.onnx", "sha256": ")" << good
                                       << R"("}, "old": {"file": "decoder.onnx"}}})";
  const auto m = fastsam::detail::load_manifest(dir.string());
  CHECK_EQ(m.model("decoder").sha256, good);
  CHECK(m.model("old").sha256.empty());
  fastsam::detail::verify_file(m.model("decoder"));
  std::ofstream(dir / "decoder.onnx", std::ios::app) << "!";
  fastsam::detail::verify_file(m.model("old"));  // no digest listed: nothing to check
  try {
    fastsam::detail::verify_file(m.model("decoder"));
    harness::fail(__FILE__, __LINE__, "verify_file accepted a changed file");
  } catch (const fastsam::Error& e) {
    const std::string what = e.what();
    CHECK(e.code() == fastsam::ErrorCode::kModelFiles);
    for (const std::string& part : {(dir / "decoder.onnx").string(), good,
                                    fastsam::detail::sha256_hex("model bytes!"), std::string("sam-export")}) {
      if (what.find(part) == std::string::npos) harness::fail(__FILE__, __LINE__, "message lacks " + part + ": " + what);
    }
  }
  fs::remove(dir / "decoder.onnx");
  try {
    fastsam::detail::verify_file(m.model("decoder"));
    harness::fail(__FILE__, __LINE__, "verify_file accepted a missing file");
  } catch (const fastsam::Error& e) {
    CHECK(e.code() == fastsam::ErrorCode::kFileNotFound);
  }
  std::ofstream(dir / "manifest.json") << R"({"models": {"decoder": {"file": "decoder.onnx", "sha256": "abc"}}})";
  CHECK_THROWS(fastsam::detail::load_manifest(dir.string()), fastsam::Error, "models.decoder.sha256");
  fs::remove_all(dir);
}

TEST(manifest_numbers_out_of_range_are_errors_not_undefined_casts) {
  // Found by cpp/fuzz/fuzz_manifest (corpus/manifest/regression-*): doubles beyond int were cast unchecked.
  const auto parse = [](const std::string& text) { return fastsam::detail::parse_manifest(text, "/m"); };
  CHECK_THROWS(parse(R"({"image_size": 1e300, "models": {}})"), fastsam::Error, "image_size must be a multiple of 16");
  CHECK_THROWS(parse(R"({"image_size": 100, "models": {}})"), fastsam::Error, "image_size");
  CHECK_THROWS(parse(R"({"image_size": NaN, "models": {}})"), fastsam::Error, "image_size");
  CHECK_THROWS(parse(R"({"mask_threshold": 1e300, "models": {}})"), fastsam::Error, "mask_threshold");
  CHECK_THROWS(parse(R"({"models": {"e": {"file": "e.onnx", "inputs": [{"name": "x", "shape": [1e30]}]}}})"),
               fastsam::Error, "shape of 'x'");
  CHECK_THROWS(parse(R"({"model_type": "\u-123", "models": {}})"), fastsam::Error, "\\u escape");
  CHECK_EQ(parse(R"({"model_type": "vit_\u0074", "image_size": 256, "models": {}})").model_type, std::string("vit_t"));
}


// The manifest's models block for the variant tests: every role in fp32, plus an fp16 encoder and int8 files.
static const char* kVariantModels = R"("models": {"encoder": {"file": "encoder.onnx"},
    "encoder_fp16": {"file": "encoder.fp16.onnx"}, "encoder_int8": {"file": "encoder.int8.onnx"},
    "decoder": {"file": "decoder.onnx"}, "decoder_int8": {"file": "decoder.int8.onnx"},
    "decoder_batched": {"file": "decoder_batched.onnx"}, "decoder_batched_int8": {"file": "decoder_batched.int8.onnx"},
    "decoder_head": {"file": "decoder_head.onnx"}, "decoder_masks": {"file": "decoder_masks.onnx"}})";

static std::string file_of(const fastsam::detail::ModelEntry* entry) {
  return entry == nullptr ? "none" : fs::path(entry->path).filename().string();
}

TEST(manifest_variants_name_the_file_of_each_role) {
  const std::string text = std::string("{") + kVariantModels + R"(, "variants": {
    "fp32": {"encoder": "encoder", "decoder": "decoder", "decoder_batched": "decoder_batched",
             "decoder_head": "decoder_head", "decoder_masks": "decoder_masks"},
    "fp16": {"encoder": "encoder_fp16", "decoder": "decoder", "decoder_batched": "decoder_batched",
             "decoder_head": "decoder_head", "decoder_masks": "decoder_masks"},
    "int8": {"encoder": "encoder_int8", "decoder": "decoder_int8", "decoder_batched": "decoder_batched_int8"}}})";
  const auto m = fastsam::detail::parse_manifest(text, "dir");
  // fp16 is mixed: the fp16 encoder with the fp32 decoders (no decoder_fp16 file exists).
  CHECK_EQ(file_of(m.for_role("fp16", "encoder")), std::string("encoder.fp16.onnx"));
  CHECK_EQ(file_of(m.for_role("fp16", "decoder_batched")), std::string("decoder_batched.onnx"));
  CHECK_EQ(file_of(m.for_role("fp16", "decoder_head")), std::string("decoder_head.onnx"));
  CHECK_EQ(file_of(m.for_role("int8", "decoder_batched")), std::string("decoder_batched.int8.onnx"));
  CHECK_EQ(file_of(m.for_role("int8", "decoder_head")), std::string("none"));
  CHECK_EQ(file_of(m.for_role("fp32", "encoder")), std::string("encoder.onnx"));
  // A variant the export lacks names the flag that writes it.
  const std::string only_fp32 = std::string("{") + kVariantModels + R"(, "variants": {"fp32": {"encoder": "encoder"}}})";
  const auto m32 = fastsam::detail::parse_manifest(only_fp32, "dir");
  CHECK_THROWS(m32.for_role("fp16", "encoder"), fastsam::Error, "no 'fp16' variant (variants: fp32); re-export with sam-export --fp16");
  CHECK_THROWS(m32.for_role("int8", "encoder"), fastsam::Error, "sam-export --quantize");
  // A variant naming a model the manifest does not list is a malformed manifest.
  const std::string dangling = std::string("{") + kVariantModels + R"(, "variants": {"fp16": {"encoder": "encoder_x"}}})";
  CHECK_THROWS(fastsam::detail::parse_manifest(dangling, "dir"), fastsam::Error, "variants.fp16.encoder names 'encoder_x'");
}

TEST(manifest_without_variants_keeps_the_suffixed_keys) {
  const auto m = fastsam::detail::parse_manifest(std::string("{") + kVariantModels + "}", "dir");
  CHECK_EQ(file_of(m.for_role("int8", "encoder")), std::string("encoder.int8.onnx"));
  CHECK_EQ(file_of(m.for_role("int8", "decoder_masks")), std::string("none"));  // split decoder: fp32 only
  CHECK_EQ(file_of(m.for_role("fp32", "decoder_masks")), std::string("decoder_masks.onnx"));
  CHECK_EQ(file_of(m.for_role("fp16", "decoder_batched")), std::string("none"));
  // Such an export has no way to say which decoders go with encoder_fp16: the message says what to re-run.
  const auto old = fastsam::detail::parse_manifest(R"({"models": {"encoder": {"file": "encoder.onnx"}}})", "dir");
  CHECK_THROWS(old.for_role("fp16", "encoder"), fastsam::Error, "re-export with sam-export --fp16");
}

TEST(manifest_tensorrt_section_gives_cache_dir_and_profiles) {
  const std::string text = std::string("{") + kVariantModels + R"(, "tensorrt": {"cache_dir": "tensorrt_cache",
    "fp16": true, "profiles": {"encoder": {"min": "image:1x3x16x16", "opt": "image:1x3x64x64", "max": "image:1x3x64x64"}}}})";
  const auto m = fastsam::detail::parse_manifest(text, "dir");
  CHECK_EQ(m.tensorrt.cache_dir, std::string("dir/tensorrt_cache"));
  CHECK(m.tensorrt.fp16);
  CHECK_EQ(m.model("encoder").trt_profile_min, std::string("image:1x3x16x16"));
  CHECK(m.model("decoder").trt_profile_max.empty());
  // An export without a cache (older exports wrote "tensorrt": {}) has none.
  CHECK(fastsam::detail::parse_manifest(std::string("{") + kVariantModels + R"(, "tensorrt": {}})", "dir")
            .tensorrt.cache_dir.empty());
  const std::string escaping = std::string("{") + kVariantModels + R"(, "tensorrt": {"cache_dir": "../elsewhere"}})";
  CHECK_THROWS(fastsam::detail::parse_manifest(escaping, "dir"), fastsam::Error, "tensorrt.cache_dir");
}

TEST(gpu_providers_absent_from_the_library_fail_with_one_line) {
  const fs::path dir = temp_dir("provider");
  std::ofstream(dir / "manifest.json") << R"({"models": {"encoder": {"file": "encoder.onnx"},
    "decoder_batched": {"file": "decoder_batched.onnx"}}})";
  std::ofstream(dir / "encoder.onnx") << "not read: the provider check comes first";
  const auto available = fastsam::available_providers();
  for (const auto& [provider, ort_name] : {std::pair{fastsam::ExecutionProvider::kCuda, "CUDAExecutionProvider"},
                                           std::pair{fastsam::ExecutionProvider::kTensorRt, "TensorrtExecutionProvider"}}) {
    if (std::find(available.begin(), available.end(), ort_name) != available.end()) continue;  // a GPU build
    fastsam::RuntimeOptions options;
    options.provider = provider;
    try {
      fastsam::Predictor predictor(dir.string(), options);
      CHECK(false);
    } catch (const fastsam::Error& e) {
      const std::string message = e.what();
      CHECK(e.code() == fastsam::ErrorCode::kProviderUnavailable);
      CHECK(message.find(ort_name) != std::string::npos);
      CHECK(message.find("onnxruntime-gpu") != std::string::npos);
      CHECK(message.find('\n') == std::string::npos);
    }
  }
  fs::remove_all(dir);
}

HARNESS_MAIN()
