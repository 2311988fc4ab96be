// The CPU input stage against hand-computed bilinear weights (2x upsampling, 2x downsampling),
// exact crops, a one-pixel image, the flip identity, per-image batching, the rounding of the
// 16-bit outputs, and an independent double-precision evaluation of its stated convention.
#include "../catch.h"

#include <basin/kernels.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <stdexcept>
#include <vector>

namespace bk = basin::kernels;

namespace {

struct Rgb {
  int width, height;
  std::vector<std::uint8_t> bytes;
  int at(int x, int y, int c) const { return bytes[(static_cast<size_t>(y) * width + x) * 3 + c]; }
};

Rgb random_image(int width, int height, std::mt19937& rng) {
  std::uniform_int_distribution<int> byte(0, 255);
  Rgb im{width, height, std::vector<std::uint8_t>(static_cast<size_t>(width) * height * 3)};
  for (auto& v : im.bytes) v = static_cast<std::uint8_t>(byte(rng));
  return im;
}

bk::InputNormalization identity_norm() {
  bk::InputNormalization n;
  for (int c = 0; c < 3; ++c) n.mean[c] = 0.f, n.std[c] = 1.f;
  return n;
}

std::vector<float> run_fp32(const Rgb& im, const bk::SourceImage& desc, int out_h, int out_w,
                            const bk::InputNormalization& norm) {
  std::vector<float> out(static_cast<size_t>(out_h) * out_w * 3);
  bk::input_stage_cpu(im.bytes.data(), &desc, 1, out_h, out_w, norm, bk::Precision::fp32, out.data());
  return out;
}

bk::SourceImage whole(const Rgb& im, bool flip = false) {
  return {.offset = 0, .width = im.width, .height = im.height, .crop_x = 0, .crop_y = 0,
          .crop_width = double(im.width), .crop_height = double(im.height), .flip = flip};
}

}  // namespace

TEST_CASE("Input stage 2x upsampling uses the weights 1 3/4 1/4 0 at pixel centers",
          "[kernels][input]") {
  // Output i of 4 over 2 source pixels samples s = (i + 0.5) / 2 - 0.5 = -0.25, 0.25, 0.75,
  // 1.25: clamped to pixel 0, then 3/4 p0 + 1/4 p1, 1/4 p0 + 3/4 p1, then pixel 1.
  const Rgb im{2, 2, {10, 20, 30, 110, 120, 130,  //
                      50, 60, 70, 250, 240, 230}};
  const double weight_of_second[4] = {0, 0.25, 0.75, 1};
  const auto out = run_fp32(im, whole(im), 4, 4, identity_norm());
  for (int y = 0; y < 4; ++y)
    for (int x = 0; x < 4; ++x)
      for (int c = 0; c < 3; ++c) {
        const double wy = weight_of_second[y], wx = weight_of_second[x];
        const double v = (1 - wy) * ((1 - wx) * im.at(0, 0, c) + wx * im.at(1, 0, c)) +
                         wy * ((1 - wx) * im.at(0, 1, c) + wx * im.at(1, 1, c));
        CAPTURE(x, y, c);
        REQUIRE_THAT(out[(y * 4 + x) * 3 + c], WithinRel(v / 255, 1e-6));
      }
}

TEST_CASE("Input stage 2x downsampling averages 2x2 blocks", "[kernels][input]") {
  // s = (i + 0.5) * 2 - 0.5 = 2i + 0.5: halfway between source pixels 2i and 2i + 1.
  std::mt19937 rng(1);
  const Rgb im = random_image(6, 4, rng);
  const auto out = run_fp32(im, whole(im), 2, 3, identity_norm());
  for (int y = 0; y < 2; ++y)
    for (int x = 0; x < 3; ++x)
      for (int c = 0; c < 3; ++c) {
        const double mean = (im.at(2 * x, 2 * y, c) + im.at(2 * x + 1, 2 * y, c) +
                             im.at(2 * x, 2 * y + 1, c) + im.at(2 * x + 1, 2 * y + 1, c)) / 4.0;
        CAPTURE(x, y, c);
        REQUIRE_THAT(out[(y * 3 + x) * 3 + c], WithinAbs(mean / 255, 1e-6));
      }
}

TEST_CASE("Input stage crop at the output size copies pixels and normalizes them",
          "[kernels][input]") {
  std::mt19937 rng(2);
  const Rgb im = random_image(17, 11, rng);
  const bk::InputNormalization norm;  // ImageNet's
  bk::SourceImage desc = whole(im);
  desc.crop_x = 5, desc.crop_y = 3, desc.crop_width = 7, desc.crop_height = 6;
  const auto out = run_fp32(im, desc, 6, 7, norm);
  for (int y = 0; y < 6; ++y)
    for (int x = 0; x < 7; ++x)
      for (int c = 0; c < 3; ++c) {
        const double expect = (im.at(5 + x, 3 + y, c) / 255.0 - norm.mean[c]) / norm.std[c];
        CAPTURE(x, y, c);
        REQUIRE_THAT(out[(y * 7 + x) * 3 + c], WithinAbs(expect, 2e-6));  // a few fp32 roundings of values up to 2.6
      }
}

TEST_CASE("Input stage fills the output with a one-pixel image whatever the crop",
          "[kernels][input]") {
  // Every tap clamps to the only pixel, including a crop reaching outside the image.
  const Rgb im{1, 1, {10, 128, 255}};
  bk::SourceImage desc = whole(im);
  desc.crop_x = -0.7, desc.crop_y = 0.3, desc.crop_width = 2.5, desc.crop_height = 0.4;
  const bk::InputNormalization norm;
  const auto out = run_fp32(im, desc, 5, 3, norm);
  for (size_t i = 0; i < out.size(); ++i) {
    const int c = static_cast<int>(i % 3);
    CAPTURE(i);
    REQUIRE_THAT(out[i], WithinAbs((im.bytes[c] / 255.0 - norm.mean[c]) / norm.std[c], 2e-6));
  }
}

TEST_CASE("Input stage flipped output is the mirror image of the unflipped one",
          "[kernels][input]") {
  std::mt19937 rng(3);
  const Rgb im = random_image(23, 19, rng);
  bk::SourceImage desc = whole(im);
  desc.crop_x = 2.25, desc.crop_y = 1.5, desc.crop_width = 15.3, desc.crop_height = 12.9;
  const int out_h = 9, out_w = 13;
  const auto plain = run_fp32(im, desc, out_h, out_w, bk::InputNormalization{});
  desc.flip = true;
  const auto flipped = run_fp32(im, desc, out_h, out_w, bk::InputNormalization{});
  for (int y = 0; y < out_h; ++y)
    for (int x = 0; x < out_w; ++x)
      for (int c = 0; c < 3; ++c)
        REQUIRE(flipped[(y * out_w + x) * 3 + c] == plain[(y * out_w + (out_w - 1 - x)) * 3 + c]);
  CHECK(flipped != plain);
}

TEST_CASE("Input stage matches a double-precision evaluation of its convention",
          "[kernels][input]") {
  // The convention written out again, independently and in double: pixel-center sampling,
  // clamped taps, bilinear weights, then (x / 255 - mean) / std.
  std::mt19937 rng(4);
  const Rgb im = random_image(37, 29, rng);
  const bk::InputNormalization norm;
  std::uniform_real_distribution<double> u(0, 1);
  for (int trial = 0; trial < 20; ++trial) {
    bk::SourceImage desc = whole(im, trial % 2 == 1);
    desc.crop_width = 1 + u(rng) * 36, desc.crop_height = 1 + u(rng) * 28;
    desc.crop_x = u(rng) * (37 - desc.crop_width), desc.crop_y = u(rng) * (29 - desc.crop_height);
    const int out_h = 1 + trial, out_w = 3 + 2 * trial;
    const auto out = run_fp32(im, desc, out_h, out_w, norm);
    auto sample = [](double start, double extent, int n, int i, int size, int& lo, int& hi) {
      const double s = start + (i + 0.5) * extent / n - 0.5;
      lo = static_cast<int>(std::floor(s));
      hi = std::min(lo + 1, size - 1);
      const double w = s - std::floor(s);
      lo = std::clamp(lo, 0, size - 1);
      hi = std::max(hi, 0);
      return w;
    };
    for (int y = 0; y < out_h; ++y)
      for (int x = 0; x < out_w; ++x) {
        int x0, x1, y0, y1;
        const double wx = sample(desc.crop_x, desc.crop_width, out_w, x, 37, x0, x1);
        const double wy = sample(desc.crop_y, desc.crop_height, out_h, y, 29, y0, y1);
        const int ox = desc.flip ? out_w - 1 - x : x;
        for (int c = 0; c < 3; ++c) {
          const double v = (1 - wy) * ((1 - wx) * im.at(x0, y0, c) + wx * im.at(x1, y0, c)) +
                           wy * ((1 - wx) * im.at(x0, y1, c) + wx * im.at(x1, y1, c));
          const double expect = (v / 255 - norm.mean[c]) / norm.std[c];
          CAPTURE(trial, x, y, c);
          REQUIRE_THAT(out[(y * out_w + ox) * 3 + c], WithinAbs(expect, 1e-5));
        }
      }
  }
}

TEST_CASE("Input stage batches images of different sizes and rounds 16-bit outputs once",
          "[kernels][input]") {
  std::mt19937 rng(5);
  const Rgb a = random_image(5, 8, rng), b = random_image(31, 3, rng);
  std::vector<std::uint8_t> packed = a.bytes;
  packed.insert(packed.end(), b.bytes.begin(), b.bytes.end());
  bk::SourceImage da = whole(a), db = whole(b, true);
  db.offset = a.bytes.size();
  db.crop_x = 3.5, db.crop_width = 20;
  const bk::SourceImage batch[2] = {da, db};
  const int out_h = 4, out_w = 6;
  const size_t per_image = static_cast<size_t>(out_h) * out_w * 3;
  std::vector<float> out(2 * per_image);
  bk::input_stage_cpu(packed.data(), batch, 2, out_h, out_w, bk::InputNormalization{},
                      bk::Precision::fp32, out.data());
  db.offset = 0;
  const auto alone_a = run_fp32(a, da, out_h, out_w, bk::InputNormalization{});
  const auto alone_b = run_fp32(b, db, out_h, out_w, bk::InputNormalization{});
  REQUIRE(std::vector<float>(out.begin(), out.begin() + per_image) == alone_a);
  REQUIRE(std::vector<float>(out.begin() + per_image, out.end()) == alone_b);
  for (bk::Precision p : {bk::Precision::bf16, bk::Precision::fp16}) {
    std::vector<std::uint16_t> half(2 * per_image);
    bk::input_stage_cpu(packed.data(), batch, 2, out_h, out_w, bk::InputNormalization{}, p,
                        half.data());
    for (size_t i = 0; i < half.size(); ++i) {
      CAPTURE(i);
      REQUIRE(half[i] == (p == bk::Precision::bf16 ? bk::float_to_bf16_bits(out[i])
                                                   : bk::float_to_fp16_bits(out[i])));
    }
  }
}

TEST_CASE("Input stage refuses empty images and crops and outputs", "[kernels][input]") {
  const std::uint8_t pixel[3] = {1, 2, 3};
  float out[3];
  bk::SourceImage desc{.offset = 0, .width = 1, .height = 1, .crop_x = 0, .crop_y = 0,
                       .crop_width = 1, .crop_height = 1};
  auto run = [&](int out_h, int out_w) {
    bk::input_stage_cpu(pixel, &desc, 1, out_h, out_w, bk::InputNormalization{},
                        bk::Precision::fp32, out);
  };
  CHECK_NOTHROW(run(1, 1));
  CHECK_THROWS_AS(run(0, 1), std::invalid_argument);
  desc.crop_width = 0;
  CHECK_THROWS_WITH(run(1, 1), HasText("empty crop"));
  desc.crop_width = 1, desc.width = 0;
  CHECK_THROWS_WITH(run(1, 1), HasText("is empty"));
  desc.width = 1, desc.crop_x = std::nan("");
  CHECK_THROWS_AS(run(1, 1), std::invalid_argument);
}
