#pragma once
// RAII wrapper of one ONNX Runtime session; inputs and outputs are bound by name. Private to the library.
#include <onnxruntime_cxx_api.h>

#include <string>
#include <vector>

#include "fastsam/options.hpp"
#include "manifest.hpp"

namespace fastsam::detail {

struct NamedTensor {
  const char* name;
  const float* data;
  std::vector<int64_t> shape;
};

// A caller-owned output buffer of exactly `shape` (the model must produce that shape).
struct OutputBuffer {
  const char* name;
  float* data;
  std::vector<int64_t> shape;
};

class OnnxModel {
 public:
  // Throws fastsam::Error: kFileNotFound (no file), kProviderUnavailable, kInference (ORT failed to load it).
  // `entry` (optional) supplies the TensorRT profile of the export's engine cache.
  OnnxModel(const std::string& path, const RuntimeOptions& options, const ModelEntry* entry = nullptr);
  // The model of a manifest entry; with options.verify_model_files its sha256 is checked first (see verify_file).
  OnnxModel(const ModelEntry& entry, const RuntimeOptions& options);

  bool has_input(const std::string& name) const;
  bool has_output(const std::string& name) const;
  // Throws fastsam::Error(kModelFiles) naming the model and the names it does have.
  void require(const std::vector<std::string>& inputs, const std::vector<std::string>& outputs) const;

  // Runs the model; throws fastsam::Error(kInference) with ORT's message on failure.
  std::vector<Ort::Value> run(const std::vector<NamedTensor>& inputs, const std::vector<const char*>& outputs);
  // Runs the model writing the outputs straight into caller buffers (no copy); a model producing another
  // shape throws fastsam::Error(kInference).
  void run_into(const std::vector<NamedTensor>& inputs, const std::vector<OutputBuffer>& outputs);

  const std::string& path() const { return path_; }

 private:
  std::string path_;
  Ort::Session session_{nullptr};
  std::vector<std::string> input_names_;
  std::vector<std::string> output_names_;
};

}  // namespace fastsam::detail
