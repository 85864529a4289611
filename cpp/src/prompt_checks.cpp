#include "prompt_checks.hpp"

#include <cmath>
#include <sstream>
#include <stdexcept>

namespace fastsam::detail {
namespace {

std::string listed(const std::vector<float>& values) {
  std::ostringstream out;
  out << "(";
  for (size_t i = 0; i < values.size(); ++i) out << (i ? ", " : "") << values[i];
  out << ")";
  return out.str();
}

}  // namespace

void check_inside(const std::string& what, const std::vector<float>& xy, int height, int width) {
  for (float v : xy) {
    if (!std::isfinite(v)) {
      throw std::invalid_argument(what + " " + listed(xy) + " must hold finite numbers (no NaN or inf)");
    }
  }
  bool inside = true;
  for (size_t i = 0; i + 1 < xy.size(); i += 2) {
    inside = inside && xy[i] >= 0.0f && xy[i] <= width && xy[i + 1] >= 0.0f && xy[i + 1] <= height;
  }
  if (inside) return;
  std::ostringstream msg;
  msg << what << " " << listed(xy) << " is outside the " << width << "x" << height << " image: x must be in [0, "
      << width << "] and y in [0, " << height << "] (XY order, original-image pixels)";
  throw std::invalid_argument(msg.str());
}

void check_points(const std::vector<std::array<float, 2>>& point_coords, const std::vector<int>& point_labels,
                  int height, int width) {
  if (point_coords.size() != point_labels.size()) {
    throw std::invalid_argument("predict: point_labels must have one label per point (" +
                                std::to_string(point_coords.size()) + " points, " +
                                std::to_string(point_labels.size()) + " labels)");
  }
  for (int label : point_labels) {
    if (label != 0 && label != 1) {
      throw std::invalid_argument("predict: point_labels must be 0 (background) or 1 (foreground), got " +
                                  std::to_string(label));
    }
  }
  for (size_t i = 0; i < point_coords.size(); ++i) {
    check_inside("predict: point_coords[" + std::to_string(i) + "]", {point_coords[i][0], point_coords[i][1]},
                 height, width);
  }
}

void check_box(const std::string& what, const std::array<float, 4>& box, int height, int width) {
  // Finite and inside first, so a NaN box is reported as NaN rather than as inverted.
  check_inside(what, {box[0], box[1], box[2], box[3]}, height, width);
  if (!(box[2] >= box[0] && box[3] >= box[1])) {
    throw std::invalid_argument(what + " " + listed({box[0], box[1], box[2], box[3]}) +
                                " must be XYXY with x1 >= x0 and y1 >= y0");
  }
}

}  // namespace fastsam::detail
