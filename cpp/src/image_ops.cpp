#include "fastsam/image_ops.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

namespace fastsam {
namespace {

// --- PIL (libImaging/Resample.c) ---
constexpr int kPrecisionBits = 32 - 8 - 2;

struct PilCoeffs {
  int ksize = 0;
  std::vector<int> bounds;  // (xmin, count) per output pixel
  std::vector<int> kk;      // fixed-point coefficients, ksize per output pixel
};

PilCoeffs pil_coeffs(int in_size, int out_size) {
  const double support_unit = 1.0;  // bilinear (triangle) filter
  const double scale = static_cast<double>(in_size) / out_size;
  const double filterscale = std::max(scale, 1.0);
  const double support = support_unit * filterscale;
  PilCoeffs c;
  c.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
  c.bounds.resize(2 * static_cast<size_t>(out_size));
  c.kk.assign(static_cast<size_t>(out_size) * c.ksize, 0);
  std::vector<double> k(c.ksize);
  for (int xx = 0; xx < out_size; ++xx) {
    const double center = (xx + 0.5) * scale;
    const double ss = 1.0 / filterscale;
    int xmin = static_cast<int>(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    int xmax = static_cast<int>(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    double ww = 0.0;
    for (int x = 0; x < xmax; ++x) {
      double arg = (x + xmin - center + 0.5) * ss;
      if (arg < 0) arg = -arg;
      const double w = arg < 1.0 ? 1.0 - arg : 0.0;
      k[x] = w;
      ww += w;
    }
    for (int x = 0; x < xmax; ++x) {
      const double v = ww != 0.0 ? k[x] / ww : k[x];
      c.kk[static_cast<size_t>(xx) * c.ksize + x] =
          v < 0 ? static_cast<int>(-0.5 + v * (1 << kPrecisionBits)) : static_cast<int>(0.5 + v * (1 << kPrecisionBits));
    }
    c.bounds[2 * xx] = xmin;
    c.bounds[2 * xx + 1] = xmax;
  }
  return c;
}

inline uint8_t clip8(int v) {
  const int s = v >> kPrecisionBits;
  return static_cast<uint8_t>(s < 0 ? 0 : (s > 255 ? 255 : s));
}

// --- PyTorch upsample_bilinear2d (align_corners=False, sizes given) ---
struct TorchAxis {
  std::vector<int> i0, i1;
  std::vector<float> l0, l1;
};

TorchAxis torch_axis(int in_size, int out_size, int count) {
  TorchAxis a;
  a.i0.resize(count);
  a.i1.resize(count);
  a.l0.resize(count);
  a.l1.resize(count);
  const float scale = static_cast<float>(in_size) / static_cast<float>(out_size);
  for (int o = 0; o < count; ++o) {
    if (in_size == out_size) {
      a.i0[o] = a.i1[o] = o;
      a.l0[o] = 1.0f;
      a.l1[o] = 0.0f;
      continue;
    }
    float src = scale * (static_cast<float>(o) + 0.5f) - 0.5f;
    if (src < 0) src = 0;
    const int idx = std::min(static_cast<int>(std::floor(src)), in_size - 1);
    const float lambda = std::min(std::max(src - static_cast<float>(idx), 0.0f), 1.0f);
    a.i0[o] = idx;
    a.i1[o] = idx + ((idx < in_size - 1) ? 1 : 0);
    a.l1[o] = lambda;
    a.l0[o] = 1.0f - lambda;
  }
  return a;
}

// Output rows [0, rows) and cols [0, cols) of the (out_h, out_w) resize of `plane`, into `dst` (rows x cols).
void torch_resize_region(const float* plane, int height, int width, int out_h, int out_w, int rows, int cols,
                         float* dst) {
  const TorchAxis ay = torch_axis(height, out_h, rows);
  const TorchAxis ax = torch_axis(width, out_w, cols);
  for (int y = 0; y < rows; ++y) {
    const float* r0 = plane + static_cast<size_t>(ay.i0[y]) * width;
    const float* r1 = plane + static_cast<size_t>(ay.i1[y]) * width;
    const float h0 = ay.l0[y], h1 = ay.l1[y];
    float* out = dst + static_cast<size_t>(y) * cols;
    for (int x = 0; x < cols; ++x) {
      const int x0 = ax.i0[x], x1 = ax.i1[x];
      const float w0 = ax.l0[x], w1 = ax.l1[x];
      float t0 = r0[x0] * w0;
      t0 += r0[x1] * w1;
      float t1 = r1[x0] * w0;
      t1 += r1[x1] * w1;
      float v = t0 * h0;
      v += t1 * h1;
      out[x] = v;
    }
  }
}

void check_size(const char* what, int h, int w) {
  if (h <= 0 || w <= 0) {
    throw std::invalid_argument(std::string(what) + ": sizes must be positive, got " + std::to_string(h) + "x" +
                                std::to_string(w));
  }
}

}  // namespace

Image8 resize_bilinear_pil(const uint8_t* pixels, int height, int width, int channels, int out_h, int out_w) {
  check_size("resize_bilinear_pil input", height, width);
  check_size("resize_bilinear_pil output", out_h, out_w);
  if (channels < 1 || channels > 4) throw std::invalid_argument("resize_bilinear_pil: channels must be 1..4");
  if (pixels == nullptr) throw std::invalid_argument("resize_bilinear_pil: pixels is null");
  const bool need_h = out_w != width;
  const bool need_v = out_h != height;
  const PilCoeffs ch = pil_coeffs(width, out_w);
  const PilCoeffs cv = pil_coeffs(height, out_h);
  const int ybox_first = cv.bounds[0];
  const int ybox_last = cv.bounds[2 * (out_h - 1)] + cv.bounds[2 * (out_h - 1) + 1];

  // Horizontal pass over the rows the vertical pass will read.
  Image8 temp;
  const uint8_t* src = pixels;
  int src_w = width, row_offset = 0;
  if (need_h) {
    temp.height = ybox_last - ybox_first;
    temp.width = out_w;
    temp.channels = channels;
    temp.data.resize(static_cast<size_t>(temp.height) * out_w * channels);
    for (int y = 0; y < temp.height; ++y) {
      const uint8_t* in_row = pixels + static_cast<size_t>(y + ybox_first) * width * channels;
      uint8_t* out_row = temp.data.data() + static_cast<size_t>(y) * out_w * channels;
      for (int xx = 0; xx < out_w; ++xx) {
        const int xmin = ch.bounds[2 * xx], xmax = ch.bounds[2 * xx + 1];
        const int* k = &ch.kk[static_cast<size_t>(xx) * ch.ksize];
        for (int c = 0; c < channels; ++c) {
          int ss = 1 << (kPrecisionBits - 1);
          for (int x = 0; x < xmax; ++x) ss += in_row[(x + xmin) * channels + c] * k[x];
          out_row[xx * channels + c] = clip8(ss);
        }
      }
    }
    src = temp.data.data();
    src_w = out_w;
    row_offset = ybox_first;
  }

  Image8 out;
  out.height = out_h;
  out.width = out_w;
  out.channels = channels;
  if (!need_v) {
    if (need_h) {
      out.data = std::move(temp.data);
    } else {
      out.data.assign(pixels, pixels + static_cast<size_t>(height) * width * channels);
    }
    return out;
  }
  out.data.resize(static_cast<size_t>(out_h) * out_w * channels);
  for (int yy = 0; yy < out_h; ++yy) {
    const int ymin = cv.bounds[2 * yy] - row_offset, ymax = cv.bounds[2 * yy + 1];
    const int* k = &cv.kk[static_cast<size_t>(yy) * cv.ksize];
    uint8_t* out_row = out.data.data() + static_cast<size_t>(yy) * out_w * channels;
    for (int xx = 0; xx < out_w * channels; ++xx) {
      int ss = 1 << (kPrecisionBits - 1);
      for (int y = 0; y < ymax; ++y) ss += src[static_cast<size_t>(y + ymin) * src_w * channels + xx] * k[y];
      out_row[xx] = clip8(ss);
    }
  }
  return out;
}

std::vector<float> resize_bilinear_torch(const float* plane, int height, int width, int out_h, int out_w) {
  check_size("resize_bilinear_torch input", height, width);
  check_size("resize_bilinear_torch output", out_h, out_w);
  std::vector<float> out(static_cast<size_t>(out_h) * out_w);
  torch_resize_region(plane, height, width, out_h, out_w, out_h, out_w, out.data());
  return out;
}

std::vector<float> postprocess_mask(const float* low_res, int low_h, int low_w, int image_size, int input_h,
                                    int input_w, int orig_h, int orig_w) {
  check_size("postprocess_mask low-res", low_h, low_w);
  check_size("postprocess_mask input size", input_h, input_w);
  check_size("postprocess_mask original size", orig_h, orig_w);
  if (input_h > image_size || input_w > image_size) {
    throw std::invalid_argument("postprocess_mask: input size exceeds image_size");
  }
  // Only the rows/cols of the image_size^2 upscale that survive the crop are computed.
  std::vector<float> padded(static_cast<size_t>(input_h) * input_w);
  torch_resize_region(low_res, low_h, low_w, image_size, image_size, input_h, input_w, padded.data());
  return resize_bilinear_torch(padded.data(), input_h, input_w, orig_h, orig_w);
}

bool remove_small_regions(std::vector<uint8_t>& mask, int height, int width, double area_thresh, RegionMode mode) {
  const size_t n = static_cast<size_t>(height) * width;
  if (mask.size() != n) throw std::invalid_argument("remove_small_regions: mask size does not match height*width");
  const bool holes = mode == RegionMode::kHoles;
  // Components of the working mask (background for holes, foreground for islands), labelled in raster
  // order of their first pixel as OpenCV does; label 0 is the complement.
  std::vector<int> labels(n, 0);
  std::vector<long long> sizes(1, 0);
  std::vector<size_t> stack;
  for (size_t start = 0; start < n; ++start) {
    const bool working = holes ? mask[start] == 0 : mask[start] != 0;
    if (!working || labels[start] != 0) continue;
    const int label = static_cast<int>(sizes.size());
    sizes.push_back(0);
    labels[start] = label;
    stack.push_back(start);
    while (!stack.empty()) {
      const size_t p = stack.back();
      stack.pop_back();
      ++sizes[label];
      const int py = static_cast<int>(p / width), px = static_cast<int>(p % width);
      for (int dy = -1; dy <= 1; ++dy) {
        const int y = py + dy;
        if (y < 0 || y >= height) continue;
        for (int dx = -1; dx <= 1; ++dx) {
          const int x = px + dx;
          if (x < 0 || x >= width || (dx == 0 && dy == 0)) continue;
          const size_t q = static_cast<size_t>(y) * width + x;
          const bool w = holes ? mask[q] == 0 : mask[q] != 0;
          if (w && labels[q] == 0) {
            labels[q] = label;
            stack.push_back(q);
          }
        }
      }
    }
  }
  const int n_labels = static_cast<int>(sizes.size());
  std::vector<char> small(n_labels, 0);
  bool any_small = false;
  for (int l = 1; l < n_labels; ++l) {
    if (static_cast<double>(sizes[l]) < area_thresh) {
      small[l] = 1;
      any_small = true;
    }
  }
  if (!any_small) return false;
  std::vector<char> fill(n_labels, 0);
  if (holes) {
    fill[0] = 1;
    for (int l = 1; l < n_labels; ++l) fill[l] = small[l];
  } else {
    bool any = false;
    for (int l = 1; l < n_labels; ++l) {
      fill[l] = !small[l];
      any = any || fill[l];
    }
    if (!any) {
      int best = 1;
      for (int l = 2; l < n_labels; ++l)
        if (sizes[l] > sizes[best]) best = l;
      fill[best] = 1;
    }
  }
  for (size_t p = 0; p < n; ++p) mask[p] = fill[labels[p]] ? 1 : 0;
  return true;
}

}  // namespace fastsam
