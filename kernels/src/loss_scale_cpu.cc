// CPU reference of dynamic loss scaling's gradient pass (see basin/kernels.h): unscale the fp32
// gradients in place and say whether they are all finite. The CPU backend's step runs it, and
// the GPU kernel is tested against it bit for bit (one fp32 multiply per element).
#include <basin/kernels.h>

#include <cmath>

namespace basin::kernels {

bool unscale_check_finite_cpu(float* grads, size_t n, float factor) {
  bool finite = true;
  for (size_t i = 0; i < n; ++i) {
    grads[i] *= factor;
    finite = finite && std::isfinite(grads[i]);
  }
  return finite;
}

}  // namespace basin::kernels
