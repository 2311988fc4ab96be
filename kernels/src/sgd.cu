// GPU SGD momentum steps: one fused elementwise pass (read w, v, g; write w, v) so the update
// costs one trip through memory instead of the three a sequence of BLAS calls would take.
//
// The flat step covers every parameter tensor in one launch. Weight decay is switched off inside
// a short sorted list of no-decay ranges (batch norm and biases: about a hundred for ResNet-50),
// found by binary search per element. The list is a few KiB and stays in L1, and the 32 lanes
// of a warp hold neighbouring elements, so they take the same search path; the kernel remains
// bound by its 20 bytes of memory traffic per element, and no per-element mask is read.
#include "device_common.cuh"

namespace basin::kernels {
namespace {

__device__ float sgd_update(float* __restrict__ w, float* __restrict__ v,
                            const float* __restrict__ g, size_t i, const SgdParams& p,
                            float weight_decay) {
  const float d = g[i] + weight_decay * w[i];
  const float vi = p.momentum * v[i] + d;
  v[i] = vi;
  return w[i] - p.lr * (p.nesterov ? d + p.momentum * vi : vi);
}

__global__ void sgd_momentum_kernel(float* __restrict__ w, float* __restrict__ v,
                                    const float* __restrict__ g, size_t n, SgdParams p) {
  for (size_t i = detail::grid_stride_start(); i < n; i += detail::grid_stride_step())
    w[i] = sgd_update(w, v, g, i, p, p.weight_decay);
}

// Whether element i lies in one of the sorted, disjoint ranges: find the first range that ends
// after i; i is inside exactly when that range has begun.
__device__ bool in_ranges(const FlatRange* __restrict__ ranges, size_t count, size_t i) {
  size_t lo = 0, hi = count;
  while (lo < hi) {
    const size_t mid = lo + (hi - lo) / 2;
    if (ranges[mid].end <= i)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo < count && ranges[lo].begin <= i;
}

__global__ void sgd_flat_kernel(float* __restrict__ w, float* __restrict__ v,
                                const float* __restrict__ g, size_t n, SgdParams p,
                                const FlatRange* __restrict__ no_decay, size_t no_decay_count) {
  for (size_t i = detail::grid_stride_start(); i < n; i += detail::grid_stride_step()) {
    const float decay = in_ranges(no_decay, no_decay_count, i) ? 0.f : p.weight_decay;
    w[i] = sgd_update(w, v, g, i, p, decay);
  }
}

}  // namespace

void sgd_momentum_step_gpu(float* weights, float* velocity, const float* grads, size_t n,
                           const SgdParams& p, void* stream) {
  if (n == 0) return;
  sgd_momentum_kernel<<<detail::grid_stride_blocks(n), detail::kThreads, 0,
                        detail::as_stream(stream)>>>(weights, velocity, grads, n, p);
  CUDA_CHECK_LAUNCH();
}

void sgd_flat_step_gpu(float* weights, float* velocity, const float* grads, size_t n,
                       const SgdParams& p, const FlatRange* no_decay, size_t no_decay_count,
                       void* stream) {
  if (no_decay_count > 0 && no_decay == nullptr)
    throw std::invalid_argument("sgd_flat_step_gpu: null no-decay ranges with count " +
                                std::to_string(no_decay_count));
  if (n == 0) return;
  sgd_flat_kernel<<<detail::grid_stride_blocks(n), detail::kThreads, 0,
                    detail::as_stream(stream)>>>(weights, velocity, grads, n, p, no_decay,
                                                 no_decay_count);
  CUDA_CHECK_LAUNCH();
}

}  // namespace basin::kernels
