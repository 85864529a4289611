#pragma once
// SHA-256 (FIPS 180-4) for checking model files against manifest.json's digests. Private to the library.
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

namespace fastsam::detail {

class Sha256 {
 public:
  Sha256();
  void update(const void* data, size_t size);
  // Lower-case hex digest (64 characters); the object must not be updated afterwards.
  std::string hex_digest();

 private:
  void compress(const uint8_t* block);

  std::array<uint32_t, 8> state_;
  std::array<uint8_t, 64> buffer_{};
  size_t buffered_ = 0;
  uint64_t total_bytes_ = 0;
};

std::string sha256_hex(const std::string& data);
// Streams the file in large chunks; throws fastsam::Error(kFileNotFound) when it cannot be opened and
// fastsam::Error(kModelFiles) when reading fails.
std::string sha256_file_hex(const std::string& path);

}  // namespace fastsam::detail
