// CPU reference of the SGD momentum step (see basin/kernels.h): the definition the GPU kernel is
// tested against, written for clarity.
#include <basin/kernels.h>

namespace basin::kernels {

void sgd_momentum_step_cpu(float* weights, float* velocity, const float* grads, size_t n,
                           const SgdParams& p) {
  for (size_t i = 0; i < n; ++i) {
    const float d = grads[i] + p.weight_decay * weights[i];
    velocity[i] = p.momentum * velocity[i] + d;
    weights[i] -= p.lr * (p.nesterov ? d + p.momentum * velocity[i] : velocity[i]);
  }
}

}  // namespace basin::kernels
