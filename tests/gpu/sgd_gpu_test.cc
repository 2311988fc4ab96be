// The GPU SGD momentum step against its CPU reference on random inputs.
#include "../catch.h"

#include <basin/cuda_check.h>
#include <basin/kernels.h>

#include <random>
#include <vector>

namespace bk = basin::kernels;

TEST_CASE("GPU SGD momentum step matches the CPU reference to 1e-6 relative", "[kernels][gpu]") {
  const size_t n = GENERATE(size_t{0}, size_t{1}, size_t{1000}, size_t{1} << 22);
  const bool nesterov = GENERATE(false, true);
  CAPTURE(n, nesterov);
  std::mt19937 rng(42);
  std::normal_distribution<float> normal(0.f, 1.f);
  std::vector<float> w(n), v(n), g(n);
  for (size_t i = 0; i < n; ++i) w[i] = normal(rng), v[i] = normal(rng), g[i] = normal(rng);
  bk::SgdParams p{.lr = 0.4f, .momentum = 0.9f, .weight_decay = 1e-4f, .nesterov = nesterov};

  float *dw = nullptr, *dv = nullptr, *dg = nullptr;
  const size_t bytes = n * sizeof(float);
  CUDA_CHECK(cudaMalloc(&dw, bytes + 4));
  CUDA_CHECK(cudaMalloc(&dv, bytes + 4));
  CUDA_CHECK(cudaMalloc(&dg, bytes + 4));
  CUDA_CHECK(cudaMemcpy(dw, w.data(), bytes, cudaMemcpyHostToDevice));
  CUDA_CHECK(cudaMemcpy(dv, v.data(), bytes, cudaMemcpyHostToDevice));
  CUDA_CHECK(cudaMemcpy(dg, g.data(), bytes, cudaMemcpyHostToDevice));
  for (int step = 0; step < 3; ++step) {
    bk::sgd_momentum_step_gpu(dw, dv, dg, n, p);
    bk::sgd_momentum_step_cpu(w.data(), v.data(), g.data(), n, p);
  }
  std::vector<float> gw(n), gv(n);
  CUDA_CHECK(cudaMemcpy(gw.data(), dw, bytes, cudaMemcpyDeviceToHost));
  CUDA_CHECK(cudaMemcpy(gv.data(), dv, bytes, cudaMemcpyDeviceToHost));
  CUDA_CHECK(cudaFree(dw));
  CUDA_CHECK(cudaFree(dv));
  CUDA_CHECK(cudaFree(dg));
  // fp32 with possible FMA contraction on the GPU: a few ulps per step.
  for (size_t i = 0; i < n; ++i) {
    CAPTURE(i);
    REQUIRE_THAT(gw[i], WithinRel(w[i], 1e-5f) || WithinAbs(w[i], 1e-6));
    REQUIRE_THAT(gv[i], WithinRel(v[i], 1e-5f) || WithinAbs(v[i], 1e-6));
  }
}
