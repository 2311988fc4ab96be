// The GPU softmax cross-entropy against the CPU reference (which sums in double) on random
// logits of awkward shapes. Stated bounds, fp32:
//   row losses and the mean: 1e-5 relative, or 1e-6 absolute for losses near 0 (where
//   log(sum exp) ~ sum - 1 and the sum's last-bit rounding is all there is);
//   gradients: 1e-5 relative, or 1e-6 / normalizer absolute for the label's entry when its
//   probability is near 1 (softmax - 1 cancels).
#include "../catch.h"
#include "compare.h"
#include "device_buffer.h"

#include <basin/kernels.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

namespace bk = basin::kernels;

TEST_CASE("GPU softmax cross-entropy matches the CPU reference on awkward shapes",
          "[kernels][gpu][xent]") {
  // rows > 65536 exercises the grid-stride over rows; classes cover every block width choice
  // (<= 32, <= 256, more) and non-multiples of 32.
  const auto [rows, classes] = GENERATE(table<int, int>({{0, 10},
                                                         {1, 1},
                                                         {1, 1000},
                                                         {7, 31},
                                                         {13, 33},
                                                         {5, 257},
                                                         {64, 1000},
                                                         {3, 1009},
                                                         {2, 50257},
                                                         {70001, 17}}));
  CAPTURE(rows, classes);
  const size_t n = size_t(rows) * classes;
  std::mt19937 rng(31);
  std::normal_distribution<float> normal(0.f, 3.f);
  std::uniform_int_distribution<std::int32_t> label_of(0, classes - 1);
  std::vector<float> logits(n);
  for (float& x : logits) x = normal(rng) + 20.f;  // an offset the max subtraction must absorb
  std::vector<std::int32_t> labels(rows);
  for (auto& l : labels) l = label_of(rng);
  const float normalizer = 2.f * rows + 1;  // e.g. the global batch over two ranks

  std::vector<float> row_loss(rows), grad(n);
  float mean = 0;
  bk::softmax_xent_forward_cpu(logits.data(), labels.data(), rows, classes, normalizer,
                               row_loss.data(), &mean);
  bk::softmax_xent_backward_cpu(logits.data(), labels.data(), rows, classes, normalizer,
                                grad.data());

  DeviceBuffer<float> dlogits(logits), drow_loss(rows), dmean(1), dgrad(n);
  DeviceBuffer<std::int32_t> dlabels(labels);
  bk::softmax_xent_forward_gpu(dlogits.get(), dlabels.get(), rows, classes, normalizer,
                               drow_loss.get(), dmean.get());
  bk::softmax_xent_backward_gpu(dlogits.get(), dlabels.get(), rows, classes, normalizer,
                                dgrad.get());
  const std::vector<float> g_loss = drow_loss.download(), g_grad = dgrad.download();
  const float g_mean = dmean.download()[0];

  CAPTURE(g_mean, mean);
  REQUIRE(within(g_mean, mean, 1e-5, 1e-6));
  REQUIRE(first_mismatch(g_loss, row_loss, 1e-5, 1e-6) == "");
  REQUIRE(first_mismatch(g_grad, grad, 1e-5, 1e-6 / normalizer) == "");

  // In place (dlogits = logits) gives the same gradient.
  bk::softmax_xent_backward_gpu(dlogits.get(), dlabels.get(), rows, classes, normalizer,
                                dlogits.get());
  REQUIRE(first_difference(dlogits.download(), g_grad) == "");
}

TEST_CASE("GPU softmax cross-entropy gives NaN rows for labels outside the classes",
          "[kernels][gpu][xent]") {
  const int rows = 3, classes = 40;
  std::vector<float> logits(rows * classes);
  for (size_t i = 0; i < logits.size(); ++i) logits[i] = std::sin(float(i));
  const std::vector<std::int32_t> labels = {-1, 5, classes};
  DeviceBuffer<float> dlogits(logits), drow_loss(rows), dmean(1), dgrad(logits.size());
  DeviceBuffer<std::int32_t> dlabels(labels);
  bk::softmax_xent_forward_gpu(dlogits.get(), dlabels.get(), rows, classes, 3.f, drow_loss.get(),
                               dmean.get());
  bk::softmax_xent_backward_gpu(dlogits.get(), dlabels.get(), rows, classes, 3.f, dgrad.get());
  const std::vector<float> loss = drow_loss.download(), grad = dgrad.download();
  CHECK(std::isnan(loss[0]));
  CHECK(std::isfinite(loss[1]));
  CHECK(std::isnan(loss[2]));
  CHECK(std::isnan(dmean.download()[0]));
  CHECK(std::isnan(grad[0]));
  CHECK(std::isfinite(grad[classes]));
  CHECK(std::isnan(grad[2 * classes]));
  CHECK_THROWS_AS(bk::softmax_xent_forward_gpu(dlogits.get(), dlabels.get(), rows, classes, 0.f,
                                               drow_loss.get(), dmean.get()),
                  std::invalid_argument);
}
