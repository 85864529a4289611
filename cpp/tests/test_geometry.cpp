#include <set>

#include "fastsam/geometry.hpp"
#include "harness.hpp"

using namespace fastsam;

TEST(nms_keeps_best_and_drops_overlaps_above_threshold) {
  const std::vector<BoxF> boxes = {{0, 0, 10, 10}, {1, 0, 11, 10}, {20, 20, 30, 30}, {0, 0, 10, 10}};
  const std::vector<float> scores = {0.5f, 0.9f, 0.3f, 0.1f};
  // box 1 (best) overlaps 0 and 3 with IoU 9/11 > 0.5; box 2 is separate.
  CHECK(nms(boxes, scores, 0.5f) == std::vector<int>({1, 2}));
  // Nothing overlaps above 0.95 except identical boxes 0 and 3.
  CHECK(nms(boxes, scores, 0.95f) == std::vector<int>({1, 0, 2}));
}

TEST(nms_keeps_iou_equal_to_threshold_and_breaks_ties_stably) {
  // Two 2x1 boxes sharing a 1x1 cell: IoU = 1 / (2 + 2 - 1) = 1/3.
  const std::vector<BoxF> boxes = {{0, 0, 2, 1}, {1, 0, 3, 1}};
  CHECK(nms(boxes, {0.7f, 0.7f}, 1.0f / 3.0f) == std::vector<int>({0, 1}));
  CHECK(nms(boxes, {0.7f, 0.7f}, 0.3f) == std::vector<int>({0}));
  CHECK_THROWS(nms(boxes, {0.1f}, 0.5f), std::invalid_argument, "differ in length");
}

TEST(preprocess_shape_matches_the_reference_inputs) {
  // Sizes of the golden fixture images (MANIFEST.md: original -> input H x W).
  CHECK(get_preprocess_shape(1200, 1800, 1024) == std::make_pair(683, 1024));
  CHECK(get_preprocess_shape(534, 800, 1024) == std::make_pair(684, 1024));
  CHECK(get_preprocess_shape(770, 769, 1024) == std::make_pair(1024, 1023));
  CHECK_THROWS(get_preprocess_shape(0, 5, 1024), std::invalid_argument, "positive");
}

TEST(apply_coords_scales_each_axis_by_its_own_ratio) {
  const PointD p = apply_coords({800.0, 534.0}, 534, 800, 1024);
  CHECK_NEAR(p.x, 1024.0, 1e-9);
  CHECK_NEAR(p.y, 534.0 * 684.0 / 534.0, 1e-9);
  const auto b = apply_box({0, 0, 400, 267}, 534, 800, 1024);
  CHECK_NEAR(b[2], 512.0, 1e-9);
  CHECK_NEAR(b[3], 267.0 * 684.0 / 534.0, 1e-9);
}

TEST(point_grid_is_centred_and_x_fastest) {
  const auto one = build_point_grid(1);
  CHECK(one.size() == 1u);
  CHECK_NEAR(one[0].x, 0.5, 0.0);
  const auto g = build_point_grid(4);
  CHECK_EQ(g.size(), 16u);
  CHECK_NEAR(g[0].x, 0.125, 1e-15);
  CHECK_NEAR(g[1].x, 0.375, 1e-15);
  CHECK_NEAR(g[1].y, 0.125, 1e-15);
  CHECK_NEAR(g[4].y, 0.375, 1e-15);
  CHECK_NEAR(g[15].x, 0.875, 0.0);  // numpy.linspace sets the last value exactly
  const auto layers = build_all_layer_point_grids(32, 2, 2);
  CHECK_EQ(layers.size(), 3u);
  CHECK_EQ(layers[1].size(), 256u);
  CHECK_EQ(layers[2].size(), 64u);
}

TEST(crop_boxes_cover_the_image_with_overlap) {
  const CropBoxes c = generate_crop_boxes(100, 200, 1, 512.0 / 1500.0);
  CHECK_EQ(c.boxes.size(), 5u);
  CHECK(c.layer_idxs == std::vector<int>({0, 1, 1, 1, 1}));
  CHECK(c.boxes[0].x1 == 200 && c.boxes[0].y1 == 100);
  // overlap = int(0.3413 * 100 * 1) = 34; crop_w = ceil((34 + 200) / 2) = 117; x0 order outer, y0 inner.
  CHECK(c.boxes[1].x0 == 0 && c.boxes[1].y0 == 0 && c.boxes[1].x1 == 117);
  CHECK(c.boxes[2].x0 == 0 && c.boxes[2].y0 > 0);
  CHECK(c.boxes[3].x0 == 83 && c.boxes[3].x1 == 200);
  CHECK(c.boxes[4].y1 == 100);
}

TEST(mask_to_box_is_inclusive_and_zero_for_empty) {
  std::vector<uint8_t> m(5 * 6, 0);
  const BoxI empty = mask_to_box(m.data(), 5, 6);
  CHECK(empty.x0 == 0 && empty.y0 == 0 && empty.x1 == 0 && empty.y1 == 0);
  m[1 * 6 + 2] = 1;
  m[3 * 6 + 4] = 1;
  const BoxI b = mask_to_box(m.data(), 5, 6);
  CHECK(b.x0 == 2 && b.y0 == 1 && b.x1 == 4 && b.y1 == 3);
}

TEST(box_near_crop_edge_ignores_image_edges) {
  const BoxI crop{100, 0, 300, 200};
  const BoxI image{0, 0, 400, 200};
  CHECK(is_box_near_crop_edge({5, 50, 60, 80}, crop, image));      // x0 = 105 near crop x0 = 100
  CHECK(!is_box_near_crop_edge({50, 5, 150, 80}, crop, image));    // y0 = 5 near crop y0 = image y0
  CHECK(!is_box_near_crop_edge({50, 50, 150, 150}, crop, image));
}

HARNESS_MAIN()
