// CPU reference of the residual add + ReLU that closes each ResNet bottleneck block (see
// basin/kernels.h), forward and backward, in any storage precision, and its two halves (add, ReLU) alone. The definition the GPU
// kernels must match bit for bit.
#include "storage.h"

namespace basin::kernels {

void residual_add_relu_cpu(const void* a, const void* b, void* y, size_t n, Precision p) {
  for (size_t i = 0; i < n; ++i) {
    const float sum = detail::load_float(a, p, i) + detail::load_float(b, p, i);
    detail::store_float(y, p, i, sum < 0.f ? 0.f : sum);
  }
}

void residual_add_relu_backward_cpu(const void* y, const void* dy, void* dx, size_t n,
                                    Precision p) {
  for (size_t i = 0; i < n; ++i) {
    if (detail::load_float(y, p, i) > 0.f)
      detail::copy_element(dy, dx, p, i);
    else
      detail::zero_element(dx, p, i);
  }
}

void add_cpu(const void* a, const void* b, void* y, size_t n, Precision p) {
  for (size_t i = 0; i < n; ++i)
    detail::store_float(y, p, i, detail::load_float(a, p, i) + detail::load_float(b, p, i));
}

void relu_cpu(const void* x, void* y, size_t n, Precision p) {
  for (size_t i = 0; i < n; ++i) {
    const float v = detail::load_float(x, p, i);
    if (v < 0.f)
      detail::zero_element(y, p, i);
    else
      detail::copy_element(x, y, p, i);  // a NaN stays NaN, as in the forward above
  }
}

}  // namespace basin::kernels
