// fastsam_segment: image in -> overlay PNG + COCO RLE JSON out, using the installed fastsam_rt package.
//
//   fastsam_segment --model DIR --image IMG --output PREFIX [--point X,Y[,LABEL]]... [--box X0,Y0,X1,Y1]
//                   [--points-per-side N] [--threads N] [--provider cpu|cuda|tensorrt]
//
// With a point or box prompt it runs the Predictor (best of 3 masks); without one, the automatic mask
// generator. Writes PREFIX.png (masks blended over the image) and PREFIX.json (COCO RLE per mask).
#include <array>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb_image.h>
#include <stb_image_write.h>

#include "fastsam/fastsam.hpp"

namespace {

struct Args {
  std::string model, image, output, provider = "cpu";
  std::vector<std::array<float, 2>> points;
  std::vector<int> labels;
  std::optional<std::array<float, 4>> box;
  int points_per_side = 32;
  int threads = 0;
};

std::vector<float> parse_numbers(const std::string& text, const std::string& flag) {
  std::vector<float> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    try {
      out.push_back(std::stof(item));
    } catch (const std::exception&) {
      throw std::invalid_argument(flag + ": '" + text + "' is not a comma-separated list of numbers");
    }
  }
  return out;
}

int parse_int(const std::string& text, const std::string& flag) {
  try {
    return std::stoi(text);
  } catch (const std::exception&) {
    throw std::invalid_argument(flag + ": '" + text + "' is not an integer");
  }
}

const char* kUsage =
    "usage: fastsam_segment --model DIR --image IMG --output PREFIX [--point X,Y[,LABEL]]...\n"
    "                       [--box X0,Y0,X1,Y1] [--points-per-side N] [--threads N] [--provider cpu|cuda|tensorrt]\n";

Args parse_args(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "-h" || flag == "--help") {
      std::cout << kUsage;
      std::exit(0);
    }
    if (i + 1 >= argc) throw std::invalid_argument(flag + " needs a value");
    const std::string value = argv[++i];
    if (flag == "--model") a.model = value;
    else if (flag == "--image") a.image = value;
    else if (flag == "--output") a.output = value;
    else if (flag == "--provider") a.provider = value;
    else if (flag == "--threads") a.threads = parse_int(value, flag);
    else if (flag == "--points-per-side") a.points_per_side = parse_int(value, flag);
    else if (flag == "--point") {
      const auto v = parse_numbers(value, flag);
      if (v.size() != 2 && v.size() != 3) throw std::invalid_argument("--point takes X,Y or X,Y,LABEL");
      a.points.push_back({v[0], v[1]});
      a.labels.push_back(v.size() == 3 ? static_cast<int>(v[2]) : 1);
    } else if (flag == "--box") {
      const auto v = parse_numbers(value, flag);
      if (v.size() != 4) throw std::invalid_argument("--box takes X0,Y0,X1,Y1");
      a.box = std::array<float, 4>{v[0], v[1], v[2], v[3]};
    } else {
      throw std::invalid_argument("unknown option " + flag);
    }
  }
  if (a.model.empty() || a.image.empty() || a.output.empty()) {
    throw std::invalid_argument("--model, --image and --output are required");
  }
  return a;
}

struct OutputMask {
  fastsam::Rle rle;
  float score;
};

void write_outputs(const Args& a, const std::vector<uint8_t>& rgb, int h, int w, const std::vector<OutputMask>& masks) {
  std::vector<uint8_t> overlay = rgb;
  for (size_t m = 0; m < masks.size(); ++m) {
    // A fixed palette keeps overlays comparable between runs.
    const uint8_t color[3] = {static_cast<uint8_t>(64 + (m * 97) % 192), static_cast<uint8_t>(64 + (m * 57) % 192),
                              static_cast<uint8_t>(64 + (m * 149) % 192)};
    const std::vector<uint8_t> mask = fastsam::rle_to_mask(masks[m].rle);
    for (size_t p = 0; p < mask.size(); ++p) {
      if (!mask[p]) continue;
      for (int c = 0; c < 3; ++c) overlay[p * 3 + c] = static_cast<uint8_t>((overlay[p * 3 + c] + color[c]) / 2);
    }
  }
  const std::string png = a.output + ".png";
  if (!stbi_write_png(png.c_str(), w, h, 3, overlay.data(), w * 3)) {
    throw fastsam::Error(fastsam::ErrorCode::kIo, "could not write " + png);
  }
  std::ofstream json(a.output + ".json");
  if (!json) throw fastsam::Error(fastsam::ErrorCode::kIo, "could not write " + a.output + ".json");
  json << "{\"image\": \"" << a.image << "\", \"height\": " << h << ", \"width\": " << w << ", \"masks\": [";
  for (size_t m = 0; m < masks.size(); ++m) {
    // COCO counts strings use characters 48..111 only, none of which need JSON escaping except '\\' (92).
    std::string counts;
    for (char c : fastsam::rle_to_coco_string(masks[m].rle)) {
      if (c == '\\') counts += '\\';
      counts += c;
    }
    json << (m ? ", " : "") << "{\"segmentation\": {\"size\": [" << h << ", " << w << "], \"counts\": \"" << counts
         << "\"}, \"area\": " << fastsam::rle_area(masks[m].rle) << ", \"score\": " << masks[m].score << "}";
  }
  json << "]}\n";
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Args a = parse_args(argc, argv);
    int w = 0, h = 0, channels = 0;
    uint8_t* pixels = stbi_load(a.image.c_str(), &w, &h, &channels, 3);
    if (pixels == nullptr) throw fastsam::Error(fastsam::ErrorCode::kIo, "could not read image " + a.image);
    std::vector<uint8_t> rgb(pixels, pixels + static_cast<size_t>(w) * h * 3);
    stbi_image_free(pixels);

    fastsam::RuntimeOptions runtime;
    runtime.provider = fastsam::parse_execution_provider(a.provider);
    runtime.intra_op_threads = a.threads;
    std::vector<OutputMask> out;
    if (!a.points.empty() || a.box) {
      fastsam::Predictor predictor(a.model, runtime);
      predictor.set_image(rgb.data(), h, w);
      const fastsam::Prediction p = predictor.predict(a.points, a.labels, a.box);
      int best = 0;
      for (int c = 1; c < p.num_masks; ++c)
        if (p.iou_predictions[c] > p.iou_predictions[best]) best = c;
      out.push_back({fastsam::mask_to_rle(p.masks.data() + static_cast<size_t>(best) * h * w, h, w),
                     p.iou_predictions[best]});
    } else {
      fastsam::AmgOptions params;
      params.points_per_side = a.points_per_side;
      params.output_mode = fastsam::OutputMode::kUncompressedRle;
      fastsam::AutomaticMaskGenerator generator(a.model, params, runtime);
      for (fastsam::MaskRecord& r : generator.generate(rgb.data(), h, w)) out.push_back({std::move(r.rle), r.predicted_iou});
    }
    write_outputs(a, rgb, h, w, out);
    std::cout << "wrote " << a.output << ".png and " << a.output << ".json (" << out.size() << " masks)\n";
    return 0;
  } catch (const std::invalid_argument& e) {
    std::cerr << "error: " << e.what() << "\n" << kUsage;
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
}
