#pragma once
// One exception type for runtime failures (with a code); bad arguments throw std::invalid_argument.
#include <stdexcept>
#include <string>

namespace fastsam {

enum class ErrorCode {
  kFileNotFound,         // the model directory, manifest.json or a model file does not exist
  kModelFiles,           // manifest.json or an .onnx file is malformed or inconsistent
  kProviderUnavailable,  // the requested execution provider is not in this ONNX Runtime build
  kInference,            // ONNX Runtime failed while creating a session or running a model
  kWrongCallOrder,       // e.g. predict() before set_image()
  kIo,                   // reading or writing a file failed
};

const char* to_string(ErrorCode code) noexcept;

class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, const std::string& message);
  ErrorCode code() const noexcept { return code_; }

 private:
  ErrorCode code_;
};

}  // namespace fastsam
