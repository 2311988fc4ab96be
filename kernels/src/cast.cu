// GPU precision casts: one grid-stride pass, converting with CUDA's own intrinsics
// (__float2bfloat16_rn, __float2half_rn), which the CPU reference is tested to match bit for bit.
#include "device_common.cuh"

#include <stdexcept>

namespace basin::kernels {
namespace {

template <class From, class To>
__global__ void cast_kernel(const typename From::T* __restrict__ src, typename To::T* __restrict__ dst,
                            size_t n) {
  for (size_t i = detail::grid_stride_start(); i < n; i += detail::grid_stride_step())
    To::store(dst, i, From::load(src, i));
}

}  // namespace

void cast_gpu(const void* src, Precision from, void* dst, Precision to, size_t n, void* stream) {
  if (n == 0) return;
  const cudaStream_t s = detail::as_stream(stream);
  if (from == to) {
    CUDA_CHECK(cudaMemcpyAsync(dst, src, n * bytes_per_element(from), cudaMemcpyDeviceToDevice, s));
    return;
  }
  detail::with_storage(from, [&](auto from_storage) {
    detail::with_storage(to, [&](auto to_storage) {
      using From = decltype(from_storage);
      using To = decltype(to_storage);
      cast_kernel<From, To><<<detail::grid_stride_blocks(n), detail::kThreads, 0, s>>>(
          static_cast<const typename From::T*>(src), static_cast<typename To::T*>(dst), n);
      CUDA_CHECK_LAUNCH();
    });
  });
}

}  // namespace basin::kernels
