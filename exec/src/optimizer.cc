// The optimizer of the large-minibatch recipe: the learning-rate schedule (linear scaling rule,
// gradual warmup, step or cosine decay) and the SGD step over the flat parameter array.
//
// The schedule is a pure function of the fractional epoch so that a resumed run, or a rank that
// joins late, computes exactly the rate an uninterrupted run would.
#include <basin/train.h>

#include <algorithm>
#include <cmath>
#include <numbers>

namespace basin::exec {

double scaled_lr(const LrSchedule& s, long long global_batch) {
  return s.base_lr * static_cast<double>(global_batch) / s.base_batch;
}

double stated_warmup_start(const LrSchedule& s) { return s.warmup_start_lr < 0 ? s.base_lr : s.warmup_start_lr; }

double warmup_start(const LrSchedule& s, long long global_batch) {
  // Warmup climbs to the scaled rate; it never runs down to it. A global batch at most
  // base_batch has its peak at or under base_lr and needs no warmup (Goyal et al. warm up
  // because kn > 256 makes the early rate too high), so it starts at its peak.
  return std::min(stated_warmup_start(s), scaled_lr(s, global_batch));
}

double learning_rate(const LrSchedule& s, long long global_batch, double epoch,
                     double total_epochs) {
  const double peak = scaled_lr(s, global_batch), start = warmup_start(s, global_batch);
  const bool warming = epoch < s.warmup_epochs;
  const double ramp = warming ? start + (peak - start) * epoch / s.warmup_epochs : peak;
  if (s.decay == LrSchedule::Decay::cosine) {
    if (warming) return ramp;
    const double span = total_epochs - s.warmup_epochs;
    if (span <= 0) return peak;
    const double t = std::clamp((epoch - s.warmup_epochs) / span, 0.0, 1.0);
    return peak * 0.5 * (1 + std::cos(std::numbers::pi * t));
  }
  // Step decay multiplies the ramp too: a milestone inside the warmup (a short run's) decays it
  // rather than being lost until the warmup ends.
  double lr = ramp;
  for (double m : s.milestones)
    if (epoch >= m) lr *= s.gamma;
  return lr;
}

void sgd_step(Net& net, std::span<float> velocity, const SgdConfig& sgd, double lr) {
  // One pass over the flat arrays in the backend's memory (host or device), skipping weight decay
  // on the ranges of batch norm parameters and biases.
  FlatSgdStep step{.lr = static_cast<float>(lr),
                   .momentum = static_cast<float>(sgd.momentum),
                   .weight_decay = static_cast<float>(sgd.weight_decay),
                   .nesterov = sgd.nesterov};
  if (!sgd.decay_bn_and_bias)
    for (const ParamInfo& p : net.param_info())
      if (p.no_weight_decay) {
        if (!step.no_decay.empty() && step.no_decay.back().second == p.offset)
          step.no_decay.back().second += p.count;  // neighbours merge (bn weight and bias)
        else
          step.no_decay.emplace_back(p.offset, p.offset + p.count);
      }
  auto params = net.params();
  net.backend().sgd_step(params.data(), velocity.data(), net.grads().data(),
                         static_cast<long long>(params.size()), step);
}

}  // namespace basin::exec
