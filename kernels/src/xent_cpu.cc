// CPU reference of softmax cross-entropy, forward and backward (see basin/kernels.h). Sums are
// taken in double so that the reference is more accurate than the fp32 GPU version it checks,
// and the stated tolerance measures the GPU's error rather than both sides' rounding.
#include "xent_common.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace basin::kernels {
namespace {

struct RowStats {
  float max;
  double sum_exp;  // sum of exp(x - max)
};

RowStats row_stats(const float* x, int classes) {
  const float m = *std::max_element(x, x + classes);
  double s = 0;
  for (int j = 0; j < classes; ++j) s += std::exp(static_cast<double>(x[j]) - m);
  return {m, s};
}

bool label_ok(std::int32_t label, int classes) { return label >= 0 && label < classes; }

}  // namespace

void softmax_xent_forward_cpu(const float* logits, const std::int32_t* labels, int rows,
                              int classes, float normalizer, float* row_loss, float* mean_loss) {
  detail::check_xent_args(rows, classes, normalizer);
  double total = 0;
  for (int r = 0; r < rows; ++r) {
    const float* x = logits + static_cast<size_t>(r) * classes;
    const RowStats st = row_stats(x, classes);
    const double loss = label_ok(labels[r], classes)
                            ? (static_cast<double>(st.max) - x[labels[r]]) + std::log(st.sum_exp)
                            : std::numeric_limits<double>::quiet_NaN();
    row_loss[r] = static_cast<float>(loss);
    total += loss;
  }
  *mean_loss = static_cast<float>(total / normalizer);
}

void softmax_xent_backward_cpu(const float* logits, const std::int32_t* labels, int rows,
                               int classes, float normalizer, float* dlogits) {
  detail::check_xent_args(rows, classes, normalizer);
  for (int r = 0; r < rows; ++r) {
    const size_t base = static_cast<size_t>(r) * classes;
    const float* x = logits + base;
    float* dx = dlogits + base;  // may equal x: each x[j] is read before dx[j] is written
    const RowStats st = row_stats(x, classes);
    const bool ok = label_ok(labels[r], classes);
    for (int j = 0; j < classes; ++j) {
      const double softmax = std::exp(static_cast<double>(x[j]) - st.max) / st.sum_exp;
      const double onehot = j == labels[r] ? 1.0 : 0.0;
      dx[j] = ok ? static_cast<float>((softmax - onehot) / normalizer)
                 : std::numeric_limits<float>::quiet_NaN();
    }
  }
}

}  // namespace basin::kernels
