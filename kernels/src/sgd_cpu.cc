// CPU reference of the SGD momentum step (see basin/kernels.h): the definition the GPU kernels
// are tested against, written for clarity. The flat step walks the buffer once, switching weight
// decay off inside the no-decay ranges, so it is one pass however many tensors there are.
#include <basin/kernels.h>

#include <stdexcept>
#include <string>

namespace basin::kernels {

void sgd_momentum_step_cpu(float* weights, float* velocity, const float* grads, size_t n,
                           const SgdParams& p) {
  for (size_t i = 0; i < n; ++i) {
    const float d = grads[i] + p.weight_decay * weights[i];
    velocity[i] = p.momentum * velocity[i] + d;
    weights[i] -= p.lr * (p.nesterov ? d + p.momentum * velocity[i] : velocity[i]);
  }
}

void check_flat_ranges(const FlatRange* ranges, size_t count, size_t n) {
  if (count > 0 && ranges == nullptr)
    throw std::invalid_argument("flat ranges: null array with count " + std::to_string(count));
  size_t previous_end = 0;
  for (size_t k = 0; k < count; ++k) {
    const FlatRange& r = ranges[k];
    const std::string where = "flat range " + std::to_string(k) + " [" + std::to_string(r.begin) +
                              ", " + std::to_string(r.end) + ")";
    if (r.begin >= r.end) throw std::invalid_argument(where + " is empty");
    if (r.end > n) throw std::invalid_argument(where + " ends past the buffer of " + std::to_string(n));
    if (r.begin < previous_end)
      throw std::invalid_argument(where + " is out of order or overlaps the one before");
    previous_end = r.end;
  }
}

void sgd_flat_step_cpu(float* weights, float* velocity, const float* grads, size_t n,
                       const SgdParams& p, const FlatRange* no_decay, size_t no_decay_count) {
  check_flat_ranges(no_decay, no_decay_count, n);
  SgdParams undecayed = p;
  undecayed.weight_decay = 0.f;
  size_t done = 0;
  for (size_t k = 0; k < no_decay_count; ++k) {
    const FlatRange& r = no_decay[k];
    sgd_momentum_step_cpu(weights + done, velocity + done, grads + done, r.begin - done, p);
    sgd_momentum_step_cpu(weights + r.begin, velocity + r.begin, grads + r.begin,
                          r.end - r.begin, undecayed);
    done = r.end;
  }
  sgd_momentum_step_cpu(weights + done, velocity + done, grads + done, n - done, p);
}

}  // namespace basin::kernels
