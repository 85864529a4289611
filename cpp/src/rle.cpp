#include "fastsam/rle.hpp"

#include <stdexcept>

namespace fastsam {

Rle mask_to_rle(const uint8_t* mask, int height, int width) {
  if (height < 0 || width < 0) throw std::invalid_argument("mask_to_rle: height and width must be >= 0");
  if (mask == nullptr && height * width > 0) throw std::invalid_argument("mask_to_rle: mask is null");
  Rle rle;
  rle.height = height;
  rle.width = width;
  uint8_t current = 0;
  uint32_t run = 0;
  for (int x = 0; x < width; ++x) {
    for (int y = 0; y < height; ++y) {
      const uint8_t value = mask[static_cast<size_t>(y) * width + x] != 0 ? 1 : 0;
      if (value != current) {
        rle.counts.push_back(run);
        run = 0;
        current = value;
      }
      ++run;
    }
  }
  rle.counts.push_back(run);
  return rle;
}

std::vector<uint8_t> rle_to_mask(const Rle& rle) {
  const size_t total = static_cast<size_t>(rle.height) * rle.width;
  std::vector<uint8_t> mask(total, 0);
  size_t position = 0;  // column-major position
  uint8_t value = 0;
  for (uint32_t count : rle.counts) {
    if (position + count > total) throw std::invalid_argument("rle_to_mask: counts exceed height*width");
    if (value) {
      for (size_t p = position; p < position + count; ++p) {
        const size_t x = p / rle.height, y = p % rle.height;
        mask[y * rle.width + x] = 1;
      }
    }
    position += count;
    value ^= 1;
  }
  if (position != total) throw std::invalid_argument("rle_to_mask: counts do not add up to height*width");
  return mask;
}

uint64_t rle_area(const Rle& rle) {
  uint64_t area = 0;
  for (size_t i = 1; i < rle.counts.size(); i += 2) area += rle.counts[i];
  return area;
}

std::string rle_to_coco_string(const Rle& rle) {
  // LEB128-like: 5 bits per char, offset 48, bit 0x20 = "more"; counts after the second are delta-coded.
  std::string out;
  for (size_t i = 0; i < rle.counts.size(); ++i) {
    long long x = rle.counts[i];
    if (i > 2) x -= static_cast<long long>(rle.counts[i - 2]);
    bool more = true;
    while (more) {
      char c = static_cast<char>(x & 0x1f);
      x >>= 5;  // arithmetic shift keeps the sign, as in pycocotools
      more = (c & 0x10) ? x != -1 : x != 0;
      if (more) c |= 0x20;
      out.push_back(static_cast<char>(c + 48));
    }
  }
  return out;
}

Rle rle_from_coco_string(const std::string& counts, int height, int width) {
  if (height < 0 || width < 0) throw std::invalid_argument("rle_from_coco_string: height and width must be >= 0");
  Rle rle;
  rle.height = height;
  rle.width = width;
  std::vector<long long> values;
  size_t p = 0;
  while (p < counts.size()) {
    long long x = 0;
    int k = 0;
    bool more = true;
    while (more) {
      if (p >= counts.size()) throw std::invalid_argument("rle_from_coco_string: truncated counts string");
      const int c = static_cast<unsigned char>(counts[p]) - 48;
      if (c < 0 || c > 63) throw std::invalid_argument("rle_from_coco_string: invalid character in counts string");
      if (k >= 12) throw std::invalid_argument("rle_from_coco_string: count too large");
      x |= static_cast<long long>(c & 0x1f) << (5 * k);
      more = (c & 0x20) != 0;
      ++p;
      ++k;
      if (!more && (c & 0x10)) x |= -1LL * (1LL << (5 * k));
    }
    if (values.size() > 2) x += values[values.size() - 2];
    if (x < 0 || x > 0xffffffffLL) throw std::invalid_argument("rle_from_coco_string: negative or huge run length");
    values.push_back(x);
  }
  unsigned long long sum = 0;
  for (long long v : values) {
    rle.counts.push_back(static_cast<uint32_t>(v));
    sum += static_cast<unsigned long long>(v);
  }
  if (sum != static_cast<unsigned long long>(height) * static_cast<unsigned long long>(width)) {
    throw std::invalid_argument("rle_from_coco_string: counts add up to " + std::to_string(sum) + ", expected " +
                                std::to_string(static_cast<unsigned long long>(height) * width));
  }
  return rle;
}

}  // namespace fastsam
