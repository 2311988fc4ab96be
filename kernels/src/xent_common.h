// Argument checks shared by the CPU and GPU softmax cross-entropy, so both refuse the same
// inputs with the same message before touching memory.
#pragma once

#include <basin/kernels.h>

#include <cmath>
#include <stdexcept>
#include <string>

namespace basin::kernels::detail {

inline void check_xent_args(int rows, int classes, float normalizer) {
  if (rows < 0) throw std::invalid_argument("softmax xent: rows " + std::to_string(rows) + " < 0");
  if (classes < 1)
    throw std::invalid_argument("softmax xent: classes " + std::to_string(classes) + " < 1");
  if (!(normalizer > 0) || !std::isfinite(normalizer))
    throw std::invalid_argument("softmax xent: normalizer " + std::to_string(normalizer) +
                                " is not a positive finite number");
}

}  // namespace basin::kernels::detail
