// The transforms: RandomResizedCrop's ranges and distributions, its fallback, the flip rate,
// the validation crop's geometry, and bilinear resampling and normalization against closed forms.
#include "../catch.h"
#include "data_test_util.h"

#include <cmath>

using namespace basin::data;
using basin::data::test::flat_image;

namespace {

// Counts of `values` in `bins` equal bins over [lo, hi).
std::vector<int> histogram(const std::vector<double>& values, double lo, double hi, int bins) {
  std::vector<int> counts(bins, 0);
  for (double v : values) {
    int b = static_cast<int>((v - lo) / (hi - lo) * bins);
    if (b >= 0 && b < bins) ++counts[b];
  }
  return counts;
}

}  // namespace

TEST_CASE("random resized crops stay in range and follow the spec's distributions", "[data][transforms]") {
  const TrainAugment a;  // 0.08..1 of the area, ratio 3/4..4/3
  const int W = 1000, H = 1000;
  std::vector<double> scales, log_ratios;
  Rng rng{2024};
  const int draws = 20000;
  for (int i = 0; i < draws; ++i) {
    CropBox c = random_resized_crop(W, H, a, rng);
    REQUIRE(c.x >= 0);
    REQUIRE(c.y >= 0);
    REQUIRE(c.x + c.width <= W);
    REQUIRE(c.y + c.height <= H);
    double scale = c.width * c.height / (W * H), ratio = c.width / c.height;
    // Integer rounding of sides of 280+ pixels moves area and ratio by well under 1%.
    REQUIRE(scale >= 0.08 * 0.99);
    REQUIRE(scale <= 1.0);
    REQUIRE(ratio >= 0.75 * 0.99);
    REQUIRE(ratio <= 4.0 / 3.0 * 1.01);
    // Below 3/4 of the area no draw of a square image can be rejected, so there the accepted
    // crops keep the drawn distributions: area uniform, log-ratio uniform.
    if (scale < 0.74) {
      scales.push_back(scale);
      log_ratios.push_back(std::log(ratio));
    }
  }
  // (0.74 - 0.08) / 0.92 of the draws, about 14,300, ~1,430 per bin (sd ~38): 15% is > 5 sd.
  REQUIRE(scales.size() > draws * 0.68);
  auto by_scale = histogram(scales, 0.08, 0.74, 10);
  auto by_ratio = histogram(log_ratios, std::log(0.75), std::log(4.0 / 3.0), 10);
  const double expected = scales.size() / 10.0;
  for (int b = 0; b < 10; ++b) {
    CAPTURE(b, by_scale[b], by_ratio[b], expected);
    REQUIRE(std::abs(by_scale[b] - expected) < 0.15 * expected);
    REQUIRE(std::abs(by_ratio[b] - expected) < 0.15 * expected);
  }
  double mean_log_ratio = 0;
  for (double r : log_ratios) mean_log_ratio += r / log_ratios.size();
  REQUIRE(std::abs(mean_log_ratio) < 0.01);  // symmetric in log: 3/4 and 4/3
}

TEST_CASE("random resized crop falls back to the center crop at the nearest ratio", "[data][transforms]") {
  // 10000 x 10: every attempt asks for a crop taller than 10 pixels, so all ten fail.
  // Fallback: h = 10, w = round(10 * 4/3) = 13, centered: x = (10000 - 13) div 2.
  Rng rng{1};
  CropBox wide = random_resized_crop(10000, 10, TrainAugment{}, rng);
  REQUIRE(wide.x == 4993);
  REQUIRE(wide.y == 0);
  REQUIRE(wide.width == 13);
  REQUIRE(wide.height == 10);
  CropBox tall = random_resized_crop(10, 10000, TrainAugment{}, rng);
  REQUIRE(tall.x == 0);
  REQUIRE(tall.y == 4993);
  REQUIRE(tall.width == 10);
  REQUIRE(tall.height == 13);
}

TEST_CASE("about half of the training samples are flipped", "[data][transforms]") {
  std::vector<std::uint8_t> jpeg = encode_jpeg(flat_image(16, 16, 10, 20, 30));
  Transform t;
  t.train.output = 4;
  std::vector<float> out(3 * 4 * 4);
  int flips = 0;
  const int n = 4000;
  for (int i = 0; i < n; ++i) {
    Rng rng = sample_rng(3, 0, i);
    flips += load_sample(jpeg, t, rng, out.data()).flipped;
  }
  // Binomial(4000, 0.5): sd 31.6; +-200 is over 6 sd.
  REQUIRE(std::abs(flips - n / 2) < 200);
}

TEST_CASE("a flip mirrors the output left to right", "[data][transforms]") {
  Image img{5, 3, {}};
  for (int i = 0; i < 5 * 3 * 3; ++i) img.rgb.push_back(static_cast<std::uint8_t>(i * 5));
  std::vector<float> plain(3 * 3 * 5), flipped(3 * 3 * 5);
  resample_normalize(img, {0, 0, 5, 3}, 5, 3, false, Normalization{}, plain.data());
  resample_normalize(img, {0, 0, 5, 3}, 5, 3, true, Normalization{}, flipped.data());
  for (int c = 0; c < 3; ++c)
    for (int y = 0; y < 3; ++y)
      for (int x = 0; x < 5; ++x) REQUIRE(flipped[(c * 3 + y) * 5 + x] == plain[(c * 3 + y) * 5 + 4 - x]);
}

TEST_CASE("the validation crop is Resize 256 then CenterCrop 224 in source pixels", "[data][transforms]") {
  // 500 x 375: Resize(256) -> 341 x 256 (int(256 * 500 / 375) = 341); CenterCrop(224): top =
  // round(16) = 16, left = round(58.5) = 58 (Python rounds halves to even).
  CropBox c = resize_center_crop(500, 375, ValTransform{});
  REQUIRE_THAT(c.x, WithinAbs(58 * 500.0 / 341, 1e-9));
  REQUIRE_THAT(c.y, WithinAbs(16 * 375.0 / 256, 1e-9));
  REQUIRE_THAT(c.width, WithinAbs(224 * 500.0 / 341, 1e-9));
  REQUIRE_THAT(c.height, WithinAbs(224 * 375.0 / 256, 1e-9));
  // And one resampling through that box equals resizing whole and then cropping whole pixels.
  Rng rng{5};
  Image img{500, 375, std::vector<std::uint8_t>(500 * 375 * 3)};
  for (auto& v : img.rgb) v = static_cast<std::uint8_t>(rng.integer(256));
  Image direct = resample(img, c, 224, 224);
  Image resized = resample(img, {0, 0, 500, 375}, 341, 256);
  for (int y = 0; y < 224; ++y)
    for (int x = 0; x < 224; ++x)
      for (int ch = 0; ch < 3; ++ch) {
        int a = direct.rgb[(y * 224 + x) * 3 + ch], b = resized.rgb[((y + 16) * 341 + x + 58) * 3 + ch];
        REQUIRE(std::abs(a - b) <= 1);  // float rounding only
      }
}

TEST_CASE("bilinear resampling reproduces linear ramps and 2x2 means", "[data][transforms]") {
  // A ramp p(x) = 2x: linear interpolation of a linear function is exact. Output pixel i of a
  // crop starting at 10, 40 wide, onto 80 pixels samples x = 10 + (i + 0.5) / 2 - 0.5.
  Image ramp{100, 1, {}};
  for (int x = 0; x < 100; ++x) ramp.rgb.insert(ramp.rgb.end(), 3, static_cast<std::uint8_t>(2 * x));
  Normalization identity{{0, 0, 0}, {1, 1, 1}};
  std::vector<float> out(3 * 80);
  resample_normalize(ramp, {10, 0, 40, 1}, 80, 1, false, identity, out.data());
  for (int i = 0; i < 80; ++i) {
    double x = std::max(10 + (i + 0.5) / 2 - 0.5, 0.0);
    REQUIRE_THAT(out[i] * 255.0, WithinAbs(2 * x, 1e-3));
  }
  // Halving both sides samples every output at the corner shared by a 2x2 block: its mean.
  Rng rng{9};
  Image img{8, 6, std::vector<std::uint8_t>(8 * 6 * 3)};
  for (auto& v : img.rgb) v = static_cast<std::uint8_t>(rng.integer(256));
  std::vector<float> half(3 * 4 * 3);
  resample_normalize(img, {0, 0, 8, 6}, 4, 3, false, identity, half.data());
  auto at = [&](int x, int y, int c) { return static_cast<double>(img.rgb[(y * 8 + x) * 3 + c]); };
  for (int c = 0; c < 3; ++c)
    for (int y = 0; y < 3; ++y)
      for (int x = 0; x < 4; ++x) {
        double mean = (at(2 * x, 2 * y, c) + at(2 * x + 1, 2 * y, c) + at(2 * x, 2 * y + 1, c) +
                       at(2 * x + 1, 2 * y + 1, c)) / 4;
        REQUIRE_THAT(half[(c * 3 + y) * 4 + x] * 255.0, WithinAbs(mean, 1e-3));
      }
}

TEST_CASE("normalization uses the ImageNet mean and std", "[data][transforms]") {
  std::vector<std::uint8_t> jpeg = encode_jpeg(flat_image(40, 30, 255, 128, 0), 95);
  Transform t;
  t.kind = Transform::Kind::val;
  t.val = {.resize = 20, .crop = 16};
  std::vector<float> out(3 * 16 * 16);
  Rng rng{0};
  load_sample(jpeg, t, rng, out.data());
  // (v / 255 - mean) / std with torchvision's ImageNet constants; JPEG moves v by <= 3 levels.
  const double expected[3] = {(1.0 - 0.485) / 0.229, (128 / 255.0 - 0.456) / 0.224, (0.0 - 0.406) / 0.225};
  for (int c = 0; c < 3; ++c)
    for (int i = 0; i < 16 * 16; ++i) REQUIRE_THAT(out[c * 256 + i], WithinAbs(expected[c], 3 / 255.0 / 0.224));
}

TEST_CASE("sample streams are reproducible and distinct", "[data][transforms]") {
  Rng a = sample_rng(1, 2, 3), b = sample_rng(1, 2, 3), c = sample_rng(1, 2, 4), d = sample_rng(1, 3, 3);
  std::uint64_t first = a.next();
  REQUIRE(first == b.next());
  REQUIRE(first != c.next());
  REQUIRE(first != d.next());
  Rng r{11};
  double sum = 0;
  for (int i = 0; i < 10000; ++i) {
    double u = r.uniform();
    REQUIRE(u >= 0);
    REQUIRE(u < 1);
    sum += u;
    std::int64_t k = r.integer(7);
    REQUIRE(k >= 0);
    REQUIRE(k < 7);
  }
  REQUIRE(std::abs(sum / 10000 - 0.5) < 0.02);  // sd of the mean 0.0029
}
