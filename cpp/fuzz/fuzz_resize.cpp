// Image and mask resampling on arbitrary sizes and pixels: PIL-style bilinear resize of 1-4 channel images
// and the mask post-processing (low-res logits -> padded input frame -> original size), plus the
// longest-side shape on any int sizes. Outputs must have the asked-for size and stay within the input's
// value range (both filters are convex combinations); bad sizes must end in std::invalid_argument.
#include <fuzzer/FuzzedDataProvider.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <stdexcept>
#include <vector>

#include "fastsam/geometry.hpp"
#include "fastsam/image_ops.hpp"

namespace {

void fuzz_pil(FuzzedDataProvider& in) {
  const int h = in.ConsumeIntegralInRange<int>(1, 48), w = in.ConsumeIntegralInRange<int>(1, 48);
  const int out_h = in.ConsumeIntegralInRange<int>(1, 48), out_w = in.ConsumeIntegralInRange<int>(1, 48);
  const int channels = in.ConsumeIntegralInRange<int>(1, 4);
  std::vector<uint8_t> pixels = in.ConsumeBytes<uint8_t>(static_cast<size_t>(h) * w * channels);
  pixels.resize(static_cast<size_t>(h) * w * channels, 0);
  const fastsam::Image8 out = fastsam::resize_bilinear_pil(pixels.data(), h, w, channels, out_h, out_w);
  if (out.height != out_h || out.width != out_w || out.channels != channels) std::abort();
  if (out.data.size() != static_cast<size_t>(out_h) * out_w * channels) std::abort();
  for (int c = 0; c < channels; ++c) {
    uint8_t lo = 255, hi = 0;
    for (size_t i = c; i < pixels.size(); i += channels) lo = std::min(lo, pixels[i]), hi = std::max(hi, pixels[i]);
    for (size_t i = c; i < out.data.size(); i += channels)
      if (out.data[i] < lo || out.data[i] > hi) std::abort();
  }
}

void fuzz_postprocess(FuzzedDataProvider& in) {
  const int low = in.ConsumeIntegralInRange<int>(1, 16);
  const int image_size = in.ConsumeIntegralInRange<int>(1, 64);
  const int input_h = in.ConsumeIntegralInRange<int>(1, image_size), input_w = in.ConsumeIntegralInRange<int>(1, image_size);
  const int orig_h = in.ConsumeIntegralInRange<int>(1, 64), orig_w = in.ConsumeIntegralInRange<int>(1, 64);
  std::vector<float> logits(static_cast<size_t>(low) * low);
  for (float& v : logits) v = in.ConsumeFloatingPointInRange<float>(-1e4f, 1e4f);
  const std::vector<float> out =
      fastsam::postprocess_mask(logits.data(), low, low, image_size, input_h, input_w, orig_h, orig_w);
  if (out.size() != static_cast<size_t>(orig_h) * orig_w) std::abort();
  const auto [lo, hi] = std::minmax_element(logits.begin(), logits.end());
  const float slack = 1e-5f * std::max(std::fabs(*lo), std::fabs(*hi)) + 1e-6f;
  for (float v : out)
    if (!(v >= *lo - slack && v <= *hi + slack)) std::abort();
}

void fuzz_shape(FuzzedDataProvider& in) {
  const int h = in.ConsumeIntegral<int>(), w = in.ConsumeIntegral<int>(), side = in.ConsumeIntegral<int>();
  std::pair<int, int> shape;
  try {
    shape = fastsam::get_preprocess_shape(h, w, side);
  } catch (const std::invalid_argument&) {
    return;
  }
  if (shape.first < 0 || shape.second < 0 || std::max(shape.first, shape.second) != side) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  // Valid sizes only for the resamplers: an exception there is a finding, so it is not caught.
  switch (in.ConsumeIntegralInRange<int>(0, 2)) {
    case 0: fuzz_pil(in); break;
    case 1: fuzz_postprocess(in); break;
    default: fuzz_shape(in); break;
  }
  return 0;
}
