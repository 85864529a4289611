#pragma once
// Validation of user prompts (points, labels, boxes) against the current image, private to the library and
// kept apart from the Predictor so it can be unit-tested and fuzzed without a model.
#include <array>
#include <string>
#include <vector>

namespace fastsam::detail {

// Throws std::invalid_argument naming `what` when a coordinate is NaN/inf or outside the height x width image
// (x in [0, width], y in [0, height], original-image pixels): such a prompt gives a confident but meaningless mask.
void check_inside(const std::string& what, const std::vector<float>& xy, int height, int width);

// Points and labels of predict(): one label per point, labels 0 or 1, every point inside the image.
void check_points(const std::vector<std::array<float, 2>>& point_coords, const std::vector<int>& point_labels,
                  int height, int width);

// An XYXY box (x1 >= x0, y1 >= y0) inside the image; `what` names it in the message, e.g. "predict: box".
void check_box(const std::string& what, const std::array<float, 4>& box, int height, int width);

}  // namespace fastsam::detail
