// The flat-buffer SGD step against the per-tensor steps exec takes (the form it replaces), a
// closed form for decay with and without exclusion, and the checks on its range list.
#include "../catch.h"

#include <basin/kernels.h>

#include <random>
#include <stdexcept>
#include <vector>

namespace bk = basin::kernels;

namespace {

// A parameter layout like ResNet's: (count, decayed) tensors back to back.
struct Tensor {
  size_t count;
  bool decayed;
};

}  // namespace

TEST_CASE("Flat SGD step equals per-tensor steps with decay switched per tensor",
          "[kernels][sgd]") {
  const bool nesterov = GENERATE(false, true);
  CAPTURE(nesterov);
  const std::vector<Tensor> layout = {{27, true}, {3, false}, {3, false}, {61, true},
                                      {5, false}, {1, false}, {997, true}, {10, false}};
  std::vector<bk::FlatRange> no_decay;
  size_t n = 0;
  for (const Tensor& t : layout) {
    if (!t.decayed) no_decay.push_back({n, n + t.count});  // touching ranges are fine
    n += t.count;
  }
  std::mt19937 rng(3);
  std::normal_distribution<float> normal(0.f, 1.f);
  std::vector<float> w(n), v(n, 0.f), g(n);
  for (size_t i = 0; i < n; ++i) w[i] = normal(rng);
  std::vector<float> w_ref = w, v_ref = v;
  const bk::SgdParams p{.lr = 0.3f, .momentum = 0.9f, .weight_decay = 5e-2f, .nesterov = nesterov};
  for (int step = 0; step < 4; ++step) {
    for (size_t i = 0; i < n; ++i) g[i] = normal(rng);
    bk::sgd_flat_step_cpu(w.data(), v.data(), g.data(), n, p, no_decay.data(), no_decay.size());
    size_t offset = 0;
    for (const Tensor& t : layout) {
      bk::SgdParams tp = p;
      if (!t.decayed) tp.weight_decay = 0;
      bk::sgd_momentum_step_cpu(w_ref.data() + offset, v_ref.data() + offset, g.data() + offset,
                                t.count, tp);
      offset += t.count;
    }
  }
  // Same arithmetic in the same order: identical bits.
  REQUIRE(w == w_ref);
  REQUIRE(v == v_ref);
}

TEST_CASE("Flat SGD decays only outside the no-decay ranges", "[kernels][sgd]") {
  // With g = 0 and v = 0 one step gives w (1 - lr wd) where decayed and leaves w alone elsewhere.
  const size_t n = 10;
  std::vector<float> w(n), v(n, 0.f), g(n, 0.f);
  for (size_t i = 0; i < n; ++i) w[i] = 1.0f + static_cast<float>(i);
  const std::vector<bk::FlatRange> no_decay = {{0, 2}, {5, 6}, {9, 10}};
  const bk::SgdParams p{.lr = 0.1f, .momentum = 0.9f, .weight_decay = 0.01f};
  bk::sgd_flat_step_cpu(w.data(), v.data(), g.data(), n, p, no_decay.data(), no_decay.size());
  for (size_t i = 0; i < n; ++i) {
    CAPTURE(i);
    const bool excluded = i < 2 || i == 5 || i == 9;
    const double w0 = 1.0 + static_cast<double>(i);
    if (excluded) {
      REQUIRE(w[i] == static_cast<float>(w0));
      REQUIRE(v[i] == 0.f);
    } else {
      REQUIRE_THAT(w[i], WithinRel(w0 * (1 - 0.1 * 0.01), 1e-6));
      REQUIRE_THAT(v[i], WithinRel(w0 * 0.01, 1e-6));
    }
  }
}

TEST_CASE("Flat SGD without ranges is the plain step over the whole buffer", "[kernels][sgd]") {
  const size_t n = 101;
  std::vector<float> w(n), v(n), g(n);
  std::mt19937 rng(11);
  std::normal_distribution<float> normal(0.f, 1.f);
  for (size_t i = 0; i < n; ++i) w[i] = normal(rng), v[i] = normal(rng), g[i] = normal(rng);
  std::vector<float> w_ref = w, v_ref = v;
  const bk::SgdParams p{.lr = 0.05f, .momentum = 0.8f, .weight_decay = 1e-3f, .nesterov = true};
  bk::sgd_flat_step_cpu(w.data(), v.data(), g.data(), n, p, nullptr, 0);
  bk::sgd_momentum_step_cpu(w_ref.data(), v_ref.data(), g.data(), n, p);
  REQUIRE(w == w_ref);
  REQUIRE(v == v_ref);
}

TEST_CASE("Flat SGD range lists that are unsorted or overlapping or out of bounds are refused",
          "[kernels][sgd]") {
  const size_t n = 20;
  auto check = [&](std::vector<bk::FlatRange> r) { bk::check_flat_ranges(r.data(), r.size(), n); };
  CHECK_NOTHROW(check({}));
  CHECK_NOTHROW(check({{0, 5}, {5, 7}, {19, 20}}));
  CHECK_THROWS_AS(check({{5, 7}, {0, 5}}), std::invalid_argument);   // out of order
  CHECK_THROWS_AS(check({{0, 6}, {5, 7}}), std::invalid_argument);   // overlap
  CHECK_THROWS_AS(check({{3, 3}}), std::invalid_argument);           // empty
  CHECK_THROWS_AS(check({{4, 2}}), std::invalid_argument);           // reversed
  CHECK_THROWS_WITH(check({{10, 21}}), HasText("ends past the buffer of 20"));
  CHECK_THROWS_AS(bk::check_flat_ranges(nullptr, 2, n), std::invalid_argument);
  float w = 0, v = 0, g = 0;
  const bk::FlatRange bad{0, 2};
  CHECK_THROWS_AS(bk::sgd_flat_step_cpu(&w, &v, &g, 1, bk::SgdParams{}, &bad, 1),
                  std::invalid_argument);
}
