// RLE encoding of arbitrary masks: mask -> RLE -> COCO string -> RLE -> mask must be the identity (nonzero
// bytes as 1), and the RLE must be canonical (only the first count may be 0).
#include <fuzzer/FuzzedDataProvider.h>

#include <cstdint>
#include <cstdlib>
#include <vector>

#include "fastsam/rle.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  const int height = in.ConsumeIntegralInRange<int>(0, 128);
  const int width = in.ConsumeIntegralInRange<int>(0, 128);
  std::vector<uint8_t> mask = in.ConsumeBytes<uint8_t>(static_cast<size_t>(height) * width);
  mask.resize(static_cast<size_t>(height) * width, 0);
  const fastsam::Rle rle = fastsam::mask_to_rle(mask.data(), height, width);
  for (size_t i = 1; i < rle.counts.size(); ++i)
    if (rle.counts[i] == 0 && height * width > 0) std::abort();
  const fastsam::Rle decoded = fastsam::rle_from_coco_string(fastsam::rle_to_coco_string(rle), height, width);
  if (decoded.counts != rle.counts) std::abort();
  const std::vector<uint8_t> back = fastsam::rle_to_mask(decoded);
  for (size_t i = 0; i < mask.size(); ++i)
    if (back[i] != (mask[i] != 0 ? 1 : 0)) std::abort();
  return 0;
}
