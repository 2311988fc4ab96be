// The per-sample transforms: torchvision's RandomResizedCrop + RandomHorizontalFlip for training
// and Resize + CenterCrop for validation, as crop boxes in source pixels, then one decode at the
// smallest sufficient DCT scale and one bilinear resampling straight into normalized float CHW.
//
// Doing the validation resize and crop as one resampling gives the same pixels as doing them in
// two steps: bilinear resizing samples the source at fixed points, and the center crop keeps a
// whole-pixel subset of those points.
#include "jpeg_internal.h"

#include <algorithm>
#include <cmath>

namespace basin::data {
namespace {

std::uint64_t mix64(std::uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// Python's round(), which the torchvision code calls: halves go to the even neighbour.
double round_half_even(double x) { return std::nearbyint(x); }

}  // namespace

std::uint64_t Rng::next() { return mix64(state += 0x9e3779b97f4a7c15ULL); }

double Rng::uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

double Rng::uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }

std::int64_t Rng::integer(std::int64_t n) {
  // 53 random bits scaled to n: the bias is below n / 2^53, nothing for any dataset size.
  return std::min(static_cast<std::int64_t>(uniform() * static_cast<double>(n)), n - 1);
}

Rng sample_rng(std::uint64_t seed, std::int64_t epoch, std::int64_t position) {
  std::uint64_t h = mix64(seed + 0x243f6a8885a308d3ULL);
  h = mix64(h ^ (static_cast<std::uint64_t>(epoch) * 0x9e3779b97f4a7c15ULL + 0x13198a2e03707344ULL));
  h = mix64(h ^ (static_cast<std::uint64_t>(position) * 0xd1b54a32d192ed03ULL + 0xa4093822299f31d0ULL));
  return Rng{h};
}

CropBox random_resized_crop(int width, int height, const TrainAugment& a, Rng& rng) {
  const double area = static_cast<double>(width) * height;
  const double log_lo = std::log(a.min_ratio), log_hi = std::log(a.max_ratio);
  for (int attempt = 0; attempt < 10; ++attempt) {
    double target_area = area * rng.uniform(a.min_scale, a.max_scale);
    double ratio = std::exp(rng.uniform(log_lo, log_hi));
    int w = static_cast<int>(round_half_even(std::sqrt(target_area * ratio)));
    int h = static_cast<int>(round_half_even(std::sqrt(target_area / ratio)));
    if (0 < w && w <= width && 0 < h && h <= height) {
      int top = static_cast<int>(rng.integer(height - h + 1));
      int left = static_cast<int>(rng.integer(width - w + 1));
      return {static_cast<double>(left), static_cast<double>(top), static_cast<double>(w),
              static_cast<double>(h)};
    }
  }
  // Fallback: the center crop at the allowed ratio nearest the image's own.
  double in_ratio = static_cast<double>(width) / height;
  int w = width, h = height;
  if (in_ratio < a.min_ratio) {
    h = static_cast<int>(round_half_even(w / a.min_ratio));
  } else if (in_ratio > a.max_ratio) {
    w = static_cast<int>(round_half_even(h * a.max_ratio));
  }
  return {static_cast<double>((width - w) / 2), static_cast<double>((height - h) / 2),
          static_cast<double>(w), static_cast<double>(h)};
}

CropBox resize_center_crop(int width, int height, const ValTransform& v) {
  // Resize(int): the shorter side becomes `resize`, the longer one int(resize * long / short).
  int new_w, new_h;
  if (width <= height) {
    new_w = v.resize;
    new_h = static_cast<int>(static_cast<double>(v.resize) * height / width);
  } else {
    new_h = v.resize;
    new_w = static_cast<int>(static_cast<double>(v.resize) * width / height);
  }
  int top = static_cast<int>(round_half_even((new_h - v.crop) / 2.0));
  int left = static_cast<int>(round_half_even((new_w - v.crop) / 2.0));
  double sx = static_cast<double>(width) / new_w, sy = static_cast<double>(height) / new_h;
  return {left * sx, top * sy, v.crop * sx, v.crop * sy};
}

namespace {

struct Taps {
  std::vector<int> lo, hi;
  std::vector<float> w;  // weight of `hi`
};

// Source taps for each output index: centre of output pixel i sits at
// start + (i + 0.5) * extent / n - 0.5 in source pixels, clamped to the image.
Taps taps(double start, double extent, int n, int size) {
  Taps t;
  t.lo.resize(n);
  t.hi.resize(n);
  t.w.resize(n);
  for (int i = 0; i < n; ++i) {
    double s = start + (i + 0.5) * extent / n - 0.5;
    double f = std::floor(s);
    int lo = static_cast<int>(f);
    t.w[i] = static_cast<float>(s - f);
    t.lo[i] = std::clamp(lo, 0, size - 1);
    t.hi[i] = std::clamp(lo + 1, 0, size - 1);
  }
  return t;
}

// The crop's source columns, the vertical pass's float row over them, and per output column the
// offsets of its two taps into that row.
struct Plan {
  Taps ys;
  int x_first = 0, span = 0;
  std::vector<int> left, right;  // offsets (in floats) into the row
  std::vector<float> wx;
};

Plan plan_for(const Image& image, const CropBox& crop, int out_w, int out_h) {
  if (image.width <= 0 || image.height <= 0 || out_w <= 0 || out_h <= 0)
    throw std::invalid_argument("resample: empty image or output");
  Plan p;
  Taps xs = taps(crop.x, crop.width, out_w, image.width);
  p.ys = taps(crop.y, crop.height, out_h, image.height);
  p.x_first = *std::min_element(xs.lo.begin(), xs.lo.end());
  p.span = *std::max_element(xs.hi.begin(), xs.hi.end()) - p.x_first + 1;
  p.left.resize(out_w);
  p.right.resize(out_w);
  for (int x = 0; x < out_w; ++x) {
    p.left[x] = (xs.lo[x] - p.x_first) * 3;
    p.right[x] = (xs.hi[x] - p.x_first) * 3;
  }
  p.wx = std::move(xs.w);
  return p;
}

// Separable bilinear: for each output row, blend its two source rows over the crop's columns
// into `row` (0..255 floats), then hand the row to `store(y, row)` for the horizontal pass.
template <class Store>
void resample_rows(const Image& image, const Plan& p, int out_h, std::vector<float>& row, Store store) {
  row.resize(static_cast<size_t>(p.span) * 3);
  float* r = row.data();
  const int n = p.span * 3;
  const size_t stride = static_cast<size_t>(image.width) * 3;
  const std::uint8_t* base = image.rgb.data() + static_cast<size_t>(p.x_first) * 3;
  for (int y = 0; y < out_h; ++y) {
    const std::uint8_t* r0 = base + p.ys.lo[y] * stride;
    const std::uint8_t* r1 = base + p.ys.hi[y] * stride;
    const float wy = p.ys.w[y], w0 = 1 - wy;
    for (int k = 0; k < n; ++k) r[k] = w0 * r0[k] + wy * r1[k];
    store(y, r);
  }
}

}  // namespace

void resample_normalize(const Image& image, const CropBox& crop, int out_w, int out_h, bool flip,
                        const Normalization& n, float* out) {
  const Plan p = plan_for(image, crop, out_w, out_h);
  float scale[3], offset[3];
  for (int c = 0; c < 3; ++c) {
    scale[c] = 1.0f / (255.0f * n.std[c]);
    offset[c] = -n.mean[c] / n.std[c];
  }
  const size_t plane = static_cast<size_t>(out_w) * out_h;
  const int* left = p.left.data();
  const int* right = p.right.data();
  const float* wx = p.wx.data();
  thread_local std::vector<float> row;
  resample_rows(image, p, out_h, row, [&](int y, const float* r) {
    for (int c = 0; c < 3; ++c) {
      float* dst = out + c * plane + static_cast<size_t>(y) * out_w;
      const float* rc = r + c;
      const float sc = scale[c], of = offset[c];
      if (flip) {
        for (int x = 0; x < out_w; ++x) {
          float a = rc[left[x]], b = rc[right[x]];
          dst[out_w - 1 - x] = (a + (b - a) * wx[x]) * sc + of;
        }
      } else {
        for (int x = 0; x < out_w; ++x) {
          float a = rc[left[x]], b = rc[right[x]];
          dst[x] = (a + (b - a) * wx[x]) * sc + of;
        }
      }
    }
  });
}

Image resample(const Image& image, const CropBox& crop, int out_w, int out_h) {
  const Plan p = plan_for(image, crop, out_w, out_h);
  Image out{out_w, out_h, std::vector<std::uint8_t>(static_cast<size_t>(out_w) * out_h * 3)};
  std::vector<float> row;
  resample_rows(image, p, out_h, row, [&](int y, const float* r) {
    std::uint8_t* dst = out.rgb.data() + static_cast<size_t>(y) * out_w * 3;
    for (int x = 0; x < out_w; ++x)
      for (int c = 0; c < 3; ++c) {
        float a = r[p.left[x] + c], b = r[p.right[x] + c];
        dst[x * 3 + c] = static_cast<std::uint8_t>(std::clamp(std::lround(a + (b - a) * p.wx[x]), 0L, 255L));
      }
  });
  return out;
}

SampleTrace load_sample(std::span<const std::uint8_t> jpeg, const Transform& t, Rng& rng,
                        float* out) {
  SampleTrace trace;
  JpegHeader header = read_jpeg_header(jpeg);
  trace.width = header.width;
  trace.height = header.height;
  const int size = t.output_size();
  if (t.kind == Transform::Kind::train) {
    trace.crop = random_resized_crop(header.width, header.height, t.train, rng);
    trace.flipped = rng.uniform() < t.train.flip_probability;
  } else {
    trace.crop = resize_center_crop(header.width, header.height, t.val);
  }
  trace.eighths = 8;
  if (t.scaling != DctScaling::off) {
    trace.eighths = scale_eighths_for(trace.crop.width, trace.crop.height, size, size);
    if (t.scaling == DctScaling::fastest) trace.eighths = fastest_eighths(trace.eighths);
  }
  thread_local Image decoded;
  decode_into(jpeg, trace.eighths, t.fast_decode, decoded);
  // The DCT scaling shrinks every 8-pixel block to M pixels over the same area, so source
  // coordinates scale by exactly M/8 (not by the rounded-up decoded size over the full size).
  const double f = trace.eighths / 8.0;
  CropBox scaled{trace.crop.x * f, trace.crop.y * f, trace.crop.width * f, trace.crop.height * f};
  resample_normalize(decoded, scaled, size, size, trace.flipped, t.normalization, out);
  return trace;
}

}  // namespace basin::data
