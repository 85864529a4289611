#include "fastsam/automatic_mask_generator.hpp"

#include <algorithm>
#include <cmath>
#include <optional>
#include <stdexcept>
#include <string>

#include "fastsam/error.hpp"
#include "fastsam/image_ops.hpp"
#include "parallel.hpp"

namespace fastsam {
namespace {

AmgOptions validated(AmgOptions p) {
  auto fail = [](const std::string& msg) { throw std::invalid_argument(msg); };
  if (p.point_grids.empty()) {
    if (p.points_per_side <= 0) fail("exactly one of points_per_side or point_grids must be provided");
    p.point_grids = build_all_layer_point_grids(p.points_per_side, p.crop_n_layers, p.crop_n_points_downscale_factor);
  } else if (static_cast<int>(p.point_grids.size()) != p.crop_n_layers + 1) {
    fail("point_grids must hold crop_n_layers + 1 = " + std::to_string(p.crop_n_layers + 1) + " grids, got " +
         std::to_string(p.point_grids.size()));
  }
  for (const auto& grid : p.point_grids) {
    if (grid.empty()) fail("point_grids must not contain an empty grid");
    for (const PointD& q : grid)
      if (!(q.x >= 0.0 && q.x <= 1.0 && q.y >= 0.0 && q.y <= 1.0)) fail("point_grids must hold points in [0, 1]^2");
  }
  // A NaN threshold would silently filter out every mask (every comparison with it is false).
  for (const auto& [name, value] : {std::pair<const char*, float>{"pred_iou_thresh", p.pred_iou_thresh},
                                    {"stability_score_thresh", p.stability_score_thresh},
                                    {"stability_score_offset", p.stability_score_offset}}) {
    if (!std::isfinite(value)) fail(std::string(name) + " must be a finite number, got " + std::to_string(value));
  }
  for (const auto& [name, value] : {std::pair<const char*, float>{"box_nms_thresh", p.box_nms_thresh},
                                    {"crop_nms_thresh", p.crop_nms_thresh}}) {
    if (!(value >= 0.0f && value <= 1.0f)) fail(std::string(name) + " must be in [0, 1], got " + std::to_string(value));
  }
  if (p.points_per_batch <= 0) fail("points_per_batch must be > 0, got " + std::to_string(p.points_per_batch));
  if (p.crop_n_layers < 0) fail("crop_n_layers must be >= 0");
  if (p.crop_n_points_downscale_factor <= 0) fail("crop_n_points_downscale_factor must be > 0");
  if (p.min_mask_region_area < 0) fail("min_mask_region_area must be >= 0");
  if (!(p.crop_overlap_ratio >= 0.0 && p.crop_overlap_ratio < 1.0)) fail("crop_overlap_ratio must be in [0, 1)");
  return p;
}

// Masks kept from one crop, before uncropping of boxes and points.
struct CropMask {
  Rle rle;
  BoxI box;  // crop coordinates until NMS, then image coordinates
  float iou;
  float stability;
  PointD point;
};

}  // namespace

struct AutomaticMaskGenerator::Impl {
  AmgOptions params;
  Predictor predictor;

  Impl(const std::string& model_dir, const AmgOptions& p, const RuntimeOptions& runtime)
      : params(validated(p)), predictor(model_dir, runtime) {
    predictor.load_split_decoder();
  }

  void process_crop(const uint8_t* rgb, int im_h, int im_w, const BoxI& crop, int layer, std::vector<CropMask>& out) {
    const int crop_w = crop.x1 - crop.x0, crop_h = crop.y1 - crop.y0;
    std::vector<uint8_t> cropped(static_cast<size_t>(crop_h) * crop_w * 3);
    for (int y = 0; y < crop_h; ++y) {
      std::copy_n(rgb + (static_cast<size_t>(y + crop.y0) * im_w + crop.x0) * 3, static_cast<size_t>(crop_w) * 3,
                  cropped.data() + static_cast<size_t>(y) * crop_w * 3);
    }
    predictor.set_image(cropped.data(), crop_h, crop_w);
    const ModelInfo& info = predictor.model_info();
    const auto input = predictor.input_size();
    const size_t plane = static_cast<size_t>(info.low_res_size) * info.low_res_size;
    const BoxI orig_box{0, 0, im_w, im_h};

    std::vector<CropMask> kept;
    const std::vector<PointD>& grid = params.point_grids[layer];
    const int n = static_cast<int>(grid.size());
    std::vector<float> coords, labels, iou, low_res;
    std::vector<uint8_t> selected;
    const int threads = detail::worker_count(predictor.options().intra_op_threads);
    for (int start = 0; start < n; start += params.points_per_batch) {
      const int batch = std::min(params.points_per_batch, n - start);
      std::vector<PointD> points(batch);
      coords.clear();
      labels.clear();
      for (int i = 0; i < batch; ++i) {
        points[i] = {grid[start + i].x * crop_w, grid[start + i].y * crop_h};
        const PointD t = apply_coords(points[i], crop_h, crop_w, info.image_size);
        // Point plus SAM's padding point (no box prompt).
        coords.insert(coords.end(), {static_cast<float>(t.x), static_cast<float>(t.y), 0.0f, 0.0f});
        labels.insert(labels.end(), {1.0f, -1.0f});
      }
      // Masks (multimask tokens 1..3 of each point) that pass the IoU filter, in the reference's order; the
      // decoder upscales only prompts with at least one such mask.
      const float thresh = params.pred_iou_thresh;
      auto passes = [thresh](float score) { return !(thresh > 0.0f) || score > thresh; };
      predictor.decode_batch_selected(
          coords, labels, batch, 2,
          [&passes](const float* scores) { return passes(scores[1]) || passes(scores[2]) || passes(scores[3]); },
          iou, low_res, selected);
      std::vector<int> candidates;
      for (int k = 0; k < batch * 3; ++k) {
        if (passes(iou[static_cast<size_t>(k / 3) * 4 + 1 + k % 3])) candidates.push_back(k);
      }
      std::vector<std::optional<CropMask>> results(candidates.size());
      detail::parallel_for(static_cast<int>(candidates.size()), threads, [&](int c) {
        const int i = candidates[c] / 3, token = 1 + candidates[c] % 3;
        const float score = iou[static_cast<size_t>(i) * 4 + token];
        const float* lr = low_res.data() + (static_cast<size_t>(i) * 4 + token) * plane;
        const std::vector<float> logits = postprocess_mask(lr, info.low_res_size, info.low_res_size,
                                                           info.image_size, input[0], input[1], crop_h, crop_w);
        // Stability: IoU of the masks thresholded at threshold +/- offset.
        const float hi = info.mask_threshold + params.stability_score_offset;
        const float lo = info.mask_threshold - params.stability_score_offset;
        int64_t inter = 0, uni = 0;
        for (float v : logits) {
          inter += v > hi;
          uni += v > lo;
        }
        const float stability = static_cast<float>(inter) / static_cast<float>(uni);
        if (params.stability_score_thresh > 0.0f && !(stability >= params.stability_score_thresh)) return;
        std::vector<uint8_t> binary(logits.size());
        for (size_t k = 0; k < logits.size(); ++k) binary[k] = logits[k] > info.mask_threshold ? 1 : 0;
        const BoxI box = mask_to_box(binary.data(), crop_h, crop_w);
        if (is_box_near_crop_edge(box, crop, orig_box)) return;
        CropMask cm;
        if (crop_w == im_w && crop_h == im_h) {
          cm.rle = mask_to_rle(binary.data(), im_h, im_w);
        } else {
          std::vector<uint8_t> full(static_cast<size_t>(im_h) * im_w, 0);
          for (int y = 0; y < crop_h; ++y) {
            std::copy_n(binary.data() + static_cast<size_t>(y) * crop_w, crop_w,
                        full.data() + static_cast<size_t>(y + crop.y0) * im_w + crop.x0);
          }
          cm.rle = mask_to_rle(full.data(), im_h, im_w);
        }
        cm.box = box;
        cm.iou = score;
        cm.stability = stability;
        cm.point = points[i];
        results[c] = std::move(cm);
      });
      for (auto& r : results)
        if (r) kept.push_back(std::move(*r));
    }
    predictor.reset_image();

    std::vector<BoxF> boxes;
    std::vector<float> scores;
    for (const CropMask& cm : kept) {
      boxes.push_back({static_cast<float>(cm.box.x0), static_cast<float>(cm.box.y0), static_cast<float>(cm.box.x1),
                       static_cast<float>(cm.box.y1)});
      scores.push_back(cm.iou);
    }
    for (int idx : nms(boxes, scores, params.box_nms_thresh)) {
      CropMask cm = std::move(kept[idx]);
      cm.box = {cm.box.x0 + crop.x0, cm.box.y0 + crop.y0, cm.box.x1 + crop.x0, cm.box.y1 + crop.y0};
      cm.point = {cm.point.x + crop.x0, cm.point.y + crop.y0};
      out.push_back(std::move(cm));
    }
  }

  std::vector<MaskRecord> generate(const uint8_t* rgb, int height, int width) {
    if (rgb == nullptr) throw std::invalid_argument("generate: image data is null");
    if (height <= 0 || width <= 0) throw std::invalid_argument("generate: image must be non-empty");
    const CropBoxes crops = generate_crop_boxes(height, width, params.crop_n_layers, params.crop_overlap_ratio);
    std::vector<CropMask> masks;
    std::vector<BoxI> mask_crops;
    for (size_t c = 0; c < crops.boxes.size(); ++c) {
      const size_t before = masks.size();
      process_crop(rgb, height, width, crops.boxes[c], crops.layer_idxs[c], masks);
      mask_crops.insert(mask_crops.end(), masks.size() - before, crops.boxes[c]);
    }
    std::vector<int> order(masks.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int>(i);
    if (crops.boxes.size() > 1) {
      // Across crops prefer masks from smaller crops.
      std::vector<BoxF> boxes;
      std::vector<float> scores;
      for (size_t i = 0; i < masks.size(); ++i) {
        const BoxI& b = masks[i].box;
        const BoxI& c = mask_crops[i];
        boxes.push_back({static_cast<float>(b.x0), static_cast<float>(b.y0), static_cast<float>(b.x1), static_cast<float>(b.y1)});
        scores.push_back(1.0f / static_cast<float>(static_cast<int64_t>(c.x1 - c.x0) * (c.y1 - c.y0)));
      }
      order = nms(boxes, scores, params.crop_nms_thresh);
    }
    if (params.min_mask_region_area > 0 && !order.empty()) {
      order = remove_small_regions_and_nms(masks, order, height, width);
    }
    std::vector<MaskRecord> records;
    for (int idx : order) {
      MaskRecord r;
      r.rle = std::move(masks[idx].rle);
      r.area = rle_area(r.rle);
      r.bbox = masks[idx].box;
      r.predicted_iou = masks[idx].iou;
      r.stability_score = masks[idx].stability;
      r.point = masks[idx].point;
      r.crop_box = mask_crops[idx];
      if (params.output_mode == OutputMode::kBinaryMask) r.segmentation = rle_to_mask(r.rle);
      if (params.output_mode == OutputMode::kCocoRle) r.coco_counts = rle_to_coco_string(r.rle);
      records.push_back(std::move(r));
    }
    return records;
  }

  // SamAutomaticMaskGenerator.postprocess_small_regions over the masks listed in `order`.
  std::vector<int> remove_small_regions_and_nms(std::vector<CropMask>& masks, const std::vector<int>& order,
                                                int height, int width) {
    const double area = params.min_mask_region_area;
    std::vector<std::vector<uint8_t>> cleaned;
    std::vector<BoxF> boxes;
    std::vector<BoxI> int_boxes;
    std::vector<float> scores;
    for (int idx : order) {
      std::vector<uint8_t> mask = rle_to_mask(masks[idx].rle);
      const bool changed_holes = remove_small_regions(mask, height, width, area, RegionMode::kHoles);
      const bool changed_islands = remove_small_regions(mask, height, width, area, RegionMode::kIslands);
      const BoxI b = mask_to_box(mask.data(), height, width);
      int_boxes.push_back(b);
      boxes.push_back({static_cast<float>(b.x0), static_cast<float>(b.y0), static_cast<float>(b.x1), static_cast<float>(b.y1)});
      scores.push_back((changed_holes || changed_islands) ? 0.0f : 1.0f);
      cleaned.push_back(std::move(mask));
    }
    const float nms_thresh = std::max(params.box_nms_thresh, params.crop_nms_thresh);
    std::vector<int> result;
    for (int k : nms(boxes, scores, nms_thresh)) {
      const int idx = order[k];
      if (scores[k] == 0.0f) {
        masks[idx].rle = mask_to_rle(cleaned[k].data(), height, width);
        masks[idx].box = int_boxes[k];
      }
      result.push_back(idx);
    }
    return result;
  }
};

AutomaticMaskGenerator::AutomaticMaskGenerator(const std::string& model_dir, const AmgOptions& params,
                                               const RuntimeOptions& runtime)
    : impl_(std::make_unique<Impl>(model_dir, params, runtime)) {}

AutomaticMaskGenerator::~AutomaticMaskGenerator() = default;
AutomaticMaskGenerator::AutomaticMaskGenerator(AutomaticMaskGenerator&&) noexcept = default;
AutomaticMaskGenerator& AutomaticMaskGenerator::operator=(AutomaticMaskGenerator&&) noexcept = default;

std::vector<MaskRecord> AutomaticMaskGenerator::generate(const uint8_t* rgb, int height, int width) {
  return impl_->generate(rgb, height, width);
}

const AmgOptions& AutomaticMaskGenerator::params() const { return impl_->params; }
Predictor& AutomaticMaskGenerator::predictor() { return impl_->predictor; }

}  // namespace fastsam
