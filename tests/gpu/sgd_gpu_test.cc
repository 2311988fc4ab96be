// The GPU SGD momentum steps (per tensor and over the flat buffer with no-decay ranges) against
// their CPU references on random inputs.
#include "../catch.h"
#include "compare.h"
#include "device_buffer.h"

#include <basin/kernels.h>

#include <algorithm>
#include <random>
#include <vector>

namespace bk = basin::kernels;

TEST_CASE("GPU SGD momentum step matches the CPU reference to 1e-5 relative", "[kernels][gpu]") {
  const size_t n = GENERATE(size_t{0}, size_t{1}, size_t{1000}, size_t{1000003}, kBeyondOneGrid);
  const bool nesterov = GENERATE(false, true);
  CAPTURE(n, nesterov);
  std::mt19937 rng(42);
  std::normal_distribution<float> normal(0.f, 1.f);
  std::vector<float> w(n), v(n), g(n);
  for (size_t i = 0; i < n; ++i) w[i] = normal(rng), v[i] = normal(rng), g[i] = normal(rng);
  bk::SgdParams p{.lr = 0.4f, .momentum = 0.9f, .weight_decay = 1e-4f, .nesterov = nesterov};
  DeviceBuffer<float> dw(w), dv(v), dg(g);
  for (int step = 0; step < 3; ++step) {
    bk::sgd_momentum_step_gpu(dw.get(), dv.get(), dg.get(), n, p);
    bk::sgd_momentum_step_cpu(w.data(), v.data(), g.data(), n, p);
  }
  const std::vector<float> gw = dw.download(), gv = dv.download();
  // fp32 with FMA contraction on the GPU: a few ulps per step.
  REQUIRE(first_mismatch(gw, w, 1e-5, 1e-6) == "");
  REQUIRE(first_mismatch(gv, v, 1e-5, 1e-6) == "");
}

TEST_CASE("GPU flat SGD step with no-decay ranges matches the CPU reference to 1e-5 relative",
          "[kernels][gpu]") {
  // (n, largest tensor): one element; a prime with ~30k tiny tensors (a long range list for the
  // binary search); more elements than one grid covers with a ResNet-like hundred tensors.
  const auto [n, max_tensor] = GENERATE(table<size_t, size_t>(
      {{0, 1}, {1, 1}, {1000003, 64}, {kBeyondOneGrid, kBeyondOneGrid / 50}}));
  const bool nesterov = GENERATE(false, true);
  CAPTURE(n, max_tensor, nesterov);
  std::mt19937 rng(17);
  std::uniform_int_distribution<size_t> tensor_size(1, max_tensor);
  std::bernoulli_distribution excluded(0.4);
  std::vector<bk::FlatRange> no_decay;
  for (size_t offset = 0; offset < n;) {
    const size_t count = std::min(tensor_size(rng), n - offset);
    if (excluded(rng)) no_decay.push_back({offset, offset + count});
    offset += count;
  }
  bk::check_flat_ranges(no_decay.data(), no_decay.size(), n);
  std::normal_distribution<float> normal(0.f, 1.f);
  std::vector<float> w(n), v(n), g(n);
  for (size_t i = 0; i < n; ++i) w[i] = normal(rng), v[i] = normal(rng), g[i] = normal(rng);
  // A large decay so that a range applied to the wrong elements shows far above the tolerance.
  const bk::SgdParams p{.lr = 0.4f, .momentum = 0.9f, .weight_decay = 0.05f, .nesterov = nesterov};
  DeviceBuffer<float> dw(w), dv(v), dg(g);
  DeviceBuffer<bk::FlatRange> dranges(no_decay);
  for (int step = 0; step < 3; ++step) {
    bk::sgd_flat_step_gpu(dw.get(), dv.get(), dg.get(), n, p, dranges.get(), no_decay.size());
    bk::sgd_flat_step_cpu(w.data(), v.data(), g.data(), n, p, no_decay.data(), no_decay.size());
  }
  const std::vector<float> gw = dw.download(), gv = dv.download();
  REQUIRE(first_mismatch(gw, w, 1e-5, 1e-6) == "");
  REQUIRE(first_mismatch(gv, v, 1e-5, 1e-6) == "");
}
