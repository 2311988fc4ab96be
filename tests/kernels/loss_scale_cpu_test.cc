// The CPU unscale-and-check pass of dynamic loss scaling against hand-computed values: exact
// division by a power-of-two scale, and every kind of non-finite result (inf, -inf, NaN, and a
// finite gradient that the unscale itself overflows) reported.
#include "../catch.h"

#include <basin/kernels.h>

#include <cmath>
#include <limits>
#include <vector>

namespace bk = basin::kernels;

TEST_CASE("Unscaling by a power of two is exact and finite gradients pass", "[kernels][loss_scale]") {
  // 65536 * x for x of a few binades: multiplying by 2^-16 must give x back exactly.
  std::vector<float> g = {65536.f * 0.1f, -65536.f * 3.25f, 0.f, -0.f, 65536.f * 1e-20f};
  const std::vector<float> want = {0.1f, -3.25f, 0.f, -0.f, 1e-20f};
  REQUIRE(bk::unscale_check_finite_cpu(g.data(), g.size(), 1.f / 65536.f));
  for (size_t i = 0; i < g.size(); ++i) CHECK(g[i] == want[i]);
  CHECK(std::signbit(g[3]));
  std::vector<float> none;
  CHECK(bk::unscale_check_finite_cpu(none.data(), 0, 0.5f));  // nothing to overflow
}

TEST_CASE("Any non-finite unscaled gradient is reported", "[kernels][loss_scale]") {
  const float inf = std::numeric_limits<float>::infinity();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float big = std::numeric_limits<float>::max();
  for (float bad : {inf, -inf, nan}) {
    CAPTURE(bad);
    std::vector<float> g(1001, 2.f);
    g[1000] = bad;  // the last element: the check must not stop early or skip the tail
    CHECK_FALSE(bk::unscale_check_finite_cpu(g.data(), g.size(), 0.25f));
    CHECK(g[0] == 0.5f);  // the finite ones are still unscaled
  }
  std::vector<float> g = {1.f, big};
  CHECK_FALSE(bk::unscale_check_finite_cpu(g.data(), g.size(), 4.f));  // big * 4 overflows
  CHECK(g[0] == 4.f);
}
