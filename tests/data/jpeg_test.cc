// JPEG decoding: colours survive, DCT scaling picks the factor of the closed-form rule and gives
// what a full-size decode followed by the same resampling gives, and bad bytes are refused.
#include "../catch.h"
#include "data_test_util.h"

#include <turbojpeg.h>

#include <cmath>
#include <numbers>

using namespace basin::data;
using basin::data::test::flat_image;

namespace {

int max_channel_error(const Image& img, std::array<int, 3> colour) {
  int worst = 0;
  for (size_t i = 0; i < img.rgb.size(); ++i) worst = std::max(worst, std::abs(img.rgb[i] - colour[i % 3]));
  return worst;
}

// Low-frequency content: what survives both DCT scaling and bilinear resampling nearly intact.
Image smooth_image(int w, int h) {
  Image img{w, h, std::vector<std::uint8_t>(static_cast<size_t>(w) * h * 3)};
  const double tau = 2 * std::numbers::pi;
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      std::uint8_t* p = &img.rgb[(static_cast<size_t>(y) * w + x) * 3];
      p[0] = static_cast<std::uint8_t>(std::lround(128 + 90 * std::sin(tau * x / 160)));
      p[1] = static_cast<std::uint8_t>(std::lround(128 + 90 * std::cos(tau * y / 120)));
      p[2] = static_cast<std::uint8_t>(std::lround(128 + 60 * std::sin(tau * (x + y) / 200)));
    }
  return img;
}

}  // namespace

TEST_CASE("a flat colour decodes to that colour at every scale", "[data][jpeg]") {
  const std::array<int, 3> colour{200, 40, 90};
  std::vector<std::uint8_t> jpeg = encode_jpeg(flat_image(50, 38, 200, 40, 90), 90);
  JpegHeader h = read_jpeg_header(jpeg);
  REQUIRE(h.width == 50);
  REQUIRE(h.height == 38);
  // libjpeg's scaled size is ceil(size * M / 8).
  const std::array<int, 9> widths{0, 7, 13, 19, 25, 32, 38, 44, 50};
  const std::array<int, 9> heights{0, 5, 10, 15, 19, 24, 29, 34, 38};
  for (int m = 1; m <= 8; ++m) {
    CAPTURE(m);
    Image img = decode_jpeg(jpeg, m);
    REQUIRE(img.width == widths[m]);
    REQUIRE(img.height == heights[m]);
    // YCbCr rounding and 4:2:0 on a flat field: a few levels at most.
    REQUIRE(max_channel_error(img, colour) <= 3);
    REQUIRE(max_channel_error(decode_jpeg(jpeg, m, /*fast=*/true), colour) <= 3);
  }
}

TEST_CASE("CMYK files decode to RGB with the Adobe convention", "[data][jpeg]") {
  // RGB (200, 40, 90) in inverted CMYK: K = 255 * max(R,G,B)/255 = 200 and each ink stored as
  // 255 * channel / K: C = 255, M = 51, Y = 115 (R = C K / 255 back).
  const int w = 32, h = 16;
  std::vector<std::uint8_t> cmyk(static_cast<size_t>(w) * h * 4);
  for (size_t i = 0; i < cmyk.size(); i += 4) {
    cmyk[i] = 255;
    cmyk[i + 1] = 51;
    cmyk[i + 2] = 115;
    cmyk[i + 3] = 200;
  }
  const std::vector<std::uint8_t> jpeg = test::encode_cmyk_jpeg(cmyk, w, h);
  Image img = decode_jpeg(jpeg);
  REQUIRE(img.width == w);
  REQUIRE(max_channel_error(img, {200, 40, 90}) <= 4);
}

TEST_CASE("the DCT scale is the smallest M/8 that still covers the crop", "[data][jpeg]") {
  // M = ceil(8 * max(out_w / crop_w, out_h / crop_h)), clamped to 1..8; worked by hand.
  CHECK(scale_eighths_for(448, 448, 224, 224) == 4);    // exactly half
  CHECK(scale_eighths_for(500, 375, 224, 224) == 5);    // 8 * 224/375 = 4.78
  CHECK(scale_eighths_for(100, 100, 224, 224) == 8);    // upsampling: full size
  CHECK(scale_eighths_for(1792, 1792, 224, 224) == 1);  // exactly 1/8
  CHECK(scale_eighths_for(1791, 1791, 224, 224) == 2);  // a hair short of 1/8
  CHECK(scale_eighths_for(2000, 1800, 224, 224) == 1);
  CHECK(scale_eighths_for(896, 300, 224, 224) == 6);    // the shorter side decides: 5.97
  // And by brute force: the chosen M covers the output, M - 1 would not.
  Rng rng{7};
  for (int i = 0; i < 2000; ++i) {
    double cw = rng.uniform(20, 3000), ch = rng.uniform(20, 3000);
    int out = 16 + static_cast<int>(rng.integer(300));
    int m = scale_eighths_for(cw, ch, out, out);
    CAPTURE(cw, ch, out, m);
    if (m < 8) REQUIRE(std::min(cw, ch) * m / 8 >= out - 1e-6);
    if (m > 1) REQUIRE(std::min(cw, ch) * (m - 1) / 8 < out);
  }
}

TEST_CASE("scaled decoding matches a full decode resampled the same way", "[data][jpeg]") {
  std::vector<std::uint8_t> jpeg = encode_jpeg(smooth_image(640, 480), 95);
  Image full = decode_jpeg(jpeg, 8);
  struct Case {
    CropBox crop;
    int out, eighths;
  };
  for (const Case& c : {Case{{20, 10, 600, 450}, 224, 4}, Case{{100, 50, 400, 400}, 224, 5},
                        Case{{0, 0, 640, 480}, 112, 2}, Case{{50, 40, 300, 300}, 224, 6},
                        Case{{0, 0, 640, 480}, 56, 1}}) {
    CAPTURE(c.eighths);
    int m = scale_eighths_for(c.crop.width, c.crop.height, c.out, c.out);
    REQUIRE(m == c.eighths);
    Image scaled = decode_jpeg(jpeg, m);
    const double f = m / 8.0;
    Image a = resample(scaled, {c.crop.x * f, c.crop.y * f, c.crop.width * f, c.crop.height * f}, c.out, c.out);
    Image b = resample(full, c.crop, c.out, c.out);
    double sum = 0;
    int worst = 0;
    for (size_t i = 0; i < a.rgb.size(); ++i) {
      int d = std::abs(a.rgb[i] - b.rgb[i]);
      sum += d;
      worst = std::max(worst, d);
    }
    // Stated tolerance on smooth content: mean within 1.5 levels of 255, no pixel off by more
    // than 12 (the DCT's reduction averages where bilinear point-samples).
    CAPTURE(sum / a.rgb.size(), worst);
    REQUIRE(sum / a.rgb.size() <= 1.5);
    REQUIRE(worst <= 12);
  }
}

TEST_CASE("bytes that are not a decodable JPEG are refused", "[data][jpeg]") {
  REQUIRE_THROWS_AS(read_jpeg_header({}), DecodeError);
  std::vector<std::uint8_t> png{0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 13};
  REQUIRE_THROWS_AS(decode_jpeg(png), DecodeError);
  std::vector<std::uint8_t> good = encode_jpeg(basin::data::test::flat_image(64, 64, 1, 2, 3));
  std::vector<std::uint8_t> truncated(good.begin(), good.begin() + static_cast<long>(good.size() / 2));
  REQUIRE_THROWS_AS(decode_jpeg(truncated), DecodeError);
  std::vector<std::uint8_t> header_only(good.begin(), good.begin() + 20);
  REQUIRE_THROWS_AS(decode_jpeg(header_only), DecodeError);
  REQUIRE_THROWS_AS(read_file("/nonexistent/basin/x.JPEG"), DecodeError);
  // A file cut inside its Huffman tables once left the decoder unusable for the next file: cut
  // the good file at every length and decode the whole one after each.
  for (size_t cut = 1; cut < good.size(); ++cut) {
    CAPTURE(cut);
    REQUIRE_THROWS_AS(decode_jpeg(std::span(good).first(cut)), DecodeError);
    REQUIRE(decode_jpeg(good).width == 64);
  }
}

TEST_CASE("the pipeline decodes at the scale its rule names", "[data][jpeg]") {
  // `fastest` keeps 1/8..4/8 and decodes 5/8..7/8 at full size (libjpeg-turbo's C-only IDCTs).
  const std::array<int, 9> fastest{0, 1, 2, 3, 4, 8, 8, 8, 8};
  for (int m = 1; m <= 8; ++m) CHECK(fastest_eighths(m) == fastest[m]);
  // Validation crops: 224 of Resize(256) is 224/256 of the shorter side in source pixels.
  // 500 x 375: 8 * 224 / 328.125 = 5.46 -> 6/8; 1000 x 750: 8 * 224 / 656.25 = 2.73 -> 3/8.
  struct Case {
    int w, h;
    DctScaling scaling;
    int eighths;
  };
  for (const Case& c : {Case{500, 375, DctScaling::smallest, 6}, Case{500, 375, DctScaling::fastest, 8},
                        Case{500, 375, DctScaling::off, 8}, Case{1000, 750, DctScaling::smallest, 3},
                        Case{1000, 750, DctScaling::fastest, 3}, Case{1000, 750, DctScaling::off, 8}}) {
    CAPTURE(c.w, c.eighths);
    Transform t;
    t.kind = Transform::Kind::val;
    t.scaling = c.scaling;
    std::vector<float> out(3 * 224 * 224);
    Rng rng{0};
    SampleTrace trace = load_sample(encode_jpeg(flat_image(c.w, c.h, 90, 90, 90)), t, rng, out.data());
    REQUIRE(trace.eighths == c.eighths);
    // Whatever the scale, a flat grey comes out as that grey, normalized.
    REQUIRE_THAT(out[0], WithinAbs((90 / 255.0 - 0.485) / 0.229, 3 / 255.0 / 0.229));
  }
}
