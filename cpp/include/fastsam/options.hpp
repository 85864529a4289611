#pragma once
// Plain option structs with defaults; no ONNX Runtime types.
#include <string>
#include <vector>

#include "fastsam/geometry.hpp"

namespace fastsam {

enum class ExecutionProvider { kCpu, kCuda, kTensorRt };
enum class GraphOptimization { kDisabled, kBasic, kExtended, kAll };

// "cpu" | "cuda" | "tensorrt" (case-sensitive); std::invalid_argument otherwise.
ExecutionProvider parse_execution_provider(const std::string& name);
const char* to_string(ExecutionProvider provider) noexcept;
// ONNX Runtime's names of the providers compiled into the loaded library, e.g. {"CPUExecutionProvider"}.
std::vector<std::string> available_providers();

struct RuntimeOptions {
  ExecutionProvider provider = ExecutionProvider::kCpu;
  int device_id = 0;                   // CUDA / TensorRT device
  std::string tensorrt_cache_dir;      // TensorRT engine cache; empty: the one sam-export --tensorrt prepared
                                       // (manifest "tensorrt": its folder, fp16 flag and profiles), else none
  bool tensorrt_fp16 = false;          // let TensorRT build fp16 engines (ignored when the manifest's cache is used)
  int intra_op_threads = 0;            // 0: ONNX Runtime's default (one per physical core)
  int inter_op_threads = 1;
  GraphOptimization graph_optimization = GraphOptimization::kAll;
  bool enable_memory_pattern = true;   // pre-plan activations for repeated same-shape runs
  bool enable_cpu_mem_arena = true;
  std::string precision = "fp32";      // fp32 | int8 | fp16: the manifest's "variants" entry (role -> model)
  bool verify_model_files = true;      // check each loaded model file against manifest.json's sha256 (reads it once)
};

enum class OutputMode { kBinaryMask, kUncompressedRle, kCocoRle };
// "binary_mask" | "uncompressed_rle" | "coco_rle"; std::invalid_argument otherwise.
OutputMode parse_output_mode(const std::string& name);

// SamAutomaticMaskGenerator's parameters and defaults.
struct AmgOptions {
  int points_per_side = 32;           // ignored when point_grids is non-empty (0 requires point_grids)
  int points_per_batch = 64;
  float pred_iou_thresh = 0.88f;
  float stability_score_thresh = 0.95f;
  float stability_score_offset = 1.0f;
  float box_nms_thresh = 0.7f;
  int crop_n_layers = 0;
  float crop_nms_thresh = 0.7f;
  double crop_overlap_ratio = 512.0 / 1500.0;
  int crop_n_points_downscale_factor = 1;
  std::vector<std::vector<PointD>> point_grids;  // one grid in [0,1]^2 per crop layer
  int min_mask_region_area = 0;
  OutputMode output_mode = OutputMode::kBinaryMask;
};

}  // namespace fastsam
