// The CPU residual add + ReLU: hand-computed values (NaN kept, negatives cut), one
// round-to-nearest-even in bf16 and fp16 at known ties, and finite differences for the backward.
#include "../catch.h"

#include <basin/kernels.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

namespace bk = basin::kernels;

TEST_CASE("Residual add + ReLU forward in fp32 by hand", "[kernels][residual]") {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const std::vector<float> a = {1.f, -2.f, 0.5f, -0.5f, nan, 1e30f};
  const std::vector<float> b = {2.f, 1.f, -0.5f, 0.25f, 0.f, 1e30f};
  std::vector<float> y(a.size(), -7.f);
  bk::residual_add_relu_cpu(a.data(), b.data(), y.data(), a.size(), bk::Precision::fp32);
  CHECK(y[0] == 3.f);
  CHECK(y[1] == 0.f);
  CHECK(y[2] == 0.f);
  CHECK(y[3] == 0.f);
  CHECK(std::isnan(y[4]));  // a NaN is not hidden by the ReLU
  CHECK(y[5] == 2e30f);
}

TEST_CASE("Residual add + ReLU in bf16 and fp16 rounds the fp32 sum once to even",
          "[kernels][residual]") {
  SECTION("bf16") {
    // 1 + 2^-9: below half a bf16 ulp (2^-7) above 1 -> 1.0. (1 + 2^-7) + 2^-8 is the tie
    // between 0x3F81 and 0x3F82 -> even 0x3F82. Two negative inputs -> +0.
    const std::vector<std::uint16_t> a = {0x3F80, 0x3F81, 0xBF80};
    const std::vector<std::uint16_t> b = {0x3B00, 0x3B80, 0xBF80};
    std::vector<std::uint16_t> y(3, 0xFFFF);
    bk::residual_add_relu_cpu(a.data(), b.data(), y.data(), 3, bk::Precision::bf16);
    CHECK(y[0] == 0x3F80);
    CHECK(y[1] == 0x3F82);
    CHECK(y[2] == 0x0000);
  }
  SECTION("fp16") {
    // 1 + 2^-11 is the tie between 0x3C00 and 0x3C01 -> 0x3C00; (1 + 2^-10) + 2^-11 -> 0x3C02.
    // 60000 + 60000 overflows fp16 -> infinity.
    const std::vector<std::uint16_t> a = {0x3C00, 0x3C01, 0x7B53};
    const std::vector<std::uint16_t> b = {0x1000, 0x1000, 0x7B53};
    std::vector<std::uint16_t> y(3, 0xFFFF);
    bk::residual_add_relu_cpu(a.data(), b.data(), y.data(), 3, bk::Precision::fp16);
    CHECK(y[0] == 0x3C00);
    CHECK(y[1] == 0x3C02);
    CHECK(y[2] == 0x7C00);
  }
}

TEST_CASE("Residual add + ReLU backward passes dy where the output is positive",
          "[kernels][residual]") {
  const std::vector<float> y = {3.f, 0.f, 0.f, 5.f};
  const std::vector<float> dy = {1.f, 2.f, 3.f, -4.f};
  std::vector<float> dx(4, 9.f);
  bk::residual_add_relu_backward_cpu(y.data(), dy.data(), dx.data(), 4, bk::Precision::fp32);
  CHECK(dx == std::vector<float>{1.f, 0.f, 0.f, -4.f});
  // bf16: a selection, so dy's bits come through unchanged.
  const std::vector<std::uint16_t> yb = {0x3F80, 0x0000, 0x8000, 0x4000};
  const std::vector<std::uint16_t> dyb = {0x3F81, 0x4000, 0x4000, 0xC123};
  std::vector<std::uint16_t> dxb(4, 0xFFFF);
  bk::residual_add_relu_backward_cpu(yb.data(), dyb.data(), dxb.data(), 4, bk::Precision::bf16);
  CHECK(dxb == std::vector<std::uint16_t>{0x3F81, 0x0000, 0x0000, 0xC123});
}

TEST_CASE("Residual add + ReLU backward matches finite differences", "[kernels][residual]") {
  // L = sum dy_i relu(a_i + b_i); dL/da_i = dL/db_i = dx_i. Central differences in double of the
  // fp32 forward, skipping sums within 2h of the kink.
  const size_t n = 257;
  std::mt19937 rng(9);
  std::normal_distribution<float> normal(0.f, 1.f);
  std::vector<float> a(n), b(n), dy(n), y(n), dx(n);
  for (size_t i = 0; i < n; ++i) a[i] = normal(rng), b[i] = normal(rng), dy[i] = normal(rng);
  bk::residual_add_relu_cpu(a.data(), b.data(), y.data(), n, bk::Precision::fp32);
  bk::residual_add_relu_backward_cpu(y.data(), dy.data(), dx.data(), n, bk::Precision::fp32);
  // h is large because the forward is piecewise linear: a wide step shrinks the fp32 rounding of
  // the two sums (an ulp of ~4 over 2h) far below the tolerance.
  const float h = 0.25f;
  int checked = 0;
  for (size_t i = 0; i < n; ++i) {
    if (std::fabs(a[i] + b[i]) < 2 * h) continue;
    float plus = 0, minus = 0;
    float ap = a[i] + h, am = a[i] - h;
    bk::residual_add_relu_cpu(&ap, &b[i], &plus, 1, bk::Precision::fp32);
    bk::residual_add_relu_cpu(&am, &b[i], &minus, 1, bk::Precision::fp32);
    const double fd = dy[i] * (static_cast<double>(plus) - minus) / (static_cast<double>(ap) - am);
    CAPTURE(i, a[i], b[i]);
    REQUIRE_THAT(dx[i], WithinAbs(fd, 1e-5 * (1 + std::fabs(dy[i]))));
    ++checked;
  }
  CHECK(checked > 150);  // about 72% of sums of two N(0,1) lie beyond 0.5
}

TEST_CASE("Plain add and ReLU keep the residual kernel's rounding and NaN rule", "[kernels][residual]") {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const std::vector<float> a = {1.f, -2.f, nan, -0.f, 1e30f};
  const std::vector<float> b = {2.f, 1.f, 0.f, 0.f, 1e30f};
  std::vector<float> y(a.size());
  bk::add_cpu(a.data(), b.data(), y.data(), a.size(), bk::Precision::fp32);
  CHECK(y[0] == 3.f);
  CHECK(y[1] == -1.f);  // no ReLU
  CHECK(std::isnan(y[2]));
  CHECK(y[4] == 2e30f);
  bk::relu_cpu(a.data(), y.data(), a.size(), bk::Precision::fp32);
  CHECK(y[0] == 1.f);
  CHECK(y[1] == 0.f);
  CHECK(std::isnan(y[2]));
  CHECK((y[3] == 0.f && std::signbit(y[3])));  // -0 is not below 0: passed through
  // In place (y aliases a) in bf16: 1 + 2^-8 is the tie between 0x3F80 and 0x3F81 -> even 0x3F80.
  std::vector<std::uint16_t> h = {0x3F80, 0xBF80}, k = {0x3B80, 0x3F80};
  bk::add_cpu(h.data(), k.data(), h.data(), 2, bk::Precision::bf16);
  CHECK(h[0] == 0x3F80);
  CHECK(h[1] == 0x0000);  // -1 + 1 = +0
  std::vector<std::uint16_t> r = {0xBC00, 0x3C00};  // fp16 -1, 1
  bk::relu_cpu(r.data(), r.data(), 2, bk::Precision::fp16);
  CHECK(r[0] == 0x0000);
  CHECK(r[1] == 0x3C00);
}
