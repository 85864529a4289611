// The C++ side of the bad-input matrix (docs/bad_inputs.md): every bad argument to Predictor /
// AutomaticMaskGenerator ends in std::invalid_argument naming it, every bad model directory in fastsam::Error
// with the right code naming the file; the Predictor stays usable after a rejected call. Needs an export in
// FASTSAM_RT_MODEL_DIR (exit 77 = skipped without one).
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

#include "fastsam/fastsam.hpp"
#include "harness.hpp"

using namespace fastsam;
namespace fs = std::filesystem;

static std::string model_dir() {
  const char* dir = std::getenv("FASTSAM_RT_MODEL_DIR");
  return dir ? dir : "";
}

static std::string read_text(const fs::path& path) {
  std::stringstream buffer;
  buffer << std::ifstream(path).rdbuf();
  return buffer.str();
}

// A directory whose manifest.json lists the export's files by absolute path, so single files can be
// redirected (to a damaged copy, to nothing) without copying the whole model.
static fs::path redirected_export(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / ("fastsam_bad_" + name + "_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::string manifest = read_text(fs::path(model_dir()) / "manifest.json");
  const std::string from = "\"file\": \"", to = from + fs::absolute(model_dir()).string() + "/";
  for (size_t p = manifest.find(from); p != std::string::npos; p = manifest.find(from, p + to.size()))
    manifest.replace(p, from.size(), to);
  std::ofstream(dir / "manifest.json") << manifest;
  return dir;
}

static void point_file(const fs::path& dir, const std::string& file, const fs::path& target) {
  std::string manifest = read_text(dir / "manifest.json");
  const std::string original = (fs::absolute(model_dir()) / file).string();
  const size_t p = manifest.find(original);
  if (p == std::string::npos) harness::fail(__FILE__, __LINE__, "manifest lists no " + file);
  else manifest.replace(p, original.size(), target.string());
  std::ofstream(dir / "manifest.json") << manifest;
}

// Model hashing is only the subject of the altered-file case; elsewhere it would only slow the ASan build down.
static RuntimeOptions unverified() {
  RuntimeOptions options;
  options.verify_model_files = false;
  return options;
}

template <typename Fn>
static void check_error_code(Fn&& fn, ErrorCode code, const std::string& fragment) {
  try {
    fn();
    harness::fail(__FILE__, __LINE__, "no fastsam::Error (expected one naming " + fragment + ")");
  } catch (const Error& e) {
    if (e.code() != code) harness::fail(__FILE__, __LINE__, std::string("wrong code: ") + e.what());
    if (std::string(e.what()).find(fragment) == std::string::npos)
      harness::fail(__FILE__, __LINE__, "message lacks '" + fragment + "': " + e.what());
  }
}

TEST(model_dir_with_a_missing_or_altered_file) {
  const fs::path dir = redirected_export("files");
  {
    Predictor ok(dir.string(), unverified());  // the redirected manifest itself is valid
    CHECK(!ok.is_image_set());
  }
  // decoder_masks.onnx, damaged by one byte: only the mask generator opens it (split decoder).
  const fs::path damaged = dir / "decoder_masks.onnx";
  fs::copy_file(fs::path(model_dir()) / "decoder_masks.onnx", damaged);
  {
    std::fstream f(damaged, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(100);
    const char c = static_cast<char>(f.get());
    f.seekp(100);
    f.put(static_cast<char>(c ^ 0x01));
  }
  point_file(dir, "decoder_masks.onnx", damaged);
  check_error_code([&] { AutomaticMaskGenerator g(dir.string()); }, ErrorCode::kModelFiles, damaged.string());
  // The batched decoder is gone.
  point_file(dir, "decoder_batched.onnx", dir / "gone.onnx");
  check_error_code([&] { Predictor p(dir.string(), unverified()); }, ErrorCode::kFileNotFound,
                   (dir / "gone.onnx").string());
  // manifest.json cut in half.
  const std::string manifest = read_text(dir / "manifest.json");
  std::ofstream(dir / "manifest.json") << manifest.substr(0, manifest.size() / 2);
  check_error_code([&] { Predictor p(dir.string()); }, ErrorCode::kModelFiles, "manifest.json");
  fs::remove_all(dir);
}

TEST(bad_images_are_refused_by_name) {
  Predictor predictor(model_dir(), unverified());
  const std::vector<uint8_t> pixels(3 * 5000, 128);
  CHECK_THROWS(predictor.set_image(nullptr, 10, 10), std::invalid_argument, "null");
  CHECK_THROWS(predictor.set_image(pixels.data(), 0, 10), std::invalid_argument, "non-empty");
  CHECK_THROWS(predictor.set_image(pixels.data(), 10, -1), std::invalid_argument, "non-empty");
  CHECK_THROWS(predictor.set_image_bgr(pixels.data(), 0, 0), std::invalid_argument, "non-empty");
  CHECK_THROWS(predictor.set_image(pixels.data(), 1, 5000), std::invalid_argument, "too elongated");
  CHECK(!predictor.is_image_set());
  AmgOptions params;
  params.points_per_side = 2;
  AutomaticMaskGenerator generator(model_dir(), params, unverified());
  CHECK_THROWS(generator.generate(nullptr, 8, 8), std::invalid_argument, "null");
  CHECK_THROWS(generator.generate(pixels.data(), 0, 8), std::invalid_argument, "non-empty");
}

TEST(bad_prompts_are_refused_by_name) {
  const int h = 40, w = 60;
  const std::vector<uint8_t> image(static_cast<size_t>(h) * w * 3, 90);
  Predictor predictor(model_dir(), unverified());
  CHECK_THROWS(predictor.predict({{10, 10}}, {1}), Error, "set_image");
  CHECK_THROWS(predictor.predict_boxes({{0, 0, 5, 5}}), Error, "set_image");
  predictor.set_image(image.data(), h, w);
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  using Box = std::optional<std::array<float, 4>>;
  CHECK_THROWS(predictor.predict({{nan, 10}}, {1}), std::invalid_argument, "point_coords[0] (nan, 10) must hold finite");
  CHECK_THROWS(predictor.predict({{5, 5}, {inf, 1}}, {1, 0}), std::invalid_argument, "point_coords[1] (inf, 1)");
  CHECK_THROWS(predictor.predict({{61, 10}}, {1}), std::invalid_argument, "outside the 60x40 image");
  CHECK_THROWS(predictor.predict({{5, 5}}, {2}), std::invalid_argument, "point_labels must be 0");
  CHECK_THROWS(predictor.predict({{5, 5}}, {}), std::invalid_argument, "one label per point");
  CHECK_THROWS(predictor.predict({}, {}, Box({0, 0, nan, 10})), std::invalid_argument, "predict: box (0, 0, nan, 10) must hold finite");
  CHECK_THROWS(predictor.predict({}, {}, Box({-5, 0, 10, 10})), std::invalid_argument, "outside the 60x40 image");
  CHECK_THROWS(predictor.predict({}, {}, Box({30, 30, 10, 10})), std::invalid_argument, "x1 >= x0");
  CHECK_THROWS(predictor.predict({}, {}, Box({0, 0, 10, 10}), std::vector<float>(7)), std::invalid_argument, "mask_input");
  CHECK_THROWS(predictor.predict_boxes({}), std::invalid_argument, "must not be empty");
  CHECK_THROWS(predictor.predict_boxes({{0, 0, 10, 10}, {0, 0, inf, 10}}), std::invalid_argument, "boxes[1]");
  // A rejected call leaves the image set and the next good call works.
  const Prediction p = predictor.predict({{30, 20}}, {1});
  CHECK_EQ(p.masks.size(), 3u * h * w);
}

TEST(bad_generator_options_are_refused_by_name) {
  AmgOptions p;
  p.pred_iou_thresh = std::numeric_limits<float>::quiet_NaN();
  CHECK_THROWS(AutomaticMaskGenerator(model_dir(), p), std::invalid_argument, "pred_iou_thresh");
  AmgOptions q;
  q.points_per_side = 0;
  CHECK_THROWS(AutomaticMaskGenerator(model_dir(), q), std::invalid_argument, "points_per_side");
}

int main() {
  if (model_dir().empty()) {
    std::printf("FASTSAM_RT_MODEL_DIR not set: skipped\n");
    return 77;
  }
  return harness::run_all();
}
