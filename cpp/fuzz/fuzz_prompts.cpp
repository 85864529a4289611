// Prompt validation and the coordinate transform behind it, on arbitrary floats (NaN, inf, huge, negative)
// and image sizes: bad prompts must end in std::invalid_argument; accepted prompts must be finite, inside
// the image, and map into the model's input frame.
#include <fuzzer/FuzzedDataProvider.h>

#include <array>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "fastsam/geometry.hpp"
#include "prompt_checks.hpp"

namespace {

// Raw bit patterns, so NaN, inf and denormals come up as often as ordinary values.
float any_float(FuzzedDataProvider& in) {
  const uint32_t bits = in.ConsumeIntegral<uint32_t>();
  float v;
  std::memcpy(&v, &bits, sizeof v);
  return v;
}

// The accepted point (x, y) maps into [0, long_side] x [0, long_side] of the resized image.
void check_mapped(float x, float y, int height, int width, int long_side) {
  const fastsam::PointD p = fastsam::apply_coords({x, y}, height, width, long_side);
  const double slack = 1e-6 * long_side + 1e-9;
  if (!std::isfinite(p.x) || !std::isfinite(p.y)) std::abort();
  if (p.x < 0 || p.y < 0 || p.x > long_side + slack || p.y > long_side + slack) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  const int height = in.ConsumeIntegralInRange<int>(1, 1 << 16);
  const int width = in.ConsumeIntegralInRange<int>(1, 1 << 16);
  const int long_side = in.ConsumeIntegralInRange<int>(1, 4096);
  const int n = in.ConsumeIntegralInRange<int>(0, 8);
  std::vector<std::array<float, 2>> points;
  std::vector<int> labels;
  for (int i = 0; i < n; ++i) {
    points.push_back({any_float(in), any_float(in)});
    labels.push_back(in.ConsumeIntegralInRange<int>(-2, 2));
  }
  if (in.ConsumeBool()) labels.push_back(1);  // sometimes one label too many
  const std::array<float, 4> box = {any_float(in), any_float(in), any_float(in), any_float(in)};

  bool points_ok = true;
  try {
    fastsam::detail::check_points(points, labels, height, width);
  } catch (const std::invalid_argument&) {
    points_ok = false;
  }
  if (points_ok) {
    if (points.size() != labels.size()) std::abort();
    for (size_t i = 0; i < points.size(); ++i) {
      if (labels[i] != 0 && labels[i] != 1) std::abort();
      check_mapped(points[i][0], points[i][1], height, width, long_side);
    }
  }
  try {
    fastsam::detail::check_box("box", box, height, width);
  } catch (const std::invalid_argument&) {
    return 0;
  }
  if (!(box[0] <= box[2] && box[1] <= box[3])) std::abort();
  check_mapped(box[0], box[1], height, width, long_side);
  check_mapped(box[2], box[3], height, width, long_side);
  return 0;
}
