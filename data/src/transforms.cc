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

// Resamples into `emit(channel, y, x, value)` with value on the 0..255 scale. Vertical pass into
// a float row covering the crop's columns, then the horizontal pass from that row.
template <class Emit>
void resample_rows(const Image& image, const CropBox& crop, int out_w, int out_h, Emit emit) {
  if (image.width <= 0 || image.height <= 0 || out_w <= 0 || out_h <= 0)
    throw std::invalid_argument("resample: empty image or output");
  Taps xs = taps(crop.x, crop.width, out_w, image.width);
  Taps ys = taps(crop.y, crop.height, out_h, image.height);
  const int x_first = *std::min_element(xs.lo.begin(), xs.lo.end());
  const int x_last = *std::max_element(xs.hi.begin(), xs.hi.end());
  const int span = x_last - x_first + 1;
  thread_local std::vector<float> row;
  row.resize(static_cast<size_t>(span) * 3);
  const size_t stride = static_cast<size_t>(image.width) * 3;
  for (int y = 0; y < out_h; ++y) {
    const std::uint8_t* r0 = image.rgb.data() + ys.lo[y] * stride + x_first * 3;
    const std::uint8_t* r1 = image.rgb.data() + ys.hi[y] * stride + x_first * 3;
    const float wy = ys.w[y];
    for (int k = 0; k < span * 3; ++k) row[k] = r0[k] + (static_cast<float>(r1[k]) - r0[k]) * wy;
    for (int x = 0; x < out_w; ++x) {
      const float* a = row.data() + (xs.lo[x] - x_first) * 3;
      const float* b = row.data() + (xs.hi[x] - x_first) * 3;
      const float wx = xs.w[x];
      for (int c = 0; c < 3; ++c) emit(c, y, x, a[c] + (b[c] - a[c]) * wx);
    }
  }
}

}  // namespace

void resample_normalize(const Image& image, const CropBox& crop, int out_w, int out_h, bool flip,
                        const Normalization& n, float* out) {
  float scale[3], offset[3];
  for (int c = 0; c < 3; ++c) {
    scale[c] = 1.0f / (255.0f * n.std[c]);
    offset[c] = -n.mean[c] / n.std[c];
  }
  const size_t plane = static_cast<size_t>(out_w) * out_h;
  resample_rows(image, crop, out_w, out_h, [&](int c, int y, int x, float v) {
    int column = flip ? out_w - 1 - x : x;
    out[c * plane + static_cast<size_t>(y) * out_w + column] = v * scale[c] + offset[c];
  });
}

Image resample(const Image& image, const CropBox& crop, int out_w, int out_h) {
  Image out{out_w, out_h, std::vector<std::uint8_t>(static_cast<size_t>(out_w) * out_h * 3)};
  resample_rows(image, crop, out_w, out_h, [&](int c, int y, int x, float v) {
    out.rgb[(static_cast<size_t>(y) * out_w + x) * 3 + c] =
        static_cast<std::uint8_t>(std::clamp(std::lround(v), 0L, 255L));
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
  trace.eighths = scale_eighths_for(trace.crop.width, trace.crop.height, size, size);
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
