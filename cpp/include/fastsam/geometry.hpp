#pragma once
// Boxes, NMS, point grids, crop boxes and coordinate transforms, with the semantics of segment-anything's
// utils/amg.py, utils/transforms.py and torchvision.ops.nms.
#include <array>
#include <cstdint>
#include <utility>
#include <vector>

namespace fastsam {

// XYXY box; the float variant is used for NMS (as torchvision computes in float32).
struct BoxF {
  float x0, y0, x1, y1;
};
struct BoxI {
  int x0, y0, x1, y1;
};
struct PointD {
  double x, y;
};

// torchvision.ops.nms: indices of kept boxes sorted by decreasing score (stable for ties); a box is dropped
// when its IoU with a higher-scoring kept box is > iou_threshold. Throws std::invalid_argument on size mismatch.
std::vector<int> nms(const std::vector<BoxF>& boxes, const std::vector<float>& scores, float iou_threshold);

// ResizeLongestSide.get_preprocess_shape: (new_h, new_w) with int(x + 0.5) rounding.
std::pair<int, int> get_preprocess_shape(int old_h, int old_w, int long_side_length);
// ResizeLongestSide.apply_coords: scales x by new_w/old_w and y by new_h/old_h (double precision).
PointD apply_coords(PointD point, int original_h, int original_w, int long_side_length);
// ResizeLongestSide.apply_boxes: both corners through apply_coords; box as {x0, y0, x1, y1}.
std::array<double, 4> apply_box(const std::array<double, 4>& box, int original_h, int original_w,
                                int long_side_length);

// amg.build_point_grid: n*n points in [0,1]^2, x fastest.
std::vector<PointD> build_point_grid(int n_per_side);
// amg.build_all_layer_point_grids: layer i has int(n_per_side / scale_per_layer^i) points per side.
std::vector<std::vector<PointD>> build_all_layer_point_grids(int n_per_side, int n_layers, int scale_per_layer);

// amg.generate_crop_boxes: crop boxes (XYXY, ints) and their layer indices; the first is the whole image.
struct CropBoxes {
  std::vector<BoxI> boxes;
  std::vector<int> layer_idxs;
};
CropBoxes generate_crop_boxes(int im_h, int im_w, int n_layers, double overlap_ratio);

// amg.batched_mask_to_box for one HxW row-major mask: XYXY with inclusive max; {0,0,0,0} for an empty mask.
BoxI mask_to_box(const uint8_t* mask, int height, int width);
// amg.is_box_near_crop_edge for one box in crop coordinates.
bool is_box_near_crop_edge(const BoxI& box, const BoxI& crop_box, const BoxI& orig_box, float atol = 20.0f);

}  // namespace fastsam
