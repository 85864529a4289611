#include "fastsam/predictor.hpp"

#include <algorithm>
#include <cstring>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>

#include "fastsam/error.hpp"
#include "fastsam/geometry.hpp"
#include "fastsam/image_ops.hpp"
#include "manifest.hpp"
#include "onnx_session.hpp"
#include "parallel.hpp"
#include "prompt_checks.hpp"

namespace fastsam {
namespace {

// Names of the agreed interface (python/fastsam/export/io_spec.py, notes/onnx_interface.md).
constexpr const char* kImage = "image";
constexpr const char* kEmbeddings = "image_embeddings";
constexpr const char* kPointCoords = "point_coords";
constexpr const char* kPointLabels = "point_labels";
constexpr const char* kMaskInput = "mask_input";
constexpr const char* kHasMaskInput = "has_mask_input";
constexpr const char* kOrigImSize = "orig_im_size";
constexpr const char* kIouPredictions = "iou_predictions";
constexpr const char* kLowResMasks = "low_res_masks";
constexpr const char* kMaskWeights = "mask_weights";
constexpr const char* kImageTokens = "image_tokens";
constexpr int kNumMaskTokens = 4;

// Prompts per batched-decoder run. Measured with benchmarks/bench_decoder_batch.py on a 2-core AVX2 machine
// (rewritten export, point prompts, 2 ORT threads, ms/prompt): 1: 105, 4: 70, 8: 62, 16: 52, 32: 49, 64: 47,
// while ORT's peak memory grows by ~55 MB per prompt in a run (16: 1.0 GB, 64: 3.6 GB). 16 keeps memory
// bounded for little cost.
constexpr int kDecoderSubBatch = 16;
// Data-parallel decoding (one ORT thread per run, one run per worker): measured interleaved on the same
// machine, 2 concurrent runs of 8 prompts cost 42 ms/prompt against 52 for runs of 16 on 2 ORT threads
// (46 with spinning off); same memory as one run of 16.
constexpr int kDataParallelSubBatch = 8;
constexpr int kDataParallelMinBatch = 8;

void check_precision(const std::string& precision) {
  if (precision == "fp32" || precision == "int8" || precision == "fp16") return;
  throw std::invalid_argument("precision must be 'fp32', 'int8' or 'fp16', got '" + precision + "'");
}

const detail::ModelEntry& encoder_entry(const detail::Manifest& manifest, const std::string& precision) {
  if (const detail::ModelEntry* encoder = manifest.for_role(precision, "encoder")) return *encoder;
  throw Error(ErrorCode::kModelFiles, "manifest.json in " + manifest.model_dir + ": variants." + precision +
                                          " names no encoder; re-export the directory with sam-export");
}

// The batched decoder when the variant has one, else the official single-prompt decoder.
const detail::ModelEntry& decoder_entry(const detail::Manifest& manifest, const std::string& precision) {
  if (const detail::ModelEntry* batched = manifest.for_role(precision, "decoder_batched")) return *batched;
  if (const detail::ModelEntry* single = manifest.for_role(precision, "decoder")) return *single;
  throw Error(ErrorCode::kModelFiles, "manifest.json in " + manifest.model_dir + " names no decoder for precision '" +
                                          precision + "'; re-export the directory with sam-export");
}

// With provider=tensorrt and no cache folder of the caller's own, the engine cache sam-export --tensorrt
// prepared (and the precision it was built with), so the engines are loaded rather than rebuilt.
RuntimeOptions with_export_cache(RuntimeOptions options, const detail::Manifest& manifest) {
  if (options.provider == ExecutionProvider::kTensorRt && options.tensorrt_cache_dir.empty() &&
      !manifest.tensorrt.cache_dir.empty()) {
    options.tensorrt_cache_dir = manifest.tensorrt.cache_dir;
    options.tensorrt_fp16 = manifest.tensorrt.fp16;
  }
  return options;
}

// Argument checks shared by decode_batch and decode_batch_selected; `caller` names the method in the message.
void check_batch_prompts(const char* caller, const std::vector<float>& point_coords,
                         const std::vector<float>& point_labels, int batch, int num_points) {
  if (batch <= 0 || num_points <= 0) {
    throw std::invalid_argument(std::string(caller) + ": batch and num_points must be > 0");
  }
  if (point_coords.size() != static_cast<size_t>(batch) * num_points * 2 ||
      point_labels.size() != static_cast<size_t>(batch) * num_points) {
    throw std::invalid_argument(std::string(caller) + ": point_coords must hold batch*num_points*2 values and "
                                "point_labels batch*num_points");
  }
}

}  // namespace

struct Predictor::Impl {
  RuntimeOptions options;
  ModelInfo info;
  detail::OnnxModel encoder;
  detail::OnnxModel decoder;
  bool decoder_is_batched = true;
  // The batched decoder again with one ONNX Runtime thread, for data-parallel decoding of large batches
  // (CPU only; null when one thread is configured or the decoder is the single-prompt one).
  std::unique_ptr<detail::OnnxModel> serial_decoder;
  int decode_workers = 1;
  // The batched decoder cut in two (decoder_head + decoder_masks, fp32 exports only), so that the mask
  // generator upscales only the prompts it keeps; opened by load_split_decoder() (a plain Predictor user does
  // not pay for their sessions), null until then. The serial_* copies (one ORT thread) serve data-parallel
  // decoding like serial_decoder.
  std::vector<detail::ModelEntry> split_entries;
  std::unique_ptr<detail::OnnxModel> head, masks, serial_head, serial_masks;

  bool image_set = false;
  int orig_h = 0, orig_w = 0, input_h = 0, input_w = 0;
  std::vector<float> embedding;

  Impl(const detail::Manifest& manifest, const RuntimeOptions& opts)
      : options(with_export_cache(opts, manifest)),
        encoder(encoder_entry(manifest, opts.precision), options),
        decoder(decoder_entry(manifest, opts.precision), options) {
    info.model_type = manifest.model_type;
    info.image_size = manifest.image_size;
    info.mask_threshold = manifest.mask_threshold;
    info.embedding_size = manifest.image_size / 16;
    info.low_res_size = info.embedding_size * 4;
    encoder.require({kImage}, {kEmbeddings});
    decoder.require({kEmbeddings, kPointCoords, kPointLabels, kMaskInput, kHasMaskInput},
                    {kIouPredictions, kLowResMasks});
    decoder_is_batched = !decoder.has_input(kOrigImSize);
    const int threads = detail::worker_count(opts.intra_op_threads);
    if (decoder_is_batched && opts.provider == ExecutionProvider::kCpu && threads > 1) {
      serial_decoder = std::make_unique<detail::OnnxModel>(decoder.path(), one_thread_options());
      decode_workers = threads;
    }
    const detail::ModelEntry* split_head = manifest.for_role(opts.precision, "decoder_head");
    const detail::ModelEntry* split_masks = manifest.for_role(opts.precision, "decoder_masks");
    if (split_head && split_masks) split_entries = {*split_head, *split_masks};
  }

  // Opens the split decoder's sessions (once); false when the export has none for this precision.
  bool load_split_decoder() {
    if (head) return true;
    if (split_entries.empty()) return false;
    auto loaded_head = std::make_unique<detail::OnnxModel>(split_entries[0], options);
    auto loaded_masks = std::make_unique<detail::OnnxModel>(split_entries[1], options);
    loaded_head->require({kEmbeddings, kPointCoords, kPointLabels, kMaskInput, kHasMaskInput},
                         {kIouPredictions, kMaskWeights, kImageTokens});
    loaded_masks->require({kImageTokens, kMaskWeights}, {kLowResMasks});
    if (serial_decoder) {
      serial_head = std::make_unique<detail::OnnxModel>(loaded_head->path(), one_thread_options());
      serial_masks = std::make_unique<detail::OnnxModel>(loaded_masks->path(), one_thread_options());
    }
    masks = std::move(loaded_masks);
    head = std::move(loaded_head);
    return true;
  }

  // The options of the one-thread sessions used for data-parallel decoding.
  RuntimeOptions one_thread_options() const {
    RuntimeOptions serial = options;
    serial.intra_op_threads = 1;
    return serial;
  }

  // Runs `run(serial, start)` for each run of at most `per_run_max` of `batch` prompts: concurrently, one per
  // worker on the one-thread sessions (serial = true), when `parallel`, else one after the other.
  template <typename Fn>
  void for_each_run(int batch, int per_run_max, bool parallel, Fn&& run) const {
    const int runs = (batch + per_run_max - 1) / per_run_max;
    if (parallel) {
      detail::parallel_for(runs, decode_workers, [&](int r) { run(true, r * per_run_max); });
    } else {
      for (int r = 0; r < runs; ++r) run(false, r * per_run_max);
    }
  }

  void require_image() const {
    if (!image_set) {
      throw Error(ErrorCode::kWrongCallOrder, "an image must be set with set_image() before mask prediction");
    }
  }

  size_t low_res_plane() const { return static_cast<size_t>(info.low_res_size) * info.low_res_size; }

  // Decoder outputs of all 4 tokens for `batch` prompts of `num_points` points (model frame), written in
  // place prompt by prompt. The batched decoder runs over sub-batches so its memory stays bounded whatever
  // the batch; batches of at least kDataParallelMinBatch prompts go data-parallel: runs of at most
  // kDataParallelSubBatch prompts on the one-thread session, one run per worker at a time (concurrent Run
  // calls on one session are supported), which avoids ONNX Runtime's per-operator thread synchronisation.
  // The single-prompt decoder (official interface) runs once per prompt.
  void decode(const float* coords, const float* labels, const float* mask_input, bool has_mask, int batch,
              int num_points, std::vector<float>& iou, std::vector<float>& low_res) {
    require_image();
    const size_t plane = low_res_plane();
    iou.resize(static_cast<size_t>(batch) * 4);
    low_res.resize(static_cast<size_t>(batch) * 4 * plane);
    const bool parallel = serial_decoder != nullptr && batch >= kDataParallelMinBatch;
    const int per_run_max =
        !decoder_is_batched ? 1 : std::min(batch, parallel ? kDataParallelSubBatch : kDecoderSubBatch);
    std::vector<float> zeros;
    if (mask_input == nullptr) zeros.assign(static_cast<size_t>(per_run_max) * plane, 0.0f);
    const float has_mask_value = has_mask ? 1.0f : 0.0f;
    const int64_t e = info.embedding_size, s = info.low_res_size;
    const float orig_size[2] = {static_cast<float>(orig_h), static_cast<float>(orig_w)};
    auto run = [&](detail::OnnxModel& model, int start) {
      const int64_t per_run = std::min(per_run_max, batch - start);
      const size_t p0 = static_cast<size_t>(start) * num_points;
      const float* masks = mask_input != nullptr ? mask_input + static_cast<size_t>(start) * plane : zeros.data();
      std::vector<detail::NamedTensor> inputs = {
          {kEmbeddings, embedding.data(), {1, info.embedding_channels, e, e}},
          {kPointCoords, coords + 2 * p0, {per_run, num_points, 2}},
          {kPointLabels, labels + p0, {per_run, num_points}},
          {kMaskInput, masks, {per_run, 1, s, s}},
          {kHasMaskInput, &has_mask_value, {1}},
      };
      if (!decoder_is_batched) inputs.push_back({kOrigImSize, orig_size, {2}});
      model.run_into(inputs, {{kIouPredictions, iou.data() + static_cast<size_t>(start) * 4, {per_run, 4}},
                              {kLowResMasks, low_res.data() + static_cast<size_t>(start) * 4 * plane,
                               {per_run, 4, s, s}}});
    };
    for_each_run(batch, per_run_max, parallel,
                 [&](bool serial, int start) { run(serial ? *serial_decoder : decoder, start); });
  }

  // decode() for prompts without mask input, computing low-res logits only for the prompts whose four IoU
  // predictions satisfy `wanted` (selected[b] = 1; the other prompts' logits are left unspecified). With the
  // split decoder the upscaling, about 40% of a prompt's decoder work, is skipped for the others; without it
  // this is decode() plus the flags. Runs are laid out as in decode(); `wanted` may run on several threads.
  void decode_selected(const float* coords, const float* labels, int batch, int num_points,
                       const std::function<bool(const float*)>& wanted, std::vector<float>& iou,
                       std::vector<float>& low_res, std::vector<uint8_t>& selected) {
    selected.assign(static_cast<size_t>(batch), 0);
    if (!head) {
      decode(coords, labels, nullptr, false, batch, num_points, iou, low_res);
      for (int b = 0; b < batch; ++b) selected[b] = wanted(iou.data() + static_cast<size_t>(b) * kNumMaskTokens) ? 1 : 0;
      return;
    }
    require_image();
    const size_t plane = low_res_plane();
    iou.resize(static_cast<size_t>(batch) * kNumMaskTokens);
    low_res.resize(static_cast<size_t>(batch) * kNumMaskTokens * plane);
    const bool parallel = serial_head != nullptr && batch >= kDataParallelMinBatch;
    const int per_run_max = std::min(batch, parallel ? kDataParallelSubBatch : kDecoderSubBatch);
    const std::vector<float> zeros(static_cast<size_t>(per_run_max) * plane, 0.0f);
    const float no_mask = 0.0f;
    const int64_t e = info.embedding_size, s = info.low_res_size, channels = info.embedding_channels;
    const int64_t num_tokens = e * e, weight_dim = channels / 8;
    auto run = [&](detail::OnnxModel& head_model, detail::OnnxModel& masks_model, int start) {
      const int64_t per_run = std::min(per_run_max, batch - start);
      const size_t p0 = static_cast<size_t>(start) * num_points;
      std::vector<float> weights(static_cast<size_t>(per_run) * kNumMaskTokens * weight_dim);
      std::vector<float> image_tokens(static_cast<size_t>(per_run) * num_tokens * channels);
      head_model.run_into(
          {{kEmbeddings, embedding.data(), {1, channels, e, e}},
           {kPointCoords, coords + 2 * p0, {per_run, num_points, 2}},
           {kPointLabels, labels + p0, {per_run, num_points}},
           {kMaskInput, zeros.data(), {per_run, 1, s, s}},
           {kHasMaskInput, &no_mask, {1}}},
          {{kIouPredictions, iou.data() + static_cast<size_t>(start) * kNumMaskTokens, {per_run, kNumMaskTokens}},
           {kMaskWeights, weights.data(), {per_run, kNumMaskTokens, weight_dim}},
           {kImageTokens, image_tokens.data(), {per_run, num_tokens, channels}}});
      for (int j = 0; j < per_run; ++j) {
        selected[start + j] = wanted(iou.data() + static_cast<size_t>(start + j) * kNumMaskTokens) ? 1 : 0;
      }
      // Each run of consecutive selected prompts is one decoder_masks call writing in place.
      for (int j = 0; j < per_run;) {
        if (!selected[start + j]) {
          ++j;
          continue;
        }
        int k = j;
        while (k < per_run && selected[start + k]) ++k;
        const int64_t count = k - j;
        masks_model.run_into(
            {{kImageTokens, image_tokens.data() + static_cast<size_t>(j) * num_tokens * channels,
              {count, num_tokens, channels}},
             {kMaskWeights, weights.data() + static_cast<size_t>(j) * kNumMaskTokens * weight_dim,
              {count, kNumMaskTokens, weight_dim}}},
            {{kLowResMasks, low_res.data() + static_cast<size_t>(start + j) * kNumMaskTokens * plane,
              {count, kNumMaskTokens, s, s}}});
        j = k;
      }
    };
    for_each_run(batch, per_run_max, parallel, [&](bool serial, int start) {
      run(serial ? *serial_head : *head, serial ? *serial_masks : *masks, start);
    });
  }

  // Selects tokens (1..3 for multimask, else 0) of prompt b and upscales them to the original size.
  Prediction finish(const std::vector<float>& iou, const std::vector<float>& low_res, int b, bool multimask,
                    bool return_logits) const {
    const size_t plane = low_res_plane();
    Prediction p;
    p.num_masks = multimask ? 3 : 1;
    p.height = orig_h;
    p.width = orig_w;
    p.low_res_size = info.low_res_size;
    const int first = multimask ? 1 : 0;
    const size_t full = static_cast<size_t>(orig_h) * orig_w;
    if (return_logits) p.mask_logits.resize(p.num_masks * full); else p.masks.resize(p.num_masks * full);
    for (int c = 0; c < p.num_masks; ++c) {
      const int token = first + c;
      p.iou_predictions.push_back(iou[static_cast<size_t>(b) * 4 + token]);
      const float* lr = low_res.data() + (static_cast<size_t>(b) * 4 + token) * plane;
      p.low_res_logits.insert(p.low_res_logits.end(), lr, lr + plane);
    }
    detail::parallel_for(p.num_masks, detail::worker_count(options.intra_op_threads), [&](int c) {
      const float* lr = low_res.data() + (static_cast<size_t>(b) * 4 + first + c) * plane;
      const std::vector<float> up = postprocess_mask(lr, info.low_res_size, info.low_res_size, info.image_size,
                                                     input_h, input_w, orig_h, orig_w);
      if (return_logits) {
        std::copy(up.begin(), up.end(), p.mask_logits.begin() + c * full);
      } else {
        uint8_t* dst = p.masks.data() + c * full;
        for (size_t i = 0; i < full; ++i) dst[i] = up[i] > info.mask_threshold ? 1 : 0;
      }
    });
    return p;
  }
};

Predictor::Predictor(const std::string& model_dir, const RuntimeOptions& options) {
  check_precision(options.precision);  // before touching files
  const detail::Manifest manifest = detail::load_manifest(model_dir);
  impl_ = std::make_unique<Impl>(manifest, options);
}

Predictor::~Predictor() = default;
Predictor::Predictor(Predictor&&) noexcept = default;
Predictor& Predictor::operator=(Predictor&&) noexcept = default;

void Predictor::set_image(const uint8_t* rgb, int height, int width) {
  if (rgb == nullptr) throw std::invalid_argument("set_image: image data is null");
  if (height <= 0 || width <= 0) {
    throw std::invalid_argument("set_image: image must be non-empty, got " + std::to_string(height) + "x" +
                                std::to_string(width));
  }
  Impl& m = *impl_;
  const auto [new_h, new_w] = get_preprocess_shape(height, width, m.info.image_size);
  if (new_h == 0 || new_w == 0) {
    // A 1x5000 strip would resize to zero rows: say so instead of failing inside the resampler.
    throw std::invalid_argument("set_image: a " + std::to_string(height) + "x" + std::to_string(width) +
                                " image is too elongated for image_size " + std::to_string(m.info.image_size) +
                                " (its short side would resize to 0 pixels); crop or pad it to an aspect ratio under " +
                                std::to_string(2 * m.info.image_size) + ":1");
  }
  const Image8 resized = resize_bilinear_pil(rgb, height, width, 3, new_h, new_w);
  // HWC uint8 -> 1x3xHxW float 0..255 (the encoder normalises and pads).
  std::vector<float> chw(static_cast<size_t>(3) * new_h * new_w);
  const size_t hw = static_cast<size_t>(new_h) * new_w;
  for (size_t i = 0; i < hw; ++i)
    for (int c = 0; c < 3; ++c) chw[c * hw + i] = resized.data[i * 3 + c];
  m.image_set = false;
  std::vector<Ort::Value> out =
      m.encoder.run({{kImage, chw.data(), {1, 3, new_h, new_w}}}, {kEmbeddings});
  const auto shape = out[0].GetTensorTypeAndShapeInfo().GetShape();
  if (shape.size() != 4 || shape[0] != 1 || shape[2] != m.info.embedding_size || shape[3] != m.info.embedding_size) {
    throw Error(ErrorCode::kModelFiles, m.encoder.path() + " returned an embedding of unexpected shape");
  }
  m.info.embedding_channels = static_cast<int>(shape[1]);
  const float* data = out[0].GetTensorData<float>();
  m.embedding.assign(data, data + static_cast<size_t>(shape[1]) * shape[2] * shape[3]);
  m.orig_h = height;
  m.orig_w = width;
  m.input_h = new_h;
  m.input_w = new_w;
  m.image_set = true;
}

void Predictor::set_image_bgr(const uint8_t* bgr, int height, int width) {
  if (bgr == nullptr) throw std::invalid_argument("set_image_bgr: image data is null");
  if (height <= 0 || width <= 0) throw std::invalid_argument("set_image_bgr: image must be non-empty");
  std::vector<uint8_t> rgb(static_cast<size_t>(height) * width * 3);
  for (size_t i = 0; i < rgb.size(); i += 3) {
    rgb[i] = bgr[i + 2];
    rgb[i + 1] = bgr[i + 1];
    rgb[i + 2] = bgr[i];
  }
  set_image(rgb.data(), height, width);
}

void Predictor::reset_image() {
  impl_->image_set = false;
  impl_->embedding.clear();
  impl_->orig_h = impl_->orig_w = impl_->input_h = impl_->input_w = 0;
}

bool Predictor::is_image_set() const { return impl_->image_set; }

Prediction Predictor::predict(const std::vector<std::array<float, 2>>& point_coords,
                              const std::vector<int>& point_labels, const std::optional<std::array<float, 4>>& box,
                              const std::vector<float>& mask_input, bool multimask_output, bool return_logits) {
  Impl& m = *impl_;
  m.require_image();
  detail::check_points(point_coords, point_labels, m.orig_h, m.orig_w);
  if (!mask_input.empty() && mask_input.size() != m.low_res_plane()) {
    throw std::invalid_argument("predict: mask_input must be 1x" + std::to_string(m.info.low_res_size) + "x" +
                                std::to_string(m.info.low_res_size) + " low-res logits, got " +
                                std::to_string(mask_input.size()) + " values");
  }
  if (box) detail::check_box("predict: box", *box, m.orig_h, m.orig_w);
  // SAM's prompt encoder: points, then a padding point (label -1) when there is no box, then box corners (2, 3).
  std::vector<float> coords, labels;
  for (size_t i = 0; i < point_coords.size(); ++i) {
    const PointD p = apply_coords({point_coords[i][0], point_coords[i][1]}, m.orig_h, m.orig_w, m.info.image_size);
    coords.push_back(static_cast<float>(p.x));
    coords.push_back(static_cast<float>(p.y));
    labels.push_back(static_cast<float>(point_labels[i]));
  }
  if (box) {
    const auto t = apply_box({(*box)[0], (*box)[1], (*box)[2], (*box)[3]}, m.orig_h, m.orig_w, m.info.image_size);
    coords.insert(coords.end(), {static_cast<float>(t[0]), static_cast<float>(t[1]), static_cast<float>(t[2]),
                                 static_cast<float>(t[3])});
    labels.insert(labels.end(), {2.0f, 3.0f});
  } else if (!point_coords.empty()) {
    coords.insert(coords.end(), {0.0f, 0.0f});
    labels.push_back(-1.0f);
  }
  std::vector<float> iou, low_res;
  m.decode(coords.data(), labels.data(), mask_input.empty() ? nullptr : mask_input.data(), !mask_input.empty(), 1,
           static_cast<int>(labels.size()), iou, low_res);
  return m.finish(iou, low_res, 0, multimask_output, return_logits);
}

std::vector<Prediction> Predictor::predict_boxes(const std::vector<std::array<float, 4>>& boxes,
                                                 bool multimask_output, bool return_logits) {
  Impl& m = *impl_;
  m.require_image();
  if (boxes.empty()) throw std::invalid_argument("predict_boxes: boxes must not be empty");
  std::vector<float> coords, labels;
  for (size_t i = 0; i < boxes.size(); ++i) {
    const auto& b = boxes[i];
    detail::check_box("predict_boxes: boxes[" + std::to_string(i) + "]", b, m.orig_h, m.orig_w);
    const auto t = apply_box({b[0], b[1], b[2], b[3]}, m.orig_h, m.orig_w, m.info.image_size);
    coords.insert(coords.end(), {static_cast<float>(t[0]), static_cast<float>(t[1]), static_cast<float>(t[2]),
                                 static_cast<float>(t[3])});
    labels.insert(labels.end(), {2.0f, 3.0f});
  }
  std::vector<float> iou, low_res;
  const int batch = static_cast<int>(boxes.size());
  m.decode(coords.data(), labels.data(), nullptr, false, batch, 2, iou, low_res);
  std::vector<Prediction> out;
  for (int b = 0; b < batch; ++b) out.push_back(m.finish(iou, low_res, b, multimask_output, return_logits));
  return out;
}

void Predictor::decode_batch(const std::vector<float>& point_coords, const std::vector<float>& point_labels,
                             int batch, int num_points, std::vector<float>& iou_predictions,
                             std::vector<float>& low_res_logits) {
  check_batch_prompts("decode_batch", point_coords, point_labels, batch, num_points);
  impl_->decode(point_coords.data(), point_labels.data(), nullptr, false, batch, num_points, iou_predictions,
                low_res_logits);
}

std::vector<float> Predictor::get_image_embedding() const {
  impl_->require_image();
  return impl_->embedding;
}

void Predictor::decode_batch_selected(const std::vector<float>& point_coords, const std::vector<float>& point_labels,
                                      int batch, int num_points, const std::function<bool(const float*)>& wanted,
                                      std::vector<float>& iou_predictions, std::vector<float>& low_res_logits,
                                      std::vector<uint8_t>& selected) {
  check_batch_prompts("decode_batch_selected", point_coords, point_labels, batch, num_points);
  if (!wanted) throw std::invalid_argument("decode_batch_selected: wanted must be a callable");
  impl_->decode_selected(point_coords.data(), point_labels.data(), batch, num_points, wanted, iou_predictions,
                         low_res_logits, selected);
}

bool Predictor::load_split_decoder() { return impl_->load_split_decoder(); }

bool Predictor::has_split_decoder() const { return impl_->head != nullptr; }

const ModelInfo& Predictor::model_info() const { return impl_->info; }
std::array<int, 2> Predictor::original_size() const { return {impl_->orig_h, impl_->orig_w}; }
std::array<int, 2> Predictor::input_size() const { return {impl_->input_h, impl_->input_w}; }
const RuntimeOptions& Predictor::options() const { return impl_->options; }

}  // namespace fastsam
