// The CPU precision casts against known bit patterns (IEEE 754 encodings worked out by hand),
// exhaustive round trips over every 16-bit pattern, and a nearest-value check on random floats.
#include "../catch.h"

#include <basin/kernels.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

namespace bk = basin::kernels;

namespace {

float from_bits(std::uint32_t u) {
  float x;
  std::memcpy(&x, &u, sizeof x);
  return x;
}

std::uint32_t to_bits(float x) {
  std::uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  return u;
}

}  // namespace

TEST_CASE("fp32 to bf16 gives the known bit patterns and rounds ties to even", "[kernels][cast]") {
  CHECK(bk::float_to_bf16_bits(1.0f) == 0x3F80);
  CHECK(bk::float_to_bf16_bits(-2.0f) == 0xC000);
  CHECK(bk::float_to_bf16_bits(0.0f) == 0x0000);
  CHECK(bk::float_to_bf16_bits(-0.0f) == 0x8000);
  // 1 + 2^-8 is halfway between 0x3F80 and 0x3F81: the even one wins.
  CHECK(bk::float_to_bf16_bits(from_bits(0x3F808000)) == 0x3F80);
  // Halfway between 0x3F81 and 0x3F82: up to the even 0x3F82.
  CHECK(bk::float_to_bf16_bits(from_bits(0x3F818000)) == 0x3F82);
  // Just above halfway rounds up, just below rounds down.
  CHECK(bk::float_to_bf16_bits(from_bits(0x3F808001)) == 0x3F81);
  CHECK(bk::float_to_bf16_bits(from_bits(0x3F807FFF)) == 0x3F80);
  // 1/3 = 0x3EAAAAAB: the dropped half 0xAAAB is above 0x8000, so up to 0x3EAB.
  CHECK(bk::float_to_bf16_bits(1.0f / 3.0f) == 0x3EAB);
  // The largest float rounds up into infinity; the largest bf16 value stays.
  CHECK(bk::float_to_bf16_bits(std::numeric_limits<float>::max()) == 0x7F80);
  CHECK(bk::float_to_bf16_bits(from_bits(0x7F7F7FFF)) == 0x7F7F);
  CHECK(bk::float_to_bf16_bits(std::numeric_limits<float>::infinity()) == 0x7F80);
  CHECK(bk::float_to_bf16_bits(-std::numeric_limits<float>::infinity()) == 0xFF80);
  // fp32 subnormals map to bf16 subnormals, ties to even there too.
  CHECK(bk::float_to_bf16_bits(from_bits(0x00000001)) == 0x0000);
  CHECK(bk::float_to_bf16_bits(from_bits(0x00008000)) == 0x0000);
  CHECK(bk::float_to_bf16_bits(from_bits(0x00018000)) == 0x0002);
  CHECK(bk::float_to_bf16_bits(from_bits(0x0000C000)) == 0x0001);
  CHECK(bk::float_to_bf16_bits(from_bits(0x80010000)) == 0x8001);
  // NaN (quiet or signalling, either sign) becomes the canonical 0x7FFF.
  CHECK(bk::float_to_bf16_bits(std::numeric_limits<float>::quiet_NaN()) == 0x7FFF);
  CHECK(bk::float_to_bf16_bits(from_bits(0xFF800001)) == 0x7FFF);
  // A NaN whose payload sits only in the dropped bits must not round into infinity.
  CHECK(bk::float_to_bf16_bits(from_bits(0x7F80FFFF)) == 0x7FFF);
}

TEST_CASE("fp32 to fp16 gives the known bit patterns at every boundary", "[kernels][cast]") {
  CHECK(bk::float_to_fp16_bits(1.0f) == 0x3C00);
  CHECK(bk::float_to_fp16_bits(-2.0f) == 0xC000);
  CHECK(bk::float_to_fp16_bits(0.5f) == 0x3800);
  CHECK(bk::float_to_fp16_bits(0.1f) == 0x2E66);
  CHECK(bk::float_to_fp16_bits(-0.0f) == 0x8000);
  // Ties: 1 + 2^-11 between 0x3C00 and 0x3C01 -> 0x3C00; 1 + 3 * 2^-11 -> 0x3C02.
  CHECK(bk::float_to_fp16_bits(1.0f + 0x1p-11f) == 0x3C00);
  CHECK(bk::float_to_fp16_bits(1.0f + 3 * 0x1p-11f) == 0x3C02);
  CHECK(bk::float_to_fp16_bits(from_bits(0x3F801001)) == 0x3C01);
  // Largest finite 65504; 65519.996 still rounds to it; 65520 is the tie that goes to infinity.
  CHECK(bk::float_to_fp16_bits(65504.0f) == 0x7BFF);
  CHECK(bk::float_to_fp16_bits(std::nextafter(65520.0f, 0.0f)) == 0x7BFF);
  CHECK(bk::float_to_fp16_bits(65520.0f) == 0x7C00);
  CHECK(bk::float_to_fp16_bits(-1e6f) == 0xFC00);
  CHECK(bk::float_to_fp16_bits(std::numeric_limits<float>::infinity()) == 0x7C00);
  // Smallest normal 2^-14 and the subnormals below it, in units of 2^-24.
  CHECK(bk::float_to_fp16_bits(0x1p-14f) == 0x0400);
  CHECK(bk::float_to_fp16_bits(std::nextafter(0x1p-14f, 0.0f)) == 0x0400);  // rounds up into it
  CHECK(bk::float_to_fp16_bits(0x1p-24f) == 0x0001);
  CHECK(bk::float_to_fp16_bits(0x1p-25f) == 0x0000);                           // tie -> even 0
  CHECK(bk::float_to_fp16_bits(from_bits(0x33000001)) == 0x0001);              // above the tie
  CHECK(bk::float_to_fp16_bits(3 * 0x1p-25f) == 0x0002);                       // tie -> even 2
  CHECK(bk::float_to_fp16_bits(5 * 0x1p-25f) == 0x0002);                       // tie -> even 2
  CHECK(bk::float_to_fp16_bits(1023 * 0x1p-24f) == 0x03FF);
  CHECK(bk::float_to_fp16_bits(-7 * 0x1p-24f) == 0x8007);
  CHECK(bk::float_to_fp16_bits(from_bits(0x00000001)) == 0x0000);              // fp32 subnormal
  CHECK(bk::float_to_fp16_bits(std::numeric_limits<float>::quiet_NaN()) == 0x7FFF);
  CHECK(bk::float_to_fp16_bits(from_bits(0xFFC00000)) == 0x7FFF);
}

TEST_CASE("bf16 and fp16 widen to the exact fp32 values", "[kernels][cast]") {
  CHECK(bk::bf16_bits_to_float(0x3F80) == 1.0f);
  CHECK(bk::bf16_bits_to_float(0xC000) == -2.0f);
  CHECK(to_bits(bk::bf16_bits_to_float(0x0001)) == 0x00010000u);
  CHECK(std::isinf(bk::bf16_bits_to_float(0xFF80)));
  CHECK(std::isnan(bk::bf16_bits_to_float(0x7FC0)));
  CHECK(bk::fp16_bits_to_float(0x3C00) == 1.0f);
  CHECK(bk::fp16_bits_to_float(0x7BFF) == 65504.0f);
  CHECK(bk::fp16_bits_to_float(0x0400) == 0x1p-14f);
  CHECK(bk::fp16_bits_to_float(0x0001) == 0x1p-24f);
  CHECK(bk::fp16_bits_to_float(0x03FF) == 1023 * 0x1p-24f);
  CHECK(bk::fp16_bits_to_float(0x8003) == -3 * 0x1p-24f);
  CHECK(to_bits(bk::fp16_bits_to_float(0x8000)) == 0x80000000u);
  CHECK(bk::fp16_bits_to_float(0xFC00) == -std::numeric_limits<float>::infinity());
  CHECK(std::isnan(bk::fp16_bits_to_float(0x7E00)));
  CHECK(std::isnan(bk::fp16_bits_to_float(0x7C01)));
}

TEST_CASE("Every non-NaN bf16 and fp16 pattern survives a round trip through fp32",
          "[kernels][cast]") {
  int bf16_checked = 0, fp16_checked = 0;
  for (std::uint32_t bits = 0; bits <= 0xFFFF; ++bits) {
    const auto b = static_cast<std::uint16_t>(bits);
    if ((b & 0x7FFF) <= 0x7F80) {
      REQUIRE(bk::float_to_bf16_bits(bk::bf16_bits_to_float(b)) == b);
      ++bf16_checked;
    }
    if ((b & 0x7FFF) <= 0x7C00) {
      REQUIRE(bk::float_to_fp16_bits(bk::fp16_bits_to_float(b)) == b);
      ++fp16_checked;
    }
  }
  CHECK(bf16_checked == 2 * (0x7F80 + 1));
  CHECK(fp16_checked == 2 * (0x7C00 + 1));
}

TEST_CASE("Random finite floats round to the nearest bf16 and fp16 value with ties to even",
          "[kernels][cast]") {
  // Independent of the bit arithmetic: the result must be at least as close (in double) as both
  // neighbouring representable values, and at an exact tie it must have an even mantissa.
  std::mt19937 rng(7);
  std::uniform_int_distribution<std::uint32_t> any_bits;
  auto check_nearest = [](float x, std::uint16_t r, float (*widen)(std::uint16_t),
                          std::uint16_t inf_bits) {
    const std::uint16_t magnitude = r & 0x7FFF;
    if (magnitude == inf_bits) return;  // overflow: checked at the boundary above
    const double err = std::fabs(static_cast<double>(widen(r)) - x);
    for (int step : {-1, 1}) {
      const int neighbour = magnitude + step;
      if (neighbour < 0 || neighbour >= inf_bits) continue;
      const std::uint16_t nb = static_cast<std::uint16_t>((r & 0x8000) | neighbour);
      const double nerr = std::fabs(static_cast<double>(widen(nb)) - x);
      REQUIRE(err <= nerr);
      if (err == nerr) REQUIRE((r & 1) == 0);
    }
  };
  for (int k = 0; k < 200000; ++k) {
    const float x = from_bits(any_bits(rng));
    if (!std::isfinite(x)) continue;
    CAPTURE(to_bits(x));
    check_nearest(x, bk::float_to_bf16_bits(x), bk::bf16_bits_to_float, 0x7F80);
  }
  // For fp16, floats drawn across its range (subnormals to just past the largest finite value).
  std::uniform_real_distribution<float> exponent(-27.f, 16.5f);
  std::uniform_real_distribution<float> unit(0.5f, 1.f);
  for (int k = 0; k < 200000; ++k) {
    const float x = (k % 2 ? -1.f : 1.f) * std::ldexp(unit(rng), static_cast<int>(exponent(rng)));
    CAPTURE(to_bits(x));
    check_nearest(x, bk::float_to_fp16_bits(x), bk::fp16_bits_to_float, 0x7C00);
  }
}

TEST_CASE("cast_cpu converts arrays between every pair of precisions", "[kernels][cast]") {
  const std::vector<float> values = {1.0f, -2.5f, 1.0f / 3.0f, 65520.0f, 0x1p-25f, -0.0f};
  std::vector<std::uint16_t> bf16(values.size()), fp16(values.size()), via(values.size());
  std::vector<float> back(values.size());
  bk::cast_cpu(values.data(), bk::Precision::fp32, bf16.data(), bk::Precision::bf16, values.size());
  bk::cast_cpu(values.data(), bk::Precision::fp32, fp16.data(), bk::Precision::fp16, values.size());
  for (size_t i = 0; i < values.size(); ++i) {
    CHECK(bf16[i] == bk::float_to_bf16_bits(values[i]));
    CHECK(fp16[i] == bk::float_to_fp16_bits(values[i]));
  }
  CHECK(fp16[3] == 0x7C00);
  bk::cast_cpu(fp16.data(), bk::Precision::fp16, back.data(), bk::Precision::fp32, values.size());
  CHECK(back[0] == 1.0f);
  CHECK(back[1] == -2.5f);
  CHECK(std::isinf(back[3]));
  // bf16 -> fp16 is one rounding of the bf16 value.
  bk::cast_cpu(bf16.data(), bk::Precision::bf16, via.data(), bk::Precision::fp16, values.size());
  for (size_t i = 0; i < values.size(); ++i)
    CHECK(via[i] == bk::float_to_fp16_bits(bk::bf16_bits_to_float(bf16[i])));
  // Same precision is a copy.
  bk::cast_cpu(bf16.data(), bk::Precision::bf16, via.data(), bk::Precision::bf16, values.size());
  CHECK(via == bf16);
}

TEST_CASE("NCHW to NHWC puts each value where the layouts say, rounded once", "[kernels][cast]") {
  // 2 images, 3 channels, 2 pixels: the value 100*image + 10*channel + pixel + 0.3 starts at
  // NCHW index (image*3 + channel)*2 + pixel and must end at NHWC index (image*2 + pixel)*3 +
  // channel, worked out here by hand for two of them.
  const int n = 2, c = 3, hw = 2;
  std::vector<float> src(n * c * hw);
  for (int i = 0; i < n; ++i)
    for (int k = 0; k < c; ++k)
      for (int p = 0; p < hw; ++p) src[(i * c + k) * hw + p] = 100.f * i + 10.f * k + p + 0.3f;
  std::vector<float> fp32(src.size());
  bk::nchw_to_nhwc_cpu(src.data(), fp32.data(), bk::Precision::fp32, n, c, hw);
  CHECK(fp32[0] == 0.3f);                      // image 0, pixel 0, channel 0
  CHECK(fp32[1] == 10.3f);                     // image 0, pixel 0, channel 1
  CHECK(fp32[3] == 1.3f);                      // image 0, pixel 1, channel 0
  CHECK(fp32[(1 * 2 + 1) * 3 + 2] == 121.3f);  // image 1, pixel 1, channel 2
  // In 16 bits each element is the nearest value of the source, as cast_cpu rounds it.
  for (bk::Precision to : {bk::Precision::bf16, bk::Precision::fp16}) {
    std::vector<std::uint16_t> low(src.size()), expect(src.size());
    bk::nchw_to_nhwc_cpu(src.data(), low.data(), to, n, c, hw);
    bk::cast_cpu(fp32.data(), bk::Precision::fp32, expect.data(), to, fp32.size());
    CHECK(low == expect);
  }
}
