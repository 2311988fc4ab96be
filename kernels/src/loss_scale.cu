// GPU pass of dynamic loss scaling: unscale the fp32 gradients in place and raise one device
// flag if any result is not finite. One grid-stride pass (read and write 4 bytes per element);
// the flag is written only by threads that see an overflow, so the common case costs no atomics.
#include "device_common.cuh"

namespace basin::kernels {
namespace {

__global__ void unscale_check_finite_kernel(float* __restrict__ grads, size_t n, float factor,
                                            std::uint32_t* __restrict__ found_nonfinite) {
  bool bad = false;
  for (size_t i = detail::grid_stride_start(); i < n; i += detail::grid_stride_step()) {
    const float g = grads[i] * factor;
    grads[i] = g;
    bad |= !isfinite(g);
  }
  if (bad) *found_nonfinite = 1;  // every writer writes the same value: no race that matters
}

}  // namespace

void unscale_check_finite_gpu(float* grads, size_t n, float factor,
                              std::uint32_t* found_nonfinite, void* stream) {
  if (found_nonfinite == nullptr)
    throw std::invalid_argument("unscale_check_finite_gpu: null found_nonfinite flag");
  if (n == 0) return;
  unscale_check_finite_kernel<<<detail::grid_stride_blocks(n), detail::kThreads, 0,
                                detail::as_stream(stream)>>>(grads, n, factor, found_nonfinite);
  CUDA_CHECK_LAUNCH();
}

}  // namespace basin::kernels
