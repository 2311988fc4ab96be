// The CPU softmax cross-entropy against closed forms (uniform logits give log C, two classes give
// softplus), shift invariance with huge logits, and central finite differences of its own
// forward for the backward pass.
#include "../catch.h"

#include <basin/kernels.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <stdexcept>
#include <vector>

namespace bk = basin::kernels;

TEST_CASE("Cross-entropy of uniform logits is log C per row", "[kernels][xent]") {
  const int classes = GENERATE(1, 2, 10, 1000);
  const int rows = 3;
  CAPTURE(classes);
  std::vector<float> logits(static_cast<size_t>(rows) * classes, 0.37f);
  std::vector<std::int32_t> labels = {0, classes / 2, classes - 1};
  std::vector<float> row_loss(rows);
  float mean = -1;
  bk::softmax_xent_forward_cpu(logits.data(), labels.data(), rows, classes, 4.0f,
                               row_loss.data(), &mean);
  for (int r = 0; r < rows; ++r) REQUIRE_THAT(row_loss[r], WithinAbs(std::log(classes), 1e-6));
  REQUIRE_THAT(mean, WithinAbs(rows * std::log(classes) / 4.0, 1e-6));
}

TEST_CASE("Two-class cross-entropy is softplus of the logit margin", "[kernels][xent]") {
  const std::vector<float> logits = {2.0f, -1.0f, 0.5f, 0.25f, -3.0f, 4.0f};
  const std::vector<std::int32_t> labels = {0, 1, 0};
  std::vector<float> row_loss(3);
  float mean = 0;
  bk::softmax_xent_forward_cpu(logits.data(), labels.data(), 3, 2, 3.0f, row_loss.data(), &mean);
  double total = 0;
  for (int r = 0; r < 3; ++r) {
    const double mine = logits[2 * r + labels[r]], other = logits[2 * r + 1 - labels[r]];
    const double expect = std::log1p(std::exp(other - mine));
    CHECK_THAT(row_loss[r], WithinRel(expect, 1e-6));
    total += expect;
  }
  CHECK_THAT(mean, WithinRel(total / 3, 1e-6));
}

TEST_CASE("Cross-entropy is shift invariant and finite for huge logits", "[kernels][xent]") {
  const std::vector<float> base = {0.3f, -1.2f, 2.5f, 0.0f};
  std::vector<float> shifted = base, huge = {1e4f, 0.f, -1e4f, 5e3f};
  for (float& x : shifted) x += 1000.f;  // exp(1000) overflows any float or double
  const std::int32_t label = 1;
  float a = 0, b = 0, c = 0, mean = 0;
  bk::softmax_xent_forward_cpu(base.data(), &label, 1, 4, 1.f, &a, &mean);
  bk::softmax_xent_forward_cpu(shifted.data(), &label, 1, 4, 1.f, &b, &mean);
  bk::softmax_xent_forward_cpu(huge.data(), &label, 1, 4, 1.f, &c, &mean);
  REQUIRE(std::isfinite(b));
  // 1000 + x in fp32 moves each logit by up to half an ulp of 1000 (3e-5).
  REQUIRE_THAT(b, WithinAbs(a, 1e-4));
  // Label 1 sits 1e4 below the max; the other terms add e^-5000 and less.
  REQUIRE(c == 1e4f);
  std::vector<float> grad(4);
  bk::softmax_xent_backward_cpu(huge.data(), &label, 1, 4, 1.f, grad.data());
  CHECK(grad[0] == 1.f);   // softmax puts all mass on the max
  CHECK(grad[1] == -1.f);  // minus the one-hot
  CHECK(grad[2] == 0.f);
}

TEST_CASE("Softmax cross-entropy gradient rows sum to zero and match finite differences",
          "[kernels][xent]") {
  const int rows = 3, classes = 7;
  const float normalizer = 5.f;
  std::mt19937 rng(5);
  std::normal_distribution<float> normal(0.f, 2.f);
  std::vector<float> logits(rows * classes);
  for (float& x : logits) x = normal(rng);
  const std::vector<std::int32_t> labels = {3, 0, 6};
  std::vector<float> grad(logits.size());
  bk::softmax_xent_backward_cpu(logits.data(), labels.data(), rows, classes, normalizer,
                                grad.data());
  std::vector<float> row_loss(rows);
  auto mean_loss = [&](const std::vector<float>& x) {
    float m = 0;
    bk::softmax_xent_forward_cpu(x.data(), labels.data(), rows, classes, normalizer,
                                 row_loss.data(), &m);
    return static_cast<double>(m);
  };
  for (int r = 0; r < rows; ++r) {
    double sum = 0;
    for (int j = 0; j < classes; ++j) sum += grad[r * classes + j];
    CAPTURE(r);
    REQUIRE_THAT(sum, WithinAbs(0.0, 1e-7));
    REQUIRE(grad[r * classes + labels[r]] < 0);
  }
  // Central differences: truncation ~ h^2/6 * f''' ~ 1e-5 and the fp32 mean's rounding
  // ~ 1e-7 / (2h) ~ 5e-6, against gradients of order 1 / normalizer = 0.2.
  const float h = 1e-2f;
  for (size_t i = 0; i < logits.size(); ++i) {
    std::vector<float> plus = logits, minus = logits;
    plus[i] += h;
    minus[i] -= h;
    const double fd = (mean_loss(plus) - mean_loss(minus)) / (static_cast<double>(plus[i]) - minus[i]);
    CAPTURE(i);
    REQUIRE_THAT(grad[i], WithinAbs(fd, 1e-4));
  }
}

TEST_CASE("Partial means over the global batch add up to the global mean", "[kernels][xent]") {
  // Two ranks with 2 rows each, normalizer 4 = global batch: their means sum to the mean of all.
  const int classes = 5;
  std::vector<float> logits(4 * classes);
  for (size_t i = 0; i < logits.size(); ++i) logits[i] = std::sin(static_cast<float>(i));
  const std::vector<std::int32_t> labels = {1, 4, 0, 2};
  std::vector<float> row_loss(4);
  float all = 0, first = 0, second = 0;
  bk::softmax_xent_forward_cpu(logits.data(), labels.data(), 4, classes, 4.f, row_loss.data(), &all);
  bk::softmax_xent_forward_cpu(logits.data(), labels.data(), 2, classes, 4.f, row_loss.data(), &first);
  bk::softmax_xent_forward_cpu(logits.data() + 2 * classes, labels.data() + 2, 2, classes, 4.f,
                               row_loss.data(), &second);
  REQUIRE_THAT(first + second, WithinRel(static_cast<double>(all), 1e-6));
}

TEST_CASE("Cross-entropy backward in place equals out of place", "[kernels][xent]") {
  const int rows = 4, classes = 33;
  std::vector<float> logits(rows * classes);
  for (size_t i = 0; i < logits.size(); ++i) logits[i] = std::cos(0.7f * static_cast<float>(i));
  const std::vector<std::int32_t> labels = {0, 32, 7, 16};
  std::vector<float> out(logits.size()), in_place = logits;
  bk::softmax_xent_backward_cpu(logits.data(), labels.data(), rows, classes, 8.f, out.data());
  bk::softmax_xent_backward_cpu(in_place.data(), labels.data(), rows, classes, 8.f, in_place.data());
  REQUIRE(in_place == out);
}

TEST_CASE("A label outside the classes gives a NaN row and leaves the others alone",
          "[kernels][xent]") {
  const std::vector<float> logits = {1.f, 2.f, 3.f, 1.f, 2.f, 3.f};
  const std::vector<std::int32_t> labels = {2, 3};
  std::vector<float> row_loss(2), grad(6);
  float mean = 0;
  bk::softmax_xent_forward_cpu(logits.data(), labels.data(), 2, 3, 2.f, row_loss.data(), &mean);
  CHECK(std::isfinite(row_loss[0]));
  CHECK(std::isnan(row_loss[1]));
  CHECK(std::isnan(mean));
  bk::softmax_xent_backward_cpu(logits.data(), labels.data(), 2, 3, 2.f, grad.data());
  CHECK(std::isfinite(grad[2]));
  CHECK(std::isnan(grad[3]));
}

TEST_CASE("Cross-entropy refuses empty classes and a non-positive normalizer", "[kernels][xent]") {
  float x = 0, loss = 0, mean = 0;
  std::int32_t label = 0;
  CHECK_THROWS_AS(bk::softmax_xent_forward_cpu(&x, &label, 1, 0, 1.f, &loss, &mean),
                  std::invalid_argument);
  CHECK_THROWS_WITH(bk::softmax_xent_forward_cpu(&x, &label, 1, 1, 0.f, &loss, &mean),
                    HasText("normalizer"));
  CHECK_THROWS_AS(bk::softmax_xent_backward_cpu(&x, &label, -1, 1, 1.f, &loss),
                  std::invalid_argument);
  // Zero rows is a valid empty shard: mean 0.
  mean = 5;
  bk::softmax_xent_forward_cpu(nullptr, nullptr, 0, 10, 3.f, nullptr, &mean);
  CHECK(mean == 0.f);
}
