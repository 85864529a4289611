#include "fastsam/options.hpp"

#include <stdexcept>

namespace fastsam {

ExecutionProvider parse_execution_provider(const std::string& name) {
  if (name == "cpu") return ExecutionProvider::kCpu;
  if (name == "cuda") return ExecutionProvider::kCuda;
  if (name == "tensorrt") return ExecutionProvider::kTensorRt;
  throw std::invalid_argument("provider must be 'cpu', 'cuda' or 'tensorrt', got '" + name + "'");
}

const char* to_string(ExecutionProvider provider) noexcept {
  switch (provider) {
    case ExecutionProvider::kCpu: return "cpu";
    case ExecutionProvider::kCuda: return "cuda";
    case ExecutionProvider::kTensorRt: return "tensorrt";
  }
  return "unknown";
}

OutputMode parse_output_mode(const std::string& name) {
  if (name == "binary_mask") return OutputMode::kBinaryMask;
  if (name == "uncompressed_rle") return OutputMode::kUncompressedRle;
  if (name == "coco_rle") return OutputMode::kCocoRle;
  throw std::invalid_argument("output_mode must be 'binary_mask', 'uncompressed_rle' or 'coco_rle', got '" + name + "'");
}

}  // namespace fastsam
