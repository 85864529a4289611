// manifest.json parsing (JSON reader + manifest schema) on arbitrary bytes: malformed input must end in
// fastsam::Error(kModelFiles), never a crash, an uncaught exception or undefined behaviour; what it accepts
// must satisfy the invariants the Predictor relies on.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "fastsam/error.hpp"
#include "manifest.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  fastsam::detail::Manifest m;
  try {
    m = fastsam::detail::parse_manifest(text, "/model");
  } catch (const fastsam::Error& e) {
    if (e.code() != fastsam::ErrorCode::kModelFiles) std::abort();
    return 0;
  }
  if (m.image_size <= 0 || m.image_size % 16 != 0) std::abort();
  for (const auto& [key, entry] : m.models) {
    if (entry.key != key || entry.path.empty()) std::abort();
    if (!entry.sha256.empty() && entry.sha256.size() != 64) std::abort();
  }
  return 0;
}
