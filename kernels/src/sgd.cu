// GPU SGD momentum step: one fused elementwise pass (read w, v, g; write w, v) so the update
// costs one trip through memory instead of the three a sequence of BLAS calls would take.
#include <basin/cuda_check.h>
#include <basin/kernels.h>

namespace basin::kernels {
namespace {

__global__ void sgd_momentum_kernel(float* __restrict__ w, float* __restrict__ v,
                                    const float* __restrict__ g, size_t n, SgdParams p) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n;
       i += size_t(gridDim.x) * blockDim.x) {
    const float d = g[i] + p.weight_decay * w[i];
    const float vi = p.momentum * v[i] + d;
    v[i] = vi;
    w[i] -= p.lr * (p.nesterov ? d + p.momentum * vi : vi);
  }
}

}  // namespace

void sgd_momentum_step_gpu(float* weights, float* velocity, const float* grads, size_t n,
                           const SgdParams& p, void* stream) {
  if (n == 0) return;
  const int threads = 256;
  const size_t wanted = (n + threads - 1) / threads;
  const int blocks = static_cast<int>(wanted < 65536 ? wanted : 65536);
  sgd_momentum_kernel<<<blocks, threads, 0, static_cast<cudaStream_t>(stream)>>>(
      weights, velocity, grads, n, p);
  CUDA_CHECK_LAUNCH();
}

}  // namespace basin::kernels
