#include <random>

#include "fastsam/rle.hpp"
#include "harness.hpp"

using fastsam::Rle;

static std::vector<uint8_t> random_mask(int h, int w, unsigned seed, double p) {
  std::mt19937 rng(seed);
  std::bernoulli_distribution bit(p);
  std::vector<uint8_t> m(static_cast<size_t>(h) * w);
  for (auto& v : m) v = bit(rng) ? 1 : 0;
  return m;
}

TEST(rle_is_column_major_and_starts_with_zeros) {
  const uint8_t top_left[] = {1, 0, 0, 0};  // 2x2, row-major
  CHECK(fastsam::mask_to_rle(top_left, 2, 2).counts == std::vector<uint32_t>({0, 1, 3}));
  const uint8_t top_right[] = {0, 1, 0, 0};  // column-major order visits (0,0), (1,0), (0,1), (1,1)
  CHECK(fastsam::mask_to_rle(top_right, 2, 2).counts == std::vector<uint32_t>({2, 1, 1}));
}

TEST(rle_round_trips_random_masks) {
  const int sizes[][2] = {{1, 1}, {3, 7}, {16, 9}, {64, 48}, {101, 77}};
  unsigned seed = 1;
  for (const auto& s : sizes) {
    for (double p : {0.0, 0.02, 0.5, 0.97, 1.0}) {
      const auto mask = random_mask(s[0], s[1], seed++, p);
      const Rle rle = fastsam::mask_to_rle(mask.data(), s[0], s[1]);
      CHECK(fastsam::rle_to_mask(rle) == mask);
      uint64_t ones = 0;
      for (uint8_t v : mask) ones += v;
      CHECK_EQ(fastsam::rle_area(rle), ones);
      const std::string counts = fastsam::rle_to_coco_string(rle);
      const Rle back = fastsam::rle_from_coco_string(counts, s[0], s[1]);
      CHECK(back.counts == rle.counts);
    }
  }
}

TEST(coco_string_uses_5bit_groups_and_deltas) {
  Rle rle{2, 2, {0, 1, 3}};
  CHECK_EQ(fastsam::rle_to_coco_string(rle), std::string("013"));
  // 100 = 0b11'00100: low group 4 with the continuation bit (4|32)+48 = 'T', then 3 -> '3'.
  Rle big{1, 101, {1, 100}};
  CHECK_EQ(fastsam::rle_to_coco_string(big), std::string("1T3"));
  // From the 4th count on, the difference to counts[i-2] is stored: 2 - 10 = -8 -> (-8 & 31) + 48 = 'H'.
  Rle delta{1, 17, {0, 10, 5, 2}};
  CHECK_EQ(fastsam::rle_to_coco_string(delta), std::string("0:5H"));
  CHECK(fastsam::rle_from_coco_string("0:5H", 1, 17).counts == delta.counts);
}

TEST(coco_string_decoder_rejects_malformed_input) {
  CHECK_THROWS(fastsam::rle_from_coco_string("013", 3, 3), std::invalid_argument, "add up");
  CHECK_THROWS(fastsam::rle_from_coco_string("0 1", 1, 2), std::invalid_argument, "invalid character");
  CHECK_THROWS(fastsam::rle_from_coco_string("T", 1, 100), std::invalid_argument, "truncated");
  CHECK_THROWS(fastsam::rle_to_mask(Rle{2, 2, {1, 5}}), std::invalid_argument, "exceed");
}

HARNESS_MAIN()
