// The CPU SGD momentum reference against the closed form of its recurrence.
#include "../catch.h"

#include <basin/kernels.h>

#include <cmath>

namespace bk = basin::kernels;

TEST_CASE("SGD momentum with constant gradient follows the geometric-series closed form",
          "[kernels]") {
  // With weight decay 0 and a constant gradient g, v_t = g (1 - m^t) / (1 - m) from v_0 = 0, and
  // w_t = w_0 - lr * sum_{k=1..t} v_k = w_0 - lr g / (1-m) * (t - m (1 - m^t) / (1 - m)).
  const double m = 0.9, lr = 0.1, g = 0.5, w0 = 2.0;
  float w = static_cast<float>(w0), v = 0, grad = static_cast<float>(g);
  bk::SgdParams p{.lr = float(lr), .momentum = float(m), .weight_decay = 0};
  for (int t = 1; t <= 20; ++t) {
    bk::sgd_momentum_step_cpu(&w, &v, &grad, 1, p);
    double v_expect = g * (1 - std::pow(m, t)) / (1 - m);
    double w_expect = w0 - lr * g / (1 - m) * (t - m * (1 - std::pow(m, t)) / (1 - m));
    CAPTURE(t);
    REQUIRE_THAT(v, WithinRel(v_expect, 1e-5));
    REQUIRE_THAT(w, WithinRel(w_expect, 1e-5));
  }
}

TEST_CASE("SGD weight decay alone shrinks weights by (1 - lr * wd) on the first step", "[kernels]") {
  float w[3] = {1.f, -2.f, 0.5f}, v[3] = {0, 0, 0}, g[3] = {0, 0, 0};
  bk::SgdParams p{.lr = 0.1f, .momentum = 0.9f, .weight_decay = 0.01f};
  bk::sgd_momentum_step_cpu(w, v, g, 3, p);
  REQUIRE_THAT(w[0], WithinRel(1.0 * (1 - 0.1 * 0.01), 1e-6));
  REQUIRE_THAT(w[1], WithinRel(-2.0 * (1 - 0.1 * 0.01), 1e-6));
  REQUIRE_THAT(w[2], WithinRel(0.5 * (1 - 0.1 * 0.01), 1e-6));
}

TEST_CASE("Nesterov SGD with constant gradient follows its closed form",
          "[kernels]") {
  // Nesterov in torch's form: w_t = w_{t-1} - lr (g + m v_t), with v_t = g (1 - m^t) / (1 - m)
  // for a constant gradient from v_0 = 0. So each step moves w by lr g (1 + m (1 - m^t)/(1 - m)).
  const double m = 0.9, lr = 0.05, g = -0.25, w0 = 1.0;
  float w = static_cast<float>(w0), v = 0, grad = static_cast<float>(g);
  bk::SgdParams p{.lr = float(lr), .momentum = float(m), .weight_decay = 0, .nesterov = true};
  double w_expect = w0;
  for (int t = 1; t <= 15; ++t) {
    bk::sgd_momentum_step_cpu(&w, &v, &grad, 1, p);
    w_expect -= lr * g * (1 + m * (1 - std::pow(m, t)) / (1 - m));
    CAPTURE(t);
    REQUIRE_THAT(v, WithinRel(g * (1 - std::pow(m, t)) / (1 - m), 1e-5));
    REQUIRE_THAT(w, WithinRel(w_expect, 1e-5));
  }
}
