#pragma once
// fastsam::Predictor: SamPredictor over ONNX Runtime (encoder.onnx + decoder_batched.onnx from sam-export).
#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "fastsam/options.hpp"

namespace fastsam {

struct ModelInfo {
  std::string model_type;
  int image_size = 1024;
  float mask_threshold = 0.0f;
  int low_res_size = 256;      // side of the decoder's low-res logits: image_size / 4
  int embedding_channels = 256;
  int embedding_size = 64;     // side of the image embedding: image_size / 16
};

// Masks of one prompt (or of each prompt of a batch, concatenated): C masks at the original image size.
struct Prediction {
  int num_masks = 0;                    // C: 3 with multimask_output, else 1
  int height = 0, width = 0;            // original image size
  int low_res_size = 256;               // L = image_size / 4 (256 at 1024 px)
  std::vector<uint8_t> masks;           // C*H*W (0/1), empty when return_logits
  std::vector<float> mask_logits;       // C*H*W logits, only when return_logits
  std::vector<float> iou_predictions;   // C
  std::vector<float> low_res_logits;    // C*L*L
};

// Thread safety: a Predictor holds the current image, so calls on one Predictor must not overlap; give each
// thread its own. Separate Predictors (and AutomaticMaskGenerators) share no mutable state and may run
// concurrently, with the same results as one after the other (tests/test_runtime_threads.py).
class Predictor {
 public:
  // Reads <model_dir>/manifest.json and creates ONNX Runtime sessions for the encoder and the batched decoder.
  // Throws fastsam::Error (kFileNotFound, kModelFiles, kProviderUnavailable, kInference).
  explicit Predictor(const std::string& model_dir, const RuntimeOptions& options = {});
  ~Predictor();
  Predictor(Predictor&&) noexcept;
  Predictor& operator=(Predictor&&) noexcept;
  Predictor(const Predictor&) = delete;
  Predictor& operator=(const Predictor&) = delete;

  // rgb: height*width*3 bytes, HWC RGB uint8. Resizes the longest side to image_size (PIL bilinear) and runs
  // the encoder.
  void set_image(const uint8_t* rgb, int height, int width);
  // Same for HWC BGR (OpenCV's order).
  void set_image_bgr(const uint8_t* bgr, int height, int width);
  void reset_image();
  bool is_image_set() const;

  // point_coords: N x (x, y) in original-image pixels; point_labels: N values (1 foreground, 0 background);
  // box: XYXY in original-image pixels; mask_input: empty or 1xLxL low-res logits from a previous call
  // (L = model_info().low_res_size = image_size / 4, 256 at 1024 px).
  Prediction predict(const std::vector<std::array<float, 2>>& point_coords = {},
                     const std::vector<int>& point_labels = {},
                     const std::optional<std::array<float, 4>>& box = std::nullopt,
                     const std::vector<float>& mask_input = {}, bool multimask_output = true,
                     bool return_logits = false);

  // B boxes (XYXY, original pixels) in one decoder call; returns B predictions.
  std::vector<Prediction> predict_boxes(const std::vector<std::array<float, 4>>& boxes,
                                        bool multimask_output = true, bool return_logits = false);

  // Low-level batched decode used by the mask generator: B prompts of N points already in the model's
  // input frame (after apply_coords). Returns iou_predictions (B*4) and low_res_logits (B*4*L*L, L =
  // model_info().low_res_size = image_size / 4) of all four mask tokens (token 0 = single-mask output, 1..3 =
  // multimask outputs).
  void decode_batch(const std::vector<float>& point_coords, const std::vector<float>& point_labels, int batch,
                    int num_points, std::vector<float>& iou_predictions, std::vector<float>& low_res_logits);

  // decode_batch for the mask generator's filter: low_res_logits are computed only for the prompts whose four
  // IoU predictions satisfy `wanted` (selected[b] = 1); the others' logits are left unspecified. Once
  // load_split_decoder() has opened the export's split decoder (decoder_head + decoder_masks, fp32) their
  // upscaling is skipped, else all are decoded. `wanted` must be thread-safe (it may be called from several
  // threads).
  void decode_batch_selected(const std::vector<float>& point_coords, const std::vector<float>& point_labels,
                             int batch, int num_points, const std::function<bool(const float*)>& wanted,
                             std::vector<float>& iou_predictions, std::vector<float>& low_res_logits,
                             std::vector<uint8_t>& selected);
  // Opens the export's split decoder for decode_batch_selected (the AutomaticMaskGenerator does this); returns
  // false when the export has none for this precision (older exports, int8). Throws like the constructor.
  bool load_split_decoder();
  // Whether decode_batch_selected can skip work (load_split_decoder() succeeded).
  bool has_split_decoder() const;

  // 1 x 256 x S x S image embedding of the current image (S = model_info().embedding_size = image_size / 16,
  // 64 at 1024 px).
  std::vector<float> get_image_embedding() const;

  const ModelInfo& model_info() const;
  std::array<int, 2> original_size() const;  // (H, W) of the current image
  std::array<int, 2> input_size() const;     // (H, W) after resizing the longest side
  const RuntimeOptions& options() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace fastsam
