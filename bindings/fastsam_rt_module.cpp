// pybind11 module fastsam_rt._core: Predictor and AutomaticMaskGenerator with SamPredictor's and
// SamAutomaticMaskGenerator's Python signatures and outputs. Inference runs with the GIL released.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>
#include <optional>
#include <string>

#include "fastsam/fastsam.hpp"

namespace py = pybind11;
using namespace fastsam;

namespace {

// Raises TypeError/ValueError naming `what` unless `obj` is an HxWx3 uint8 array; returns a C-contiguous copy
// or view.
py::array_t<uint8_t, py::array::c_style> as_image(const py::object& obj, const char* what) {
  if (!py::isinstance<py::array>(obj)) throw py::type_error(std::string(what) + " must be a numpy.ndarray (HxWx3 uint8)");
  py::array arr = py::reinterpret_borrow<py::array>(obj);
  if (!arr.dtype().is(py::dtype::of<uint8_t>())) {
    throw py::type_error(std::string(what) + " must have dtype uint8, got " + std::string(py::str(arr.dtype())));
  }
  if (arr.ndim() != 3 || arr.shape(2) != 3 || arr.shape(0) == 0 || arr.shape(1) == 0) {
    throw py::value_error(std::string(what) + " must have shape (H, W, 3) with H, W > 0, got " +
                          std::string(py::str(py::tuple(py::cast(std::vector<py::ssize_t>(arr.shape(), arr.shape() + arr.ndim()))))));
  }
  return py::array_t<uint8_t, py::array::c_style>::ensure(arr);
}

// Float array of an exact shape (-1 = any); ValueError naming the argument otherwise.
py::array_t<float, py::array::c_style | py::array::forcecast> as_float(const py::object& obj, const char* what,
                                                                      std::vector<py::ssize_t> shape,
                                                                      const char* expected) {
  py::array_t<float, py::array::c_style | py::array::forcecast> arr;
  try {
    arr = py::array_t<float, py::array::c_style | py::array::forcecast>::ensure(obj);
  } catch (const py::error_already_set&) {
    arr = {};
  }
  if (!arr) throw py::type_error(std::string(what) + " must be array-like of numbers, expected " + expected);
  bool ok = arr.ndim() == static_cast<py::ssize_t>(shape.size());
  for (size_t i = 0; ok && i < shape.size(); ++i) ok = shape[i] < 0 || arr.shape(i) == shape[i];
  if (!ok) throw py::value_error(std::string(what) + " must have shape " + expected);
  return arr;
}

py::tuple prediction_to_numpy(const std::vector<Prediction>& preds, bool batched, bool return_logits) {
  const Prediction& first = preds.front();
  const py::ssize_t b = static_cast<py::ssize_t>(preds.size()), c = first.num_masks, h = first.height,
                    w = first.width, s = first.low_res_size;
  std::vector<py::ssize_t> mshape = {c, h, w}, ishape = {c}, lshape = {c, s, s};
  if (batched) {
    mshape.insert(mshape.begin(), b);
    ishape.insert(ishape.begin(), b);
    lshape.insert(lshape.begin(), b);
  }
  py::array masks = return_logits ? py::array(py::dtype::of<float>(), mshape) : py::array(py::dtype::of<bool>(), mshape);
  py::array_t<float> iou(ishape), low(lshape);
  const size_t plane = static_cast<size_t>(h) * w;
  for (py::ssize_t i = 0; i < b; ++i) {
    const Prediction& p = preds[i];
    char* mdst = static_cast<char*>(masks.mutable_data()) + i * c * plane * (return_logits ? sizeof(float) : 1);
    if (return_logits) std::memcpy(mdst, p.mask_logits.data(), p.mask_logits.size() * sizeof(float));
    else std::memcpy(mdst, p.masks.data(), p.masks.size());
    std::memcpy(iou.mutable_data() + i * c, p.iou_predictions.data(), c * sizeof(float));
    std::memcpy(low.mutable_data() + i * c * s * s, p.low_res_logits.data(), p.low_res_logits.size() * sizeof(float));
  }
  return py::make_tuple(masks, iou, low);
}

GraphOptimization parse_graph_optimization(const std::string& name) {
  if (name == "disabled") return GraphOptimization::kDisabled;
  if (name == "basic") return GraphOptimization::kBasic;
  if (name == "extended") return GraphOptimization::kExtended;
  if (name == "all") return GraphOptimization::kAll;
  throw std::invalid_argument("graph_optimization must be 'disabled', 'basic', 'extended' or 'all', got '" + name + "'");
}

RuntimeOptions runtime_options(const std::string& provider, int device_id, int intra_op_threads,
                               int inter_op_threads, const std::string& graph_optimization,
                               bool enable_memory_pattern, bool enable_cpu_mem_arena, const std::string& precision,
                               const std::string& tensorrt_cache_dir, bool tensorrt_fp16, bool verify_model_files) {
  RuntimeOptions o;
  o.provider = parse_execution_provider(provider);
  if (device_id < 0) throw std::invalid_argument("device_id must be >= 0, got " + std::to_string(device_id));
  if (intra_op_threads < 0) throw std::invalid_argument("intra_op_threads must be >= 0 (0 = default)");
  if (inter_op_threads < 0) throw std::invalid_argument("inter_op_threads must be >= 0 (0 = default)");
  o.device_id = device_id;
  o.intra_op_threads = intra_op_threads;
  o.inter_op_threads = inter_op_threads;
  o.graph_optimization = parse_graph_optimization(graph_optimization);
  o.enable_memory_pattern = enable_memory_pattern;
  o.enable_cpu_mem_arena = enable_cpu_mem_arena;
  o.precision = precision;
  o.tensorrt_cache_dir = tensorrt_cache_dir;
  o.tensorrt_fp16 = tensorrt_fp16;
  o.verify_model_files = verify_model_files;
  return o;
}

#define FASTSAM_RUNTIME_ARGS                                                                           \
  py::arg("provider") = "cpu", py::arg("device_id") = 0, py::arg("intra_op_threads") = 0,              \
  py::arg("inter_op_threads") = 1, py::arg("graph_optimization") = "all",                              \
  py::arg("enable_memory_pattern") = true, py::arg("enable_cpu_mem_arena") = true,                     \
  py::arg("precision") = "fp32", py::arg("tensorrt_cache_dir") = "", py::arg("tensorrt_fp16") = false, \
  py::arg("verify_model_files") = true

template <typename A, typename B>
py::list pair_list(A a, B b) {
  py::list l;
  l.append(a);
  l.append(b);
  return l;
}

py::list xywh(const BoxI& b) { return py::cast(std::vector<int>{b.x0, b.y0, b.x1 - b.x0, b.y1 - b.y0}); }

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "fastsam C++ runtime (ONNX Runtime) bindings; see fastsam_rt/_core.pyi";

  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const Error& e) {
      if (e.code() == ErrorCode::kFileNotFound) PyErr_SetString(PyExc_FileNotFoundError, e.what());
      else PyErr_SetString(PyExc_RuntimeError, e.what());
    }
  });

  m.def("available_providers", &available_providers,
        "Execution providers compiled into the loaded ONNX Runtime library, e.g. ['CPUExecutionProvider'].");

  py::class_<Predictor>(m, "Predictor")
      .def(py::init([](const std::string& model_dir, const std::string& provider, int device_id, int intra,
                       int inter, const std::string& graph_opt, bool mem_pattern, bool arena,
                       const std::string& precision, const std::string& trt_cache, bool trt_fp16, bool verify) {
             const RuntimeOptions o = runtime_options(provider, device_id, intra, inter, graph_opt, mem_pattern,
                                                      arena, precision, trt_cache, trt_fp16, verify);
             py::gil_scoped_release release;
             return std::make_unique<Predictor>(model_dir, o);
           }),
           py::arg("model_dir"), py::kw_only(), FASTSAM_RUNTIME_ARGS)
      .def("set_image",
           [](Predictor& self, const py::object& image, const std::string& image_format) {
             if (image_format != "RGB" && image_format != "BGR") {
               throw py::value_error("image_format must be 'RGB' or 'BGR', got '" + image_format + "'");
             }
             auto arr = as_image(image, "image");
             const int h = static_cast<int>(arr.shape(0)), w = static_cast<int>(arr.shape(1));
             const uint8_t* data = arr.data();
             py::gil_scoped_release release;
             if (image_format == "RGB") self.set_image(data, h, w); else self.set_image_bgr(data, h, w);
           },
           py::arg("image"), py::arg("image_format") = "RGB")
      .def("predict",
           [](Predictor& self, const py::object& point_coords, const py::object& point_labels, const py::object& box,
              const py::object& mask_input, bool multimask_output, bool return_logits) {
             if (!self.is_image_set()) {
               throw Error(ErrorCode::kWrongCallOrder, "an image must be set with set_image() before mask prediction");
             }
             if (point_coords.is_none() != point_labels.is_none()) {
               throw py::value_error("point_labels must be supplied together with point_coords");
             }
             std::vector<std::array<float, 2>> coords;
             std::vector<int> labels;
             if (!point_coords.is_none()) {
               auto pc = as_float(point_coords, "point_coords", {-1, 2}, "(N, 2)");
               auto pl = as_float(point_labels, "point_labels", {pc.shape(0)}, "(N,) matching point_coords");
               for (py::ssize_t i = 0; i < pc.shape(0); ++i) {
                 coords.push_back({pc.at(i, 0), pc.at(i, 1)});
                 labels.push_back(static_cast<int>(pl.at(i)));
                 if (static_cast<float>(labels.back()) != pl.at(i)) throw py::value_error("point_labels must be 0 or 1");
               }
             }
             std::optional<std::array<float, 4>> b;
             if (!box.is_none()) {
               auto ba = as_float(box, "box", {4}, "(4,) XYXY");
               b = std::array<float, 4>{ba.at(0), ba.at(1), ba.at(2), ba.at(3)};
             }
             std::vector<float> mi;
             if (!mask_input.is_none()) {
               const int s = self.model_info().low_res_size;
               // The low-res size is image_size / 4: 256 only for 1024-pixel models.
               const std::string expected = "(1, " + std::to_string(s) + ", " + std::to_string(s) + ")";
               auto ma = as_float(mask_input, "mask_input", {1, s, s}, expected.c_str());
               mi.assign(ma.data(), ma.data() + ma.size());
             }
             std::vector<Prediction> out;
             {
               py::gil_scoped_release release;
               out.push_back(self.predict(coords, labels, b, mi, multimask_output, return_logits));
             }
             return prediction_to_numpy(out, false, return_logits);
           },
           py::arg("point_coords") = py::none(), py::arg("point_labels") = py::none(), py::arg("box") = py::none(),
           py::arg("mask_input") = py::none(), py::arg("multimask_output") = true, py::arg("return_logits") = false)
      .def("predict_boxes",
           [](Predictor& self, const py::object& boxes, bool multimask_output, bool return_logits) {
             auto ba = as_float(boxes, "boxes", {-1, 4}, "(B, 4) XYXY");
             if (ba.shape(0) == 0) throw py::value_error("boxes must hold at least one box");
             std::vector<std::array<float, 4>> bs;
             for (py::ssize_t i = 0; i < ba.shape(0); ++i) bs.push_back({ba.at(i, 0), ba.at(i, 1), ba.at(i, 2), ba.at(i, 3)});
             std::vector<Prediction> out;
             {
               py::gil_scoped_release release;
               out = self.predict_boxes(bs, multimask_output, return_logits);
             }
             return prediction_to_numpy(out, true, return_logits);
           },
           py::arg("boxes"), py::arg("multimask_output") = true, py::arg("return_logits") = false)
      .def("get_image_embedding",
           [](const Predictor& self) {
             std::vector<float> e = self.get_image_embedding();
             const ModelInfo& info = self.model_info();
             py::array_t<float> out({py::ssize_t{1}, py::ssize_t{info.embedding_channels}, py::ssize_t{info.embedding_size},
                                     py::ssize_t{info.embedding_size}});
             std::memcpy(out.mutable_data(), e.data(), e.size() * sizeof(float));
             return out;
           })
      .def("reset_image", &Predictor::reset_image)
      .def_property_readonly("is_image_set", &Predictor::is_image_set)
      .def_property_readonly("original_size", [](const Predictor& self) {
        const auto s = self.original_size();
        return py::make_tuple(s[0], s[1]);
      })
      .def_property_readonly("input_size", [](const Predictor& self) {
        const auto s = self.input_size();
        return py::make_tuple(s[0], s[1]);
      })
      .def_property_readonly("model_type", [](const Predictor& self) { return self.model_info().model_type; })
      .def_property_readonly("image_size", [](const Predictor& self) { return self.model_info().image_size; })
      .def_property_readonly("mask_threshold", [](const Predictor& self) { return self.model_info().mask_threshold; });

  py::class_<AutomaticMaskGenerator>(m, "AutomaticMaskGenerator")
      .def(py::init([](const std::string& model_dir, const py::object& points_per_side, int points_per_batch,
                       float pred_iou_thresh, float stability_score_thresh, float stability_score_offset,
                       float box_nms_thresh, int crop_n_layers, float crop_nms_thresh, double crop_overlap_ratio,
                       int crop_n_points_downscale_factor, const py::object& point_grids, int min_mask_region_area,
                       const std::string& output_mode, const std::string& provider, int device_id, int intra,
                       int inter, const std::string& graph_opt, bool mem_pattern, bool arena,
                       const std::string& precision, const std::string& trt_cache, bool trt_fp16, bool verify) {
             if (points_per_side.is_none() == point_grids.is_none()) {
               throw py::value_error("Exactly one of points_per_side or point_grid must be provided.");
             }
             AmgOptions p;
             p.points_per_side = points_per_side.is_none() ? 0 : points_per_side.cast<int>();
             if (!point_grids.is_none()) {
               for (const py::handle& g : point_grids) {
                 auto ga = as_float(py::reinterpret_borrow<py::object>(g), "point_grids[i]", {-1, 2}, "(N, 2) in [0, 1]");
                 std::vector<PointD> grid;
                 for (py::ssize_t i = 0; i < ga.shape(0); ++i) grid.push_back({ga.at(i, 0), ga.at(i, 1)});
                 p.point_grids.push_back(std::move(grid));
               }
             }
             p.points_per_batch = points_per_batch;
             p.pred_iou_thresh = pred_iou_thresh;
             p.stability_score_thresh = stability_score_thresh;
             p.stability_score_offset = stability_score_offset;
             p.box_nms_thresh = box_nms_thresh;
             p.crop_n_layers = crop_n_layers;
             p.crop_nms_thresh = crop_nms_thresh;
             p.crop_overlap_ratio = crop_overlap_ratio;
             p.crop_n_points_downscale_factor = crop_n_points_downscale_factor;
             p.min_mask_region_area = min_mask_region_area;
             p.output_mode = parse_output_mode(output_mode);
             const RuntimeOptions o = runtime_options(provider, device_id, intra, inter, graph_opt, mem_pattern,
                                                      arena, precision, trt_cache, trt_fp16, verify);
             py::gil_scoped_release release;
             return std::make_unique<AutomaticMaskGenerator>(model_dir, p, o);
           }),
           py::arg("model_dir"), py::kw_only(), py::arg("points_per_side") = 32, py::arg("points_per_batch") = 64,
           py::arg("pred_iou_thresh") = 0.88f, py::arg("stability_score_thresh") = 0.95f,
           py::arg("stability_score_offset") = 1.0f, py::arg("box_nms_thresh") = 0.7f, py::arg("crop_n_layers") = 0,
           py::arg("crop_nms_thresh") = 0.7f, py::arg("crop_overlap_ratio") = 512.0 / 1500.0,
           py::arg("crop_n_points_downscale_factor") = 1, py::arg("point_grids") = py::none(),
           py::arg("min_mask_region_area") = 0, py::arg("output_mode") = "binary_mask", FASTSAM_RUNTIME_ARGS)
      .def("generate",
           [](AutomaticMaskGenerator& self, const py::object& image) {
             auto arr = as_image(image, "image");
             const int h = static_cast<int>(arr.shape(0)), w = static_cast<int>(arr.shape(1));
             std::vector<MaskRecord> records;
             {
               py::gil_scoped_release release;
               records = self.generate(arr.data(), h, w);
             }
             const OutputMode mode = self.params().output_mode;
             py::list out;
             for (MaskRecord& r : records) {
               py::dict ann;
               if (mode == OutputMode::kBinaryMask) {
                 py::array_t<bool> seg({py::ssize_t{h}, py::ssize_t{w}});
                 std::memcpy(seg.mutable_data(), r.segmentation.data(), r.segmentation.size());
                 ann["segmentation"] = seg;
               } else {
                 py::dict rle;
                 rle["size"] = pair_list(h, w);
                 if (mode == OutputMode::kCocoRle) rle["counts"] = py::str(r.coco_counts);
                 else rle["counts"] = py::cast(std::vector<uint32_t>(r.rle.counts.begin(), r.rle.counts.end()));
                 ann["segmentation"] = rle;
               }
               ann["area"] = r.area;
               ann["bbox"] = xywh(r.bbox);
               ann["predicted_iou"] = static_cast<double>(r.predicted_iou);
               py::list point;
               point.append(pair_list(r.point.x, r.point.y));
               ann["point_coords"] = point;
               ann["stability_score"] = static_cast<double>(r.stability_score);
               ann["crop_box"] = xywh(r.crop_box);
               out.append(ann);
             }
             return out;
           },
           py::arg("image"))
      .def_property_readonly("uses_split_decoder",
                             [](AutomaticMaskGenerator& self) { return self.predictor().has_split_decoder(); });

  m.def("encode_coco_rle",
        [](const py::object& mask) {
          py::array arr = py::array::ensure(mask);
          if (!arr || arr.ndim() != 2) throw py::value_error("mask must be a 2-D array (H, W)");
          auto u8 = py::array_t<uint8_t, py::array::c_style | py::array::forcecast>::ensure(arr.attr("astype")("bool"));
          const int h = static_cast<int>(u8.shape(0)), w = static_cast<int>(u8.shape(1));
          const Rle rle = mask_to_rle(u8.data(), h, w);
          py::dict out;
          out["size"] = pair_list(h, w);
          out["counts"] = py::str(rle_to_coco_string(rle));
          return out;
        },
        py::arg("mask"));
  m.def("decode_coco_rle",
        [](const py::dict& rle) {
          if (!rle.contains("size") || !rle.contains("counts")) throw py::value_error("rle must have 'size' and 'counts'");
          auto size = rle["size"].cast<std::vector<int>>();
          if (size.size() != 2) throw py::value_error("rle['size'] must be [H, W]");
          py::object counts = rle["counts"];
          std::string s = py::isinstance<py::bytes>(counts) ? counts.cast<py::bytes>().cast<std::string>()
                                                            : counts.cast<std::string>();
          const std::vector<uint8_t> mask = rle_to_mask(rle_from_coco_string(s, size[0], size[1]));
          py::array_t<bool> out({py::ssize_t{size[0]}, py::ssize_t{size[1]}});
          std::memcpy(out.mutable_data(), mask.data(), mask.size());
          return out;
        },
        py::arg("rle"));
  m.def("resize_longest_side",
        [](const py::object& image, int target_length) {
          auto arr = as_image(image, "image");
          const int h = static_cast<int>(arr.shape(0)), w = static_cast<int>(arr.shape(1));
          const auto [nh, nw] = get_preprocess_shape(h, w, target_length);
          Image8 out;
          {
            py::gil_scoped_release release;
            out = resize_bilinear_pil(arr.data(), h, w, 3, nh, nw);
          }
          py::array_t<uint8_t> res({py::ssize_t{nh}, py::ssize_t{nw}, py::ssize_t{3}});
          std::memcpy(res.mutable_data(), out.data.data(), out.data.size());
          return res;
        },
        py::arg("image"), py::arg("target_length"));
}
