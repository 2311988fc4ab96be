// Dynamic loss scaling's state machine (see basin/loss_scale.h). The scale stays a power of two
// when the initial value and the factors are (the defaults are), so multiplying by it and by its
// inverse is exact in binary floating point except where it overflows or underflows, which is
// what the check is for.
#include <basin/loss_scale.h>

#include <cmath>
#include <stdexcept>
#include <string>

namespace basin::exec {

void check_loss_scale(const LossScaleConfig& c) {
  auto bad = [](const std::string& field, const std::string& expected) {
    throw std::invalid_argument("loss_scale." + field + ": expected " + expected);
  };
  if (!(c.initial > 0) || !std::isfinite(c.initial))
    bad("initial", "a finite scale above 0, got " + std::to_string(c.initial));
  if (!(c.growth_factor >= 1) || !std::isfinite(c.growth_factor))
    bad("growth_factor", "a finite factor of at least 1, got " + std::to_string(c.growth_factor));
  if (!(c.backoff_factor > 0 && c.backoff_factor < 1))
    bad("backoff_factor", "a factor in (0, 1), got " + std::to_string(c.backoff_factor));
  if (c.growth_interval < 1)
    bad("growth_interval", "at least 1 step, got " + std::to_string(c.growth_interval));
}

LossScaleState initial_loss_scale(const LossScaleConfig& c) {
  return {.scale = c.enabled ? c.initial : 1.0};
}

bool update_loss_scale(LossScaleState& s, const LossScaleConfig& c, bool finite) {
  if (!c.enabled) return finite;
  if (!finite) {
    s.scale *= c.backoff_factor;
    s.good_steps = 0;
    ++s.skipped_steps;
    return false;
  }
  if (++s.good_steps >= c.growth_interval) {
    // An infinite scale would make every later step overflow; stop growing below that.
    if (std::isfinite(s.scale * c.growth_factor)) s.scale *= c.growth_factor;
    s.good_steps = 0;
  }
  return true;
}

}  // namespace basin::exec
