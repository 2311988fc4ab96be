// GPU residual add + ReLU, forward and backward, and its halves (add, ReLU) alone: one grid-stride pass each, fp32 arithmetic and
// one rounding at the store, so the results equal the CPU reference's bit for bit.
#include "device_common.cuh"

namespace basin::kernels {
namespace {

// y may alias a or b (each element is read before it is written by the same thread).
template <class S>
__global__ void residual_add_relu_kernel(const typename S::T* a, const typename S::T* b,
                                         typename S::T* y, size_t n) {
  for (size_t i = detail::grid_stride_start(); i < n; i += detail::grid_stride_step()) {
    const float sum = S::load(a, i) + S::load(b, i);
    S::store(y, i, sum < 0.f ? 0.f : sum);  // not fmaxf, which would turn a NaN into 0
  }
}

// dx may alias dy (each element is read before it is written by the same thread).
template <class S>
__global__ void residual_add_relu_backward_kernel(const typename S::T* __restrict__ y,
                                                  const typename S::T* dy, typename S::T* dx,
                                                  size_t n) {
  for (size_t i = detail::grid_stride_start(); i < n; i += detail::grid_stride_step())
    dx[i] = S::load(y, i) > 0.f ? dy[i] : typename S::T(0);
}

template <class S>
__global__ void add_kernel(const typename S::T* a, const typename S::T* b, typename S::T* y,
                           size_t n) {
  for (size_t i = detail::grid_stride_start(); i < n; i += detail::grid_stride_step())
    S::store(y, i, S::load(a, i) + S::load(b, i));
}

// y may alias x. Selects rather than rounds, so -0 and NaN pass through as the CPU's copy does.
template <class S>
__global__ void relu_kernel(const typename S::T* x, typename S::T* y, size_t n) {
  for (size_t i = detail::grid_stride_start(); i < n; i += detail::grid_stride_step())
    y[i] = S::load(x, i) < 0.f ? typename S::T(0) : x[i];
}

}  // namespace

void add_gpu(const void* a, const void* b, void* y, size_t n, Precision p, void* stream) {
  if (n == 0) return;
  detail::with_storage(p, [&](auto storage) {
    using S = decltype(storage);
    using T = typename S::T;
    add_kernel<S><<<detail::grid_stride_blocks(n), detail::kThreads, 0, detail::as_stream(stream)>>>(
        static_cast<const T*>(a), static_cast<const T*>(b), static_cast<T*>(y), n);
    CUDA_CHECK_LAUNCH();
  });
}

void relu_gpu(const void* x, void* y, size_t n, Precision p, void* stream) {
  if (n == 0) return;
  detail::with_storage(p, [&](auto storage) {
    using S = decltype(storage);
    using T = typename S::T;
    relu_kernel<S><<<detail::grid_stride_blocks(n), detail::kThreads, 0, detail::as_stream(stream)>>>(
        static_cast<const T*>(x), static_cast<T*>(y), n);
    CUDA_CHECK_LAUNCH();
  });
}

void residual_add_relu_gpu(const void* a, const void* b, void* y, size_t n, Precision p,
                           void* stream) {
  if (n == 0) return;
  detail::with_storage(p, [&](auto storage) {
    using S = decltype(storage);
    using T = typename S::T;
    residual_add_relu_kernel<S><<<detail::grid_stride_blocks(n), detail::kThreads, 0,
                                  detail::as_stream(stream)>>>(
        static_cast<const T*>(a), static_cast<const T*>(b), static_cast<T*>(y), n);
    CUDA_CHECK_LAUNCH();
  });
}

void residual_add_relu_backward_gpu(const void* y, const void* dy, void* dx, size_t n,
                                    Precision p, void* stream) {
  if (n == 0) return;
  detail::with_storage(p, [&](auto storage) {
    using S = decltype(storage);
    using T = typename S::T;
    residual_add_relu_backward_kernel<S><<<detail::grid_stride_blocks(n), detail::kThreads, 0,
                                           detail::as_stream(stream)>>>(
        static_cast<const T*>(y), static_cast<const T*>(dy), static_cast<T*>(dx), n);
    CUDA_CHECK_LAUNCH();
  });
}

}  // namespace basin::kernels
