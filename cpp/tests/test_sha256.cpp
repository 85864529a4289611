// SHA-256 against the FIPS 180-2 test vectors (Appendix B and C of the standard) and streaming consistency.
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>

#include "fastsam/error.hpp"
#include "harness.hpp"
#include "sha256.hpp"

namespace fs = std::filesystem;
using fastsam::detail::Sha256;
using fastsam::detail::sha256_hex;

TEST(sha256_matches_fips_180_2_vectors) {
  CHECK_EQ(sha256_hex(""), std::string("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
  CHECK_EQ(sha256_hex("abc"), std::string("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
  // 448 bits: the padding no longer fits the first block, so a second block holds only the length.
  CHECK_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
           std::string("248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"));
  CHECK_EQ(sha256_hex(std::string(1000000, 'a')),
           std::string("cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"));
}

TEST(sha256_streaming_equals_one_shot_for_any_split) {
  std::string message;
  for (int i = 0; i < 300; ++i) message.push_back(static_cast<char>((i * 131 + 7) & 0xff));
  const std::string expected = sha256_hex(message);
  for (size_t piece : {1u, 3u, 63u, 64u, 65u, 127u}) {
    Sha256 hash;
    for (size_t at = 0; at < message.size(); at += piece) {
      hash.update(message.data() + at, std::min(piece, message.size() - at));
    }
    CHECK_EQ(hash.hex_digest(), expected);
  }
}

TEST(sha256_file_reads_the_whole_file_and_reports_a_missing_one) {
  const fs::path path = fs::temp_directory_path() / ("fastsam_test_sha256_" + std::to_string(::getpid()) + ".bin");
  // Larger than the file chunk, so more than one read is hashed.
  std::string content(5u << 20, '\0');
  for (size_t i = 0; i < content.size(); ++i) content[i] = static_cast<char>((i * 2654435761u) >> 24);
  std::ofstream(path, std::ios::binary).write(content.data(), static_cast<std::streamsize>(content.size()));
  CHECK_EQ(fastsam::detail::sha256_file_hex(path.string()), sha256_hex(content));
  fs::remove(path);
  CHECK_THROWS(fastsam::detail::sha256_file_hex(path.string()), fastsam::Error, path.string());
}

HARNESS_MAIN()
