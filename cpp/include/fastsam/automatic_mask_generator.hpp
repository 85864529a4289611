#pragma once
// fastsam::AutomaticMaskGenerator: SamAutomaticMaskGenerator over fastsam::Predictor.
#include <memory>
#include <string>
#include <vector>

#include "fastsam/geometry.hpp"
#include "fastsam/options.hpp"
#include "fastsam/predictor.hpp"
#include "fastsam/rle.hpp"

namespace fastsam {

// One generated mask; fields as in SamAutomaticMaskGenerator's dicts.
struct MaskRecord {
  Rle rle;                            // uncompressed RLE at the original size (always filled)
  std::vector<uint8_t> segmentation;  // HxW (0/1), only for OutputMode::kBinaryMask
  std::string coco_counts;            // COCO compressed counts, only for OutputMode::kCocoRle
  uint64_t area = 0;
  BoxI bbox{};                        // XYXY inclusive-max box as batched_mask_to_box; XYWH = (x0, y0, x1-x0, y1-y0)
  float predicted_iou = 0.0f;
  float stability_score = 0.0f;
  PointD point{};                     // the grid point that produced the mask, original pixels
  BoxI crop_box{};                    // XYXY
};

class AutomaticMaskGenerator {
 public:
  // Validates `params` (std::invalid_argument) and creates a Predictor on model_dir.
  AutomaticMaskGenerator(const std::string& model_dir, const AmgOptions& params = {},
                         const RuntimeOptions& runtime = {});
  ~AutomaticMaskGenerator();
  AutomaticMaskGenerator(AutomaticMaskGenerator&&) noexcept;
  AutomaticMaskGenerator& operator=(AutomaticMaskGenerator&&) noexcept;

  // rgb: height*width*3 bytes, HWC RGB uint8.
  std::vector<MaskRecord> generate(const uint8_t* rgb, int height, int width);

  const AmgOptions& params() const;
  Predictor& predictor();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace fastsam
