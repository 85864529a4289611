// Manifest reading and Predictor construction errors (no model needed).
#include <unistd.h>

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

HARNESS_MAIN()
