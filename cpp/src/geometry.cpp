#include "fastsam/geometry.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>
#include <string>

namespace fastsam {

std::vector<int> nms(const std::vector<BoxF>& boxes, const std::vector<float>& scores, float iou_threshold) {
  if (boxes.size() != scores.size()) {
    throw std::invalid_argument("nms: boxes (" + std::to_string(boxes.size()) + ") and scores (" +
                                std::to_string(scores.size()) + ") differ in length");
  }
  const size_t n = boxes.size();
  std::vector<int> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return scores[a] > scores[b]; });
  std::vector<float> areas(n);
  for (size_t i = 0; i < n; ++i) areas[i] = (boxes[i].x1 - boxes[i].x0) * (boxes[i].y1 - boxes[i].y0);
  std::vector<char> suppressed(n, 0);
  std::vector<int> keep;
  for (size_t oi = 0; oi < n; ++oi) {
    const int i = order[oi];
    if (suppressed[i]) continue;
    keep.push_back(i);
    const BoxF& a = boxes[i];
    for (size_t oj = oi + 1; oj < n; ++oj) {
      const int j = order[oj];
      if (suppressed[j]) continue;
      const BoxF& b = boxes[j];
      const float w = std::max(0.0f, std::min(a.x1, b.x1) - std::max(a.x0, b.x0));
      const float h = std::max(0.0f, std::min(a.y1, b.y1) - std::max(a.y0, b.y0));
      const float inter = w * h;
      const float iou = inter / (areas[i] + areas[j] - inter);
      if (iou > iou_threshold) suppressed[j] = 1;
    }
  }
  return keep;
}

std::pair<int, int> get_preprocess_shape(int old_h, int old_w, int long_side_length) {
  if (old_h <= 0 || old_w <= 0 || long_side_length <= 0) {
    throw std::invalid_argument("get_preprocess_shape: sizes must be positive, got " + std::to_string(old_h) + "x" +
                                std::to_string(old_w) + " -> " + std::to_string(long_side_length));
  }
  const double scale = long_side_length * 1.0 / std::max(old_h, old_w);
  const double new_h = old_h * scale, new_w = old_w * scale;
  return {static_cast<int>(new_h + 0.5), static_cast<int>(new_w + 0.5)};
}

PointD apply_coords(PointD point, int original_h, int original_w, int long_side_length) {
  const auto [new_h, new_w] = get_preprocess_shape(original_h, original_w, long_side_length);
  return {point.x * (static_cast<double>(new_w) / original_w), point.y * (static_cast<double>(new_h) / original_h)};
}

std::array<double, 4> apply_box(const std::array<double, 4>& box, int original_h, int original_w,
                                int long_side_length) {
  const PointD a = apply_coords({box[0], box[1]}, original_h, original_w, long_side_length);
  const PointD b = apply_coords({box[2], box[3]}, original_h, original_w, long_side_length);
  return {a.x, a.y, b.x, b.y};
}

static std::vector<double> linspace(double start, double stop, int num) {
  // numpy.linspace with endpoint=True: i*step + start, last element exactly `stop`.
  std::vector<double> out(num);
  if (num == 1) {
    out[0] = start;
    return out;
  }
  const double step = (stop - start) / (num - 1);
  for (int i = 0; i < num; ++i) out[i] = i * step + start;
  out[num - 1] = stop;
  return out;
}

std::vector<PointD> build_point_grid(int n_per_side) {
  if (n_per_side <= 0) throw std::invalid_argument("build_point_grid: n_per_side must be > 0");
  const double offset = 1.0 / (2 * n_per_side);
  const std::vector<double> side = linspace(offset, 1 - offset, n_per_side);
  std::vector<PointD> points;
  points.reserve(static_cast<size_t>(n_per_side) * n_per_side);
  for (int iy = 0; iy < n_per_side; ++iy)
    for (int ix = 0; ix < n_per_side; ++ix) points.push_back({side[ix], side[iy]});
  return points;
}

std::vector<std::vector<PointD>> build_all_layer_point_grids(int n_per_side, int n_layers, int scale_per_layer) {
  if (n_layers < 0) throw std::invalid_argument("build_all_layer_point_grids: n_layers must be >= 0");
  if (scale_per_layer <= 0) throw std::invalid_argument("build_all_layer_point_grids: scale_per_layer must be > 0");
  std::vector<std::vector<PointD>> grids;
  for (int i = 0; i <= n_layers; ++i) {
    const int n_points = static_cast<int>(n_per_side / std::pow(static_cast<double>(scale_per_layer), i));
    grids.push_back(build_point_grid(n_points));
  }
  return grids;
}

CropBoxes generate_crop_boxes(int im_h, int im_w, int n_layers, double overlap_ratio) {
  if (im_h <= 0 || im_w <= 0) throw std::invalid_argument("generate_crop_boxes: image size must be positive");
  if (n_layers < 0) throw std::invalid_argument("generate_crop_boxes: n_layers must be >= 0");
  CropBoxes out;
  const int short_side = std::min(im_h, im_w);
  out.boxes.push_back({0, 0, im_w, im_h});
  out.layer_idxs.push_back(0);
  auto crop_len = [](int orig_len, int n_crops, int overlap) {
    return static_cast<int>(std::ceil((static_cast<double>(overlap) * (n_crops - 1) + orig_len) / n_crops));
  };
  for (int layer = 0; layer < n_layers; ++layer) {
    const int n_crops = 1 << (layer + 1);
    const int overlap = static_cast<int>(overlap_ratio * short_side * (2.0 / n_crops));
    const int crop_w = crop_len(im_w, n_crops, overlap);
    const int crop_h = crop_len(im_h, n_crops, overlap);
    for (int ix = 0; ix < n_crops; ++ix) {
      for (int iy = 0; iy < n_crops; ++iy) {
        const int x0 = (crop_w - overlap) * ix, y0 = (crop_h - overlap) * iy;
        out.boxes.push_back({x0, y0, std::min(x0 + crop_w, im_w), std::min(y0 + crop_h, im_h)});
        out.layer_idxs.push_back(layer + 1);
      }
    }
  }
  return out;
}

BoxI mask_to_box(const uint8_t* mask, int height, int width) {
  int x0 = width, y0 = height, x1 = -1, y1 = -1;
  for (int y = 0; y < height; ++y) {
    const uint8_t* row = mask + static_cast<size_t>(y) * width;
    int first = -1, last = -1;
    for (int x = 0; x < width; ++x) {
      if (row[x]) {
        if (first < 0) first = x;
        last = x;
      }
    }
    if (first >= 0) {
      x0 = std::min(x0, first);
      x1 = std::max(x1, last);
      y0 = std::min(y0, y);
      y1 = y;
    }
  }
  if (x1 < 0) return {0, 0, 0, 0};
  return {x0, y0, x1, y1};
}

bool is_box_near_crop_edge(const BoxI& box, const BoxI& crop_box, const BoxI& orig_box, float atol) {
  const float b[4] = {static_cast<float>(box.x0 + crop_box.x0), static_cast<float>(box.y0 + crop_box.y0),
                      static_cast<float>(box.x1 + crop_box.x0), static_cast<float>(box.y1 + crop_box.y0)};
  const float c[4] = {static_cast<float>(crop_box.x0), static_cast<float>(crop_box.y0),
                      static_cast<float>(crop_box.x1), static_cast<float>(crop_box.y1)};
  const float o[4] = {static_cast<float>(orig_box.x0), static_cast<float>(orig_box.y0),
                      static_cast<float>(orig_box.x1), static_cast<float>(orig_box.y1)};
  for (int k = 0; k < 4; ++k) {
    const bool near_crop = std::fabs(b[k] - c[k]) <= atol;
    const bool near_image = std::fabs(b[k] - o[k]) <= atol;
    if (near_crop && !near_image) return true;
  }
  return false;
}

}  // namespace fastsam
