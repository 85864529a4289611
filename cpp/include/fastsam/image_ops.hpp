#pragma once
// Image and mask resampling with the exact arithmetic of the PyTorch/PIL reference.
#include <cstdint>
#include <vector>

namespace fastsam {

// 8-bit interleaved image (row-major, `channels` bytes per pixel).
struct Image8 {
  int height = 0;
  int width = 0;
  int channels = 3;
  std::vector<uint8_t> data;
};

// PIL `Image.resize((out_w, out_h), Image.BILINEAR)` on an 8-bit image: antialiased (support scaled by the
// downscale factor), separable, horizontal pass first with 22-bit fixed-point coefficients, 8-bit intermediate.
// Bit-identical to Pillow for upscales and for wide or square images (all golden fixtures); Pillow 13 runs
// the vertical pass first for some downscales of tall images (h/w > ~2), where single pixels then differ by 1.
Image8 resize_bilinear_pil(const uint8_t* pixels, int height, int width, int channels, int out_h, int out_w);

// torch.nn.functional.interpolate(mode="bilinear", align_corners=False) of one float plane (HxW row-major)
// to (out_h, out_w), float32 arithmetic in PyTorch's evaluation order.
std::vector<float> resize_bilinear_torch(const float* plane, int height, int width, int out_h, int out_w);

// Sam.postprocess_masks for one low-res logit plane (low_h x low_w: image_size / 4 square): bilinear to
// image_size^2, crop to input_size (input_h x input_w), bilinear to original size. Returns orig_h*orig_w logits.
std::vector<float> postprocess_mask(const float* low_res, int low_h, int low_w, int image_size, int input_h,
                                    int input_w, int orig_h, int orig_w);

// amg.remove_small_regions: mode holes (fill background components smaller than area_thresh) or islands
// (drop foreground components smaller than area_thresh; keep the largest if all are small), 8-connectivity.
// Modifies `mask` (HxW, 0/1) in place and returns whether anything changed.
enum class RegionMode { kHoles, kIslands };
bool remove_small_regions(std::vector<uint8_t>& mask, int height, int width, double area_thresh, RegionMode mode);

}  // namespace fastsam
