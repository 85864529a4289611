// COCO compressed-RLE decoding on arbitrary strings and mask sizes: a malformed string must end in
// std::invalid_argument; an accepted one must decode to a mask of the right size whose area matches, and
// re-encoding that mask must give the same mask back.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstdint>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "fastsam/rle.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  // Up to 300x300 keeps each input cheap while covering multi-character counts.
  const int height = in.ConsumeIntegralInRange<int>(-1, 300);
  const int width = in.ConsumeIntegralInRange<int>(-1, 300);
  const std::string counts = in.ConsumeRemainingBytesAsString();
  fastsam::Rle rle;
  try {
    rle = fastsam::rle_from_coco_string(counts, height, width);
  } catch (const std::invalid_argument&) {
    return 0;
  }
  const std::vector<uint8_t> mask = fastsam::rle_to_mask(rle);
  if (mask.size() != static_cast<size_t>(height) * width) std::abort();
  uint64_t area = 0;
  for (uint8_t v : mask) area += v;
  if (area != fastsam::rle_area(rle)) std::abort();
  const fastsam::Rle again = fastsam::mask_to_rle(mask.data(), height, width);
  if (fastsam::rle_to_mask(fastsam::rle_from_coco_string(fastsam::rle_to_coco_string(again), height, width)) != mask)
    std::abort();
  return 0;
}
