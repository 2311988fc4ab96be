// The compute side of the simulator: a device's roofline per layer, and the calibration that
// sets the share of peak it runs at from the profile's measurements (or the nearest evidence),
// with a step's fixed cost where two batches were measured. iteration.cc lays the times out on
// the step's timeline; compute_evidence (training.h) reports what stood behind them.
#pragma once

#include <basin/training.h>

#include <string>

namespace basin::sim::detail {

// The datasheet peak at `prec`; 0 where the profile states none (no such arithmetic).
double peak_TFLOPS(const DeviceProfile& p, Precision prec);

// Roofline time of one layer: the larger of its FLOPs at `efficiency` of peak and its memory
// traffic (read input, write output, read weights) at full bandwidth. Backward does the data and
// the weight gradient (twice the forward FLOPs and traffic) for layers with weights, the data
// gradient alone for the rest.
struct LayerTimes {
  double forward_s, backward_s;
};

LayerTimes layer_times(const model::Layer& l, int batch, Precision prec, const DeviceProfile& p, double efficiency);
// SGD with momentum touches each fp32 weight five times (read w, g, v; write w, v).
double optimizer_s(const model::Network& n, const DeviceProfile& p);
// Forward, backward and the optimizer at `efficiency` of peak, on the roofline alone.
double compute_s(const model::Network& n, int batch, Precision prec, const DeviceProfile& p, double efficiency);

struct Calibration {
  double efficiency = 0.5;  // of peak FLOP/s, when nothing was measured
  bool estimated = true;
  bool peak_only = false;  // no measurement behind it at all: a share of the datasheet peak
  std::string basis;
  // Where the profile measured backprop, the roofline's forward and backward are scaled so the
  // calibrated iteration splits as measured (the total is unchanged).
  double forward_scale = 1, backward_scale = 1;
  int measured_gpus = 1;  // GPUs of the measured run (stragglers.cc)
  // A fixed cost of every step whatever its batch (kernel launches, the framework's host work),
  // spread evenly over the layers' forward and backward passes (step_overhead).
  double step_overhead_s = 0;
  // The source of the measurement the share rests on ("pytorch", "basin"; empty for none): its
  // fixed cost is that source's.
  std::string source;
};

// Measured figures first, then estimates from the nearest evidence (see calibration.cc), each
// with the device's fixed cost of a step for this network.
Calibration calibrate(const model::Network& n, Precision prec, const DeviceProfile& p);
// An InputError naming --precision where the profile states no peak for `prec`.
void check_precision(const DeviceProfile& p, Precision prec);

}  // namespace basin::sim::detail
