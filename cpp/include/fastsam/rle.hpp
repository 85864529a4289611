#pragma once
// Run-length encoding of binary masks in COCO's convention: column-major (Fortran) order, counts start with
// the number of leading zeros (possibly 0), alternating zeros and ones.
#include <cstdint>
#include <string>
#include <vector>

namespace fastsam {

struct Rle {
  int height = 0;
  int width = 0;
  std::vector<uint32_t> counts;
};

// mask: H*W bytes, row-major (HxW as NumPy/OpenCV store it), nonzero = foreground.
Rle mask_to_rle(const uint8_t* mask, int height, int width);
// Returns H*W bytes (0/1), row-major.
std::vector<uint8_t> rle_to_mask(const Rle& rle);
// Number of foreground pixels (sum of the odd counts).
uint64_t rle_area(const Rle& rle);
// COCO compressed counts string, byte-identical to pycocotools' `encode(...)["counts"]`.
std::string rle_to_coco_string(const Rle& rle);
// Inverse of rle_to_coco_string; throws std::invalid_argument on a malformed string or one whose counts do
// not add up to height*width.
Rle rle_from_coco_string(const std::string& counts, int height, int width);

}  // namespace fastsam
