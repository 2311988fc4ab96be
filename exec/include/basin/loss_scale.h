// basin exec dynamic loss scaling: keeps fp16 gradients out of the underflow range by scaling
// the loss's gradient up, and backs off when that overflows (Micikevicius et al. 2018, "Mixed
// precision training"; the scheme torch.cuda.amp.GradScaler runs).
//
// Per step: backward starts from dL/dlogits x scale; once the gradients are complete (summed
// over micro-batches and ranks) they are multiplied by 1/scale and checked. All finite: the
// step is applied, and after `growth_interval` applied steps in a row the scale doubles.
// Not finite: the step is skipped (weights and momentum untouched) and the scale halves; a
// non-finite loss (an fp16 forward that overflowed) counts as such an overflow, as in
// GradScaler. The state is three numbers that the checkpoint carries, so a resumed run continues
// the same sequence of scales. A plain struct and free functions: the trainer owns one, the backend only
// does the unscale-and-check pass (Backend::unscale_gradients).
#pragma once

namespace basin::exec {

struct LossScaleConfig {
  bool enabled = false;         // on by default for fp16 (basin train --precision fp16)
  double initial = 65536;       // 2^16, as GradScaler
  double growth_factor = 2;     // after growth_interval applied steps in a row
  double backoff_factor = 0.5;  // after a step with a non-finite gradient
  long long growth_interval = 2000;
};

struct LossScaleState {
  double scale = 1;             // what the next step's loss gradient is multiplied by
  long long good_steps = 0;     // applied steps since the last change of scale
  long long skipped_steps = 0;  // over the whole run
  bool operator==(const LossScaleState&) const = default;
};

// Throws std::invalid_argument naming the field (loss_scale.initial, ...) and what was expected.
void check_loss_scale(const LossScaleConfig& config);
// The state a run starts from: config.initial when enabled, else a scale of 1 that never changes.
LossScaleState initial_loss_scale(const LossScaleConfig& config);
// After a step's gradients were unscaled and checked: returns whether to apply the step, and
// moves the state on (halve and count a skip, or count a good step and maybe grow). With
// scaling disabled, returns `finite` and leaves the state alone.
bool update_loss_scale(LossScaleState& state, const LossScaleConfig& config, bool finite);

}  // namespace basin::exec
