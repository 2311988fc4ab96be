// The GPU unscale-and-check pass of dynamic loss scaling against the CPU reference: the same
// unscaled gradients bit for bit (one fp32 multiply each) and the same finite / not-finite
// verdict, on awkward sizes with and without an overflow planted at the first, a middle and the
// last element; and the plain add and ReLU kernels of the mixed-precision backend, bit for bit.
#include "../catch.h"
#include "compare.h"
#include "device_buffer.h"

#include <basin/kernels.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

namespace bk = basin::kernels;

TEST_CASE("GPU unscale-and-check matches the CPU reference bit for bit", "[kernels][gpu][loss_scale]") {
  const size_t n = GENERATE(size_t{1}, size_t{255}, size_t{1000003}, kBeyondOneGrid);
  const int plant = GENERATE(-1, 0, 1, 2);  // none, first, middle, last element
  const float bad = GENERATE(std::numeric_limits<float>::infinity(),
                             std::numeric_limits<float>::quiet_NaN());
  CAPTURE(n, plant, bad);
  std::mt19937 rng(41);
  std::normal_distribution<float> normal(0.f, 1000.f);
  std::vector<float> g(n);
  for (float& v : g) v = normal(rng);
  if (plant >= 0) g[plant == 0 ? 0 : plant == 1 ? n / 2 : n - 1] = bad;
  const float factor = 1.f / 32768.f;

  std::vector<float> want = g;
  const bool finite = bk::unscale_check_finite_cpu(want.data(), n, factor);
  REQUIRE(finite == (plant < 0));
  DeviceBuffer<float> dg(g);
  DeviceBuffer<std::uint32_t> flag(std::vector<std::uint32_t>{0});
  bk::unscale_check_finite_gpu(dg.get(), n, factor, flag.get());
  CHECK(flag.download()[0] == (finite ? 0u : 1u));
  REQUIRE(first_difference(dg.download(), want) == "");
}

TEST_CASE("GPU add and ReLU match the CPU reference bit for bit", "[kernels][gpu][residual]") {
  const size_t n = GENERATE(size_t{1}, size_t{257}, size_t{1000003});
  const bk::Precision p = GENERATE(bk::Precision::fp32, bk::Precision::bf16, bk::Precision::fp16);
  CAPTURE(n, int(p));
  std::mt19937 rng(43);
  std::normal_distribution<float> normal(0.f, 2.f);
  std::vector<float> fa(n), fb(n);
  for (size_t i = 0; i < n; ++i) fa[i] = normal(rng), fb[i] = normal(rng);
  // ReLU selects: -0 and NaN pass through unchanged (NaN is not below 0), also inside a pack.
  std::vector<float> fx = fa;
  for (size_t i = 0; i < n; i += 11) fx[i] = i % 22 ? -0.f : std::nanf("");
  const size_t bytes = bk::bytes_per_element(p);
  std::vector<std::uint8_t> a(n * bytes), b(n * bytes), x(n * bytes), y(n * bytes), r(n * bytes);
  bk::cast_cpu(fa.data(), bk::Precision::fp32, a.data(), p, n);
  bk::cast_cpu(fb.data(), bk::Precision::fp32, b.data(), p, n);
  bk::cast_cpu(fx.data(), bk::Precision::fp32, x.data(), p, n);
  bk::add_cpu(a.data(), b.data(), y.data(), n, p);
  bk::relu_cpu(x.data(), r.data(), n, p);
  DeviceBuffer<std::uint8_t> da(a), db(b), dx(x), dy(y.size()), dr(r.size());
  bk::add_gpu(da.get(), db.get(), dy.get(), n, p);
  bk::relu_gpu(dx.get(), dr.get(), n, p);
  CHECK(first_difference(dy.download(), y) == "");
  CHECK(first_difference(dr.download(), r) == "");
  bk::relu_gpu(dx.get(), dx.get(), n, p);  // in place, as the backend runs it
  CHECK(first_difference(dx.download(), r) == "");
}
