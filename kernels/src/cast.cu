// GPU precision casts: one grid-stride pass, converting with CUDA's own intrinsics
// (__float2bfloat16_rn, __float2half_rn), which the CPU reference is tested to match bit for bit;
// and the NCHW fp32 -> NHWC cast that brings host floats into a GPU's activation layout.
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

// One thread an output element, so the stores are coalesced; the reads stride by hw (for a
// 3-channel image, three interleaved streams the caches serve).
template <class To>
__global__ void nchw_to_nhwc_kernel(const float* __restrict__ src, typename To::T* __restrict__ dst,
                                    size_t total, int c, int hw) {
  for (size_t i = detail::grid_stride_start(); i < total; i += detail::grid_stride_step()) {
    const size_t channel = i % c, pixel_index = i / c;  // pixel_index = image * hw + pixel
    const size_t image = pixel_index / hw, pixel = pixel_index % hw;
    To::store(dst, i, src[(image * c + channel) * hw + pixel]);
  }
}

}  // namespace

void nchw_to_nhwc_gpu(const float* src, void* dst, Precision to, int n, int c, int hw,
                      void* stream) {
  if (n < 0 || c < 0 || hw < 0) throw std::invalid_argument("nchw_to_nhwc_gpu: negative size");
  const size_t total = static_cast<size_t>(n) * c * hw;
  if (total == 0) return;
  const cudaStream_t s = detail::as_stream(stream);
  detail::with_storage(to, [&](auto to_storage) {
    using To = decltype(to_storage);
    nchw_to_nhwc_kernel<To><<<detail::grid_stride_blocks(total), detail::kThreads, 0, s>>>(
        src, static_cast<typename To::T*>(dst), total, c, hw);
    CUDA_CHECK_LAUNCH();
  });
}

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
