#include "fastsam/error.hpp"

namespace fastsam {

const char* to_string(ErrorCode code) noexcept {
  switch (code) {
    case ErrorCode::kFileNotFound: return "file_not_found";
    case ErrorCode::kModelFiles: return "model_files";
    case ErrorCode::kProviderUnavailable: return "provider_unavailable";
    case ErrorCode::kInference: return "inference";
    case ErrorCode::kWrongCallOrder: return "wrong_call_order";
    case ErrorCode::kIo: return "io";
  }
  return "unknown";
}

Error::Error(ErrorCode code, const std::string& message)
    : std::runtime_error(std::string("fastsam [") + to_string(code) + "]: " + message), code_(code) {}

}  // namespace fastsam
