// Predictor / AutomaticMaskGenerator on a real export in FASTSAM_RT_MODEL_DIR: .ci/test points it at the standalone
// model it exports itself (tests/standalone_model.py, image size 256), so no ../shared is needed; any export works,
// sizes are read from its manifest. Skipped (exit 77) only when the variable is unset. Runs under the sanitizer
// build too, so every ORT call path is checked for memory errors.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstdio>

#include "fastsam/fastsam.hpp"
#include "harness.hpp"

using namespace fastsam;

static std::string model_dir() {
  const char* dir = std::getenv("FASTSAM_RT_MODEL_DIR");
  return dir ? dir : "";
}

// A deterministic 120x160 RGB test pattern: a flat disc on a gradient.
static std::vector<uint8_t> pattern(int h, int w) {
  std::vector<uint8_t> img(static_cast<size_t>(h) * w * 3);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      uint8_t* p = &img[(static_cast<size_t>(y) * w + x) * 3];
      const bool inside = (x - 60) * (x - 60) + (y - 50) * (y - 50) < 900;
      p[0] = inside ? 220 : static_cast<uint8_t>(x);
      p[1] = inside ? 40 : static_cast<uint8_t>(y);
      p[2] = inside ? 30 : 128;
    }
  return img;
}

TEST(predictor_outputs_are_consistent) {
  const int h = 120, w = 160;
  const auto img = pattern(h, w);
  Predictor predictor(model_dir());
  CHECK_THROWS(predictor.predict({{10, 10}}, {1}), Error, "set_image");
  predictor.set_image(img.data(), h, w);
  const ModelInfo& info = predictor.model_info();
  CHECK(predictor.input_size() == (std::array<int, 2>{info.image_size * 3 / 4, info.image_size}));  // 4:3 image
  const Prediction p = predictor.predict({{60, 50}}, {1});
  CHECK_EQ(p.num_masks, 3);
  CHECK_EQ(p.masks.size(), 3u * h * w);
  CHECK_EQ(p.low_res_logits.size(), 3u * info.low_res_size * info.low_res_size);
  // The batched call returns, box by box, what single calls return.
  const std::vector<std::array<float, 4>> boxes = {{30, 20, 90, 80}, {0, 0, 159, 119}};
  const std::vector<Prediction> batch = predictor.predict_boxes(boxes, false);
  CHECK_EQ(batch.size(), 2u);
  for (size_t b = 0; b < boxes.size(); ++b) {
    const Prediction single = predictor.predict({}, {}, boxes[b], {}, false);
    CHECK_NEAR(single.iou_predictions[0], batch[b].iou_predictions[0], 1e-4);
    size_t differing = 0;
    for (size_t i = 0; i < single.masks.size(); ++i) differing += single.masks[i] != batch[b].masks[i];
    CHECK(differing <= single.masks.size() / 1000);
  }
  CHECK_THROWS(predictor.predict({{1, 2}}, {1, 0}), std::invalid_argument, "one label per point");
  CHECK_THROWS(predictor.predict({}, {}, std::array<float, 4>{5, 5, 1, 1}), std::invalid_argument, "XYXY");
}

// `batch` one-point prompts (point + padding point) spread over the model frame of a 4:3 image (side x 3/4 side).
static void point_prompts(int batch, float side, std::vector<float>& coords, std::vector<float>& labels) {
  for (int b = 0; b < batch; ++b) {
    coords.insert(coords.end(), {side * (0.05f + 0.9f * b / batch), side * (0.1f + 0.12f * (b % 5)), 0.0f, 0.0f});
    labels.insert(labels.end(), {1.0f, -1.0f});
  }
}

// Default options (data-parallel decoding) and one ORT thread (sequential runs).
static std::vector<RuntimeOptions> threading_options() {
  RuntimeOptions one_thread;
  one_thread.intra_op_threads = 1;
  return {RuntimeOptions{}, one_thread};
}

TEST(batched_and_selected_decoding_fill_each_prompt_slot) {
  // 19 prompts span several internal decoder runs, data-parallel (default threads) and sequential (one
  // thread): every prompt's outputs must land in its own slot and equal a one-prompt call. Then
  // decode_batch_selected with the export's split decoder: the wanted prompts (here those whose token-1 IoU
  // is above the batch median) get the logits decode_batch gives them, and the flags say which those are.
  const int h = 120, w = 160, batch = 19;
  const auto img = pattern(h, w);
  const ModelInfo info = Predictor(model_dir()).model_info();
  std::vector<float> coords, labels;
  point_prompts(batch, static_cast<float>(info.image_size), coords, labels);
  const size_t plane = static_cast<size_t>(info.low_res_size) * info.low_res_size;
  for (const RuntimeOptions& options : threading_options()) {
    Predictor predictor(model_dir(), options);
    predictor.set_image(img.data(), h, w);
    std::vector<float> iou, low_res;
    predictor.decode_batch(coords, labels, batch, 2, iou, low_res);
    CHECK_EQ(iou.size(), static_cast<size_t>(batch) * 4);
    CHECK_EQ(low_res.size(), static_cast<size_t>(batch) * 4 * plane);
    for (int b : {0, 7, 8, 15, 16, 18}) {
      std::vector<float> one_iou, one_low_res;
      predictor.decode_batch({coords.begin() + 4 * b, coords.begin() + 4 * b + 4},
                             {labels.begin() + 2 * b, labels.begin() + 2 * b + 2}, 1, 2, one_iou, one_low_res);
      double worst = 0.0;
      for (int t = 0; t < 4; ++t) worst = std::max(worst, std::fabs(double(one_iou[t]) - iou[4 * b + t]));
      for (size_t i = 0; i < 4 * plane; ++i)
        worst = std::max(worst, std::fabs(double(one_low_res[i]) - low_res[4 * b * plane + i]));
      CHECK(worst <= 1e-4);
    }
    float spread = 0.0f;
    for (size_t i = 0; i < plane; ++i) spread = std::max(spread, std::fabs(low_res[i] - low_res[4 * 18 * plane + i]));
    CHECK(spread > 1e-3f);  // prompts differ, so a copy of one prompt into every slot would not pass

    CHECK(!predictor.has_split_decoder());  // opened on request only
    CHECK(predictor.load_split_decoder());
    CHECK(predictor.has_split_decoder());
    std::vector<float> token1;
    for (int b = 0; b < batch; ++b) token1.push_back(iou[4 * b + 1]);
    std::nth_element(token1.begin(), token1.begin() + batch / 2, token1.end());
    const float median = token1[batch / 2];
    std::vector<float> sel_iou, sel_low_res;
    std::vector<uint8_t> selected;
    predictor.decode_batch_selected(coords, labels, batch, 2, [median](const float* s) { return s[1] > median; },
                                    sel_iou, sel_low_res, selected);
    CHECK_EQ(selected.size(), static_cast<size_t>(batch));
    int count = 0;
    for (int b = 0; b < batch; ++b) {
      CHECK_EQ(static_cast<int>(selected[b]), iou[4 * b + 1] > median ? 1 : 0);
      double worst = 0.0;
      for (int t = 0; t < 4; ++t) worst = std::max(worst, std::fabs(double(sel_iou[4 * b + t]) - iou[4 * b + t]));
      if (selected[b]) {
        ++count;
        for (size_t i = 0; i < 4 * plane; ++i)
          worst = std::max(worst, std::fabs(double(sel_low_res[4 * b * plane + i]) - low_res[4 * b * plane + i]));
      }
      CHECK(worst <= 1e-4);
    }
    CHECK(count > 0 && count < batch);
  }
  Predictor predictor(model_dir());
  std::vector<float> iou, low_res;
  std::vector<uint8_t> selected;
  CHECK_THROWS(predictor.decode_batch_selected({0, 0}, {1}, 1, 1, nullptr, iou, low_res, selected),
               std::invalid_argument, "wanted");
}

TEST(generator_produces_valid_records) {
  const int h = 120, w = 160;
  const auto img = pattern(h, w);
  AmgOptions params;
  params.points_per_side = 4;
  params.pred_iou_thresh = 0.0f;
  params.stability_score_thresh = 0.0f;
  params.crop_n_layers = 1;
  params.min_mask_region_area = 20;
  params.output_mode = OutputMode::kCocoRle;
  AutomaticMaskGenerator generator(model_dir(), params);
  const std::vector<MaskRecord> records = generator.generate(img.data(), h, w);
  // With the filters off every crop layer keeps at least its best mask, so an empty result is a failure.
  CHECK(!records.empty());
  for (const MaskRecord& r : records) {
    CHECK_EQ(r.rle.height, h);
    CHECK_EQ(r.area, rle_area(r.rle));
    CHECK(rle_from_coco_string(r.coco_counts, h, w).counts == r.rle.counts);
    CHECK(r.bbox.x1 < w && r.bbox.y1 < h && r.crop_box.x1 <= w);
  }
  AmgOptions bad;
  bad.points_per_batch = 0;
  CHECK_THROWS(AutomaticMaskGenerator(model_dir(), bad), std::invalid_argument, "points_per_batch");
}

int main() {
  if (model_dir().empty()) {
    std::printf("FASTSAM_RT_MODEL_DIR not set: skipped\n");
    return 77;
  }
  return harness::run_all();
}
