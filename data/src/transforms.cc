// The per-sample transforms: torchvision's RandomResizedCrop + RandomHorizontalFlip for training
// and Resize + CenterCrop for validation, as crop boxes in source pixels, then one decode of just
// the region the crop reads at the smallest sufficient DCT scale, and one bilinear resampling
// (resample.cc) straight into normalized float CHW; or, for a later input stage on the GPU,
// just the decoded source rectangle that resampling would read (decode_sample).
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

// What the transform decides from the header alone, before any pixel is decoded: the crop, the
// flip and the DCT scale. The random draws are the same, in the same order, whichever decoder
// runs afterwards.
void choose(const JpegHeader& header, const Transform& t, Rng& rng, SampleTrace& trace) {
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
}

// The DCT scaling shrinks every 8-pixel block to M pixels over the same area, so source
// coordinates scale by exactly M/8 (not by the rounded-up decoded size over the full size).
CropBox scaled_crop(const SampleTrace& trace) {
  const double f = trace.eighths / 8.0;
  return {trace.crop.x * f, trace.crop.y * f, trace.crop.width * f, trace.crop.height * f};
}

// Appends the plan's source rectangle of `src` to `rgb` and describes it: the crop moves with
// the rectangle's corner, so the taps land on the same pixels.
void append_planned_rect(const PixelsAt& src, const ResamplePlan& plan, const SampleTrace& trace,
                         std::vector<std::uint8_t>& rgb, RawImage& image) {
  image.offset = rgb.size();
  image.width = plan.x_end - plan.x_first;
  image.height = plan.y_end - plan.y_first;
  const CropBox c = scaled_crop(trace);
  image.crop = {c.x - plan.x_first, c.y - plan.y_first, c.width, c.height};
  image.flip = trace.flipped;
  const size_t row = static_cast<size_t>(image.width) * 3;
  rgb.resize(image.offset + row * image.height);
  std::uint8_t* dst = rgb.data() + image.offset;
  for (int y = plan.y_first; y < plan.y_end; ++y, dst += row)
    std::copy_n(src.rgb + static_cast<size_t>(y - src.y) * src.stride + static_cast<size_t>(plan.x_first - src.x) * 3,
                row, dst);
}

}  // namespace

namespace {

// Draws the sample's crop, decodes what its taps read (the region, or the whole image at the
// chosen DCT scale) into this thread's buffer and plans the resampling: the part both outputs
// share. The pixels stay valid until this thread's next call.
PixelsAt decode_planned(std::span<const std::uint8_t> jpeg, const Transform& t, Rng& rng,
                        SampleTrace& trace, ResamplePlan& plan) {
  const int size = t.output_size();
  if (t.region_decode) {
    // The taps, and so the source rectangle they read, follow from the header: decode just that.
    thread_local ImageRegion region;
    decode_region_into(
        jpeg, t.fast_decode,
        [&](const JpegHeader& header) {
          choose(header, t, rng, trace);
          plan = plan_resample(scaled_size(header.width, trace.eighths), scaled_size(header.height, trace.eighths),
                               scaled_crop(trace), size, size);
          return RegionRequest{trace.eighths, plan.x_first, plan.y_first, plan.x_end, plan.y_end};
        },
        region);
    return {region.pixels.rgb.data(), static_cast<size_t>(region.pixels.width) * 3, region.x, region.y};
  }
  choose(read_jpeg_header(jpeg), t, rng, trace);
  thread_local Image decoded;
  decode_into(jpeg, trace.eighths, t.fast_decode, decoded);
  plan = plan_resample(decoded.width, decoded.height, scaled_crop(trace), size, size);
  return {decoded.rgb.data(), static_cast<size_t>(decoded.width) * 3, 0, 0};
}

}  // namespace

SampleTrace decode_sample(std::span<const std::uint8_t> jpeg, const Transform& t, Rng& rng,
                          std::vector<std::uint8_t>& rgb, RawImage& image) {
  SampleTrace trace;
  ResamplePlan plan;
  const PixelsAt src = decode_planned(jpeg, t, rng, trace, plan);
  append_planned_rect(src, plan, trace, rgb, image);
  return trace;
}

SampleTrace load_sample(std::span<const std::uint8_t> jpeg, const Transform& t, Rng& rng,
                        float* out) {
  SampleTrace trace;
  ResamplePlan plan;
  const PixelsAt src = decode_planned(jpeg, t, rng, trace, plan);
  resample_normalize(src, plan, trace.flipped, t.normalization, out);
  return trace;
}

}  // namespace basin::data
