#pragma once
// manifest.json written by sam-export (see notes/onnx_interface.md), private to the library.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace fastsam::detail {

struct TensorSpec {
  std::string name;
  std::string dtype;
  std::vector<int64_t> shape;  // -1 for a dynamic dimension
};

struct ModelEntry {
  std::string key;
  std::string path;  // absolute or relative to the working directory: model_dir / file
  std::string precision;
  std::string sha256;  // lower-case hex digest of the file; empty when the manifest lists none (older exports)
  std::vector<TensorSpec> inputs;
  std::vector<TensorSpec> outputs;
  // ONNX Runtime TensorRT-provider profile ("name:1x3x64x64,..."), from the manifest's "tensorrt" section;
  // empty without one. The engine cache sam-export --tensorrt prepared is only reused under the same profile.
  std::string trt_profile_min, trt_profile_opt, trt_profile_max;
};

// What sam-export --tensorrt prepared: ONNX Runtime's TensorRT engine cache (see the "tensorrt" section).
struct TensorRtCache {
  std::string cache_dir;  // model_dir / the manifest's relative cache_dir; empty when the export has none
  bool fp16 = false;
};

struct Manifest {
  std::string model_dir;
  std::string model_type;
  int image_size = 1024;
  float mask_threshold = 0.0f;
  std::map<std::string, ModelEntry> models;
  // precision -> role ("encoder", "decoder", ...) -> model key; empty for exports written before "variants".
  std::map<std::string, std::map<std::string, std::string>> variants;
  TensorRtCache tensorrt;

  bool has(const std::string& key) const { return models.count(key) != 0; }
  // Throws fastsam::Error(kModelFiles) naming the key and the keys that exist.
  const ModelEntry& model(const std::string& key) const;
  // The model serving `role` at `precision` (an fp16 variant may reuse the fp32 decoders), nullptr when that
  // variant has no model for the role. Old manifests (no "variants") map role R to key R / R_int8 / R_fp16.
  // Throws fastsam::Error(kModelFiles) when the export has no such precision, naming the sam-export flag.
  const ModelEntry* for_role(const std::string& precision, const std::string& role) const;
};

// Throws fastsam::Error: kFileNotFound when the directory or manifest.json is missing, kModelFiles when it is
// malformed.
Manifest load_manifest(const std::string& model_dir);
// The parsing half of load_manifest (no file access, so it can be fuzzed): `text` is manifest.json's content,
// `model_dir` is only used for model paths and messages. Throws fastsam::Error(kModelFiles) on malformed input.
Manifest parse_manifest(const std::string& text, const std::string& model_dir);

// Checks the entry's file against its manifest sha256 (nothing to check without one). Throws fastsam::Error:
// kFileNotFound when the file is missing, kModelFiles naming the file and both digests when they differ.
void verify_file(const ModelEntry& entry);

}  // namespace fastsam::detail
