#include "onnx_session.hpp"

#include <algorithm>
#include <fstream>
#include <memory>
#include <stdexcept>

#include "fastsam/error.hpp"

namespace fastsam::detail {
namespace {

Ort::Env& ort_env() {
  static Ort::Env env(ORT_LOGGING_LEVEL_WARNING, "fastsam");
  return env;
}

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const std::string& s : items) out += (out.empty() ? "" : ", ") + s;
  return out.empty() ? "none" : out;
}

void require_provider(const std::string& ort_name, ExecutionProvider requested) {
  const std::vector<std::string> providers = available_providers();
  if (std::find(providers.begin(), providers.end(), ort_name) == providers.end()) {
    throw Error(ErrorCode::kProviderUnavailable,
                std::string("execution provider '") + to_string(requested) + "' (" + ort_name +
                    ") is not available in this ONNX Runtime build (available: " + join(providers) +
                    "); install onnxruntime-gpu (or a GPU release tree) and use a machine with a GPU");
  }
}

void append_cuda(Ort::SessionOptions& so, int device_id) {
  const OrtApi& api = Ort::GetApi();
  OrtCUDAProviderOptionsV2* raw = nullptr;
  Ort::ThrowOnError(api.CreateCUDAProviderOptions(&raw));
  std::unique_ptr<OrtCUDAProviderOptionsV2, decltype(api.ReleaseCUDAProviderOptions)> cuda(
      raw, api.ReleaseCUDAProviderOptions);
  const std::string device = std::to_string(device_id);
  const char* keys[] = {"device_id"};
  const char* values[] = {device.c_str()};
  Ort::ThrowOnError(api.UpdateCUDAProviderOptions(cuda.get(), keys, values, 1));
  so.AppendExecutionProvider_CUDA_V2(*cuda);
}

void append_tensorrt(Ort::SessionOptions& so, const RuntimeOptions& options, const ModelEntry* entry) {
  const OrtApi& api = Ort::GetApi();
  OrtTensorRTProviderOptionsV2* raw = nullptr;
  Ort::ThrowOnError(api.CreateTensorRTProviderOptions(&raw));
  std::unique_ptr<OrtTensorRTProviderOptionsV2, decltype(api.ReleaseTensorRTProviderOptions)> trt(
      raw, api.ReleaseTensorRTProviderOptions);
  const std::string device = std::to_string(options.device_id);
  std::vector<const char*> keys = {"device_id", "trt_fp16_enable"};
  std::vector<const char*> values = {device.c_str(), options.tensorrt_fp16 ? "1" : "0"};
  if (!options.tensorrt_cache_dir.empty()) {
    keys.push_back("trt_engine_cache_enable");
    values.push_back("1");
    keys.push_back("trt_engine_cache_path");
    values.push_back(options.tensorrt_cache_dir.c_str());
  }
  // The export's profile: a cached engine is reused only under the profile it was built for.
  if (entry != nullptr && !entry->trt_profile_min.empty()) {
    keys.insert(keys.end(), {"trt_profile_min_shapes", "trt_profile_opt_shapes", "trt_profile_max_shapes"});
    values.insert(values.end(), {entry->trt_profile_min.c_str(), entry->trt_profile_opt.c_str(),
                                 entry->trt_profile_max.c_str()});
  }
  Ort::ThrowOnError(api.UpdateTensorRTProviderOptions(trt.get(), keys.data(), values.data(), keys.size()));
  so.AppendExecutionProvider_TensorRT_V2(*trt);
}

Ort::SessionOptions make_session_options(const RuntimeOptions& options, const ModelEntry* entry) {
  if (options.intra_op_threads < 0) throw std::invalid_argument("intra_op_threads must be >= 0");
  if (options.inter_op_threads < 0) throw std::invalid_argument("inter_op_threads must be >= 0");
  if (options.device_id < 0) throw std::invalid_argument("device_id must be >= 0");
  Ort::SessionOptions so;
  so.SetIntraOpNumThreads(options.intra_op_threads);
  so.SetInterOpNumThreads(options.inter_op_threads);
  switch (options.graph_optimization) {
    case GraphOptimization::kDisabled: so.SetGraphOptimizationLevel(ORT_DISABLE_ALL); break;
    case GraphOptimization::kBasic: so.SetGraphOptimizationLevel(ORT_ENABLE_BASIC); break;
    case GraphOptimization::kExtended: so.SetGraphOptimizationLevel(ORT_ENABLE_EXTENDED); break;
    case GraphOptimization::kAll: so.SetGraphOptimizationLevel(ORT_ENABLE_ALL); break;
  }
  if (options.enable_memory_pattern) so.EnableMemPattern(); else so.DisableMemPattern();
  if (options.enable_cpu_mem_arena) so.EnableCpuMemArena(); else so.DisableCpuMemArena();
  switch (options.provider) {
    case ExecutionProvider::kCpu: break;
    case ExecutionProvider::kCuda:
      require_provider("CUDAExecutionProvider", options.provider);
      append_cuda(so, options.device_id);
      break;
    case ExecutionProvider::kTensorRt:
      require_provider("TensorrtExecutionProvider", options.provider);
      append_tensorrt(so, options, entry);
      append_cuda(so, options.device_id);  // nodes TensorRT cannot take run on CUDA rather than the CPU
      break;
  }
  return so;
}

const std::string& verified_path(const ModelEntry& entry, const RuntimeOptions& options) {
  if (options.verify_model_files) verify_file(entry);
  return entry.path;
}

}  // namespace

OnnxModel::OnnxModel(const ModelEntry& entry, const RuntimeOptions& options)
    : OnnxModel(verified_path(entry, options), options, &entry) {}

OnnxModel::OnnxModel(const std::string& path, const RuntimeOptions& options, const ModelEntry* entry) : path_(path) {
  if (!std::ifstream(path)) throw Error(ErrorCode::kFileNotFound, "model file not found: " + path);
  Ort::SessionOptions so = [&] {
    try {
      return make_session_options(options, entry);
    } catch (const Ort::Exception& e) {
      throw Error(ErrorCode::kProviderUnavailable,
                  std::string("could not configure execution provider '") + to_string(options.provider) + "': " + e.what());
    }
  }();
  try {
    session_ = Ort::Session(ort_env(), path.c_str(), so);
    Ort::AllocatorWithDefaultOptions allocator;
    for (size_t i = 0; i < session_.GetInputCount(); ++i)
      input_names_.emplace_back(session_.GetInputNameAllocated(i, allocator).get());
    for (size_t i = 0; i < session_.GetOutputCount(); ++i)
      output_names_.emplace_back(session_.GetOutputNameAllocated(i, allocator).get());
  } catch (const Ort::Exception& e) {
    throw Error(ErrorCode::kInference, "could not load " + path + ": " + e.what());
  }
}

bool OnnxModel::has_input(const std::string& name) const {
  return std::find(input_names_.begin(), input_names_.end(), name) != input_names_.end();
}

bool OnnxModel::has_output(const std::string& name) const {
  return std::find(output_names_.begin(), output_names_.end(), name) != output_names_.end();
}

void OnnxModel::require(const std::vector<std::string>& inputs, const std::vector<std::string>& outputs) const {
  for (const std::string& name : inputs) {
    if (!has_input(name)) {
      throw Error(ErrorCode::kModelFiles,
                  path_ + " has no input '" + name + "' (inputs: " + join(input_names_) + ")");
    }
  }
  for (const std::string& name : outputs) {
    if (!has_output(name)) {
      throw Error(ErrorCode::kModelFiles,
                  path_ + " has no output '" + name + "' (outputs: " + join(output_names_) + ")");
    }
  }
}

namespace {

const Ort::MemoryInfo& cpu_memory() {
  static const Ort::MemoryInfo memory = Ort::MemoryInfo::CreateCpu(OrtArenaAllocator, OrtMemTypeDefault);
  return memory;
}

size_t element_count(const std::vector<int64_t>& shape) {
  size_t count = 1;
  for (int64_t d : shape) count *= static_cast<size_t>(d);
  return count;
}

void wrap_inputs(const std::vector<NamedTensor>& inputs, std::vector<Ort::Value>& values,
                 std::vector<const char*>& names) {
  values.reserve(inputs.size());
  for (const NamedTensor& t : inputs) {
    // ORT does not write to inputs; the C API takes a non-const pointer.
    values.push_back(Ort::Value::CreateTensor<float>(cpu_memory(), const_cast<float*>(t.data), element_count(t.shape),
                                                     t.shape.data(), t.shape.size()));
    names.push_back(t.name);
  }
}

}  // namespace

std::vector<Ort::Value> OnnxModel::run(const std::vector<NamedTensor>& inputs, const std::vector<const char*>& outputs) {
  try {
    std::vector<Ort::Value> values;
    std::vector<const char*> names;
    wrap_inputs(inputs, values, names);
    return session_.Run(Ort::RunOptions{nullptr}, names.data(), values.data(), values.size(), outputs.data(),
                        outputs.size());
  } catch (const Ort::Exception& e) {
    throw Error(ErrorCode::kInference, "running " + path_ + " failed: " + e.what());
  }
}

void OnnxModel::run_into(const std::vector<NamedTensor>& inputs, const std::vector<OutputBuffer>& outputs) {
  try {
    std::vector<Ort::Value> values;
    std::vector<const char*> names;
    wrap_inputs(inputs, values, names);
    std::vector<Ort::Value> out_values;
    std::vector<const char*> out_names;
    out_values.reserve(outputs.size());
    for (const OutputBuffer& t : outputs) {
      out_values.push_back(Ort::Value::CreateTensor<float>(cpu_memory(), t.data, element_count(t.shape),
                                                           t.shape.data(), t.shape.size()));
      out_names.push_back(t.name);
    }
    session_.Run(Ort::RunOptions{nullptr}, names.data(), values.data(), values.size(), out_names.data(),
                 out_values.data(), out_values.size());
  } catch (const Ort::Exception& e) {
    throw Error(ErrorCode::kInference, "running " + path_ + " failed: " + e.what());
  }
}

}  // namespace fastsam::detail

namespace fastsam {

std::vector<std::string> available_providers() {
  try {
    return Ort::GetAvailableProviders();
  } catch (const Ort::Exception& e) {
    throw Error(ErrorCode::kInference, std::string("could not list ONNX Runtime providers: ") + e.what());
  }
}

}  // namespace fastsam
