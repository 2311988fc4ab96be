// The 4-d relayout on the GPU: one thread an element in the destination's index order, so that
// for the layouts basin converts (NCHW <-> NHWC, OIHW <-> OHWI) one of the two sides is read or
// written in long runs. The GPU backend uses it where cudnnTransformTensor's support for 16-bit
// data is not assured (bf16 weights and their gradients); it converts nothing, so it is exact.
#include "device_common.cuh"

namespace basin::kernels {
namespace {

template <class T>
__global__ void relayout_kernel(const T* __restrict__ src, T* __restrict__ dst, size_t total, Layout4d l) {
  for (size_t i = detail::grid_stride_start(); i < total; i += detail::grid_stride_step()) {
    size_t rest = i;
    long long s = 0, t = 0;
    for (int axis = 3; axis >= 0; --axis) {  // row-major over dims: the last axis fastest
      const long long at = static_cast<long long>(rest % static_cast<size_t>(l.dims[axis]));
      rest /= static_cast<size_t>(l.dims[axis]);
      s += at * l.src_strides[axis];
      t += at * l.dst_strides[axis];
    }
    dst[t] = src[s];
  }
}

}  // namespace

void relayout_gpu(const void* src, void* dst, size_t element_bytes, const Layout4d& l, void* stream) {
  check_layout(l, element_bytes);
  size_t total = 1;
  for (int d = 0; d < 4; ++d) total *= static_cast<size_t>(l.dims[d]);
  if (total == 0) return;
  const cudaStream_t s = detail::as_stream(stream);
  const int blocks = detail::grid_stride_blocks(total);
  if (element_bytes == 2)
    relayout_kernel<std::uint16_t><<<blocks, detail::kThreads, 0, s>>>(
        static_cast<const std::uint16_t*>(src), static_cast<std::uint16_t*>(dst), total, l);
  else
    relayout_kernel<float><<<blocks, detail::kThreads, 0, s>>>(static_cast<const float*>(src),
                                                               static_cast<float*>(dst), total, l);
  CUDA_CHECK_LAUNCH();
}

}  // namespace basin::kernels
