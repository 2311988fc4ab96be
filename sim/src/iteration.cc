// One data-parallel training iteration, simulated (see basin/training.h): per-layer compute from
// a calibrated roofline, gradient buckets allreduced on one communication stream behind backward,
// the optimizer step, and the input pipeline as a possible bound.
#include <basin/memory_plan.h>
#include <basin/training.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <nlohmann/json.hpp>

namespace basin::sim {
namespace {

// The datasheet peak at `prec`; 0 where the profile states none (no such arithmetic).
double peak_TFLOPS(const DeviceProfile& p, Precision prec) {
  switch (prec) {
    case Precision::fp16: return p.peak_TFLOPS_fp16;
    case Precision::bf16: return p.peak_TFLOPS_bf16;
    default: return p.peak_TFLOPS_fp32;
  }
}

double peak_flops(const DeviceProfile& p, Precision prec) { return peak_TFLOPS(p, prec) * 1e12; }

// Roofline time of one layer: the larger of its FLOPs at `efficiency` of peak and its memory
// traffic (read input, write output, read weights) at full bandwidth. Backward does the data and
// the weight gradient (twice the forward FLOPs and traffic) for layers with weights, the data
// gradient alone for the rest.
struct LayerTimes {
  double forward_s, backward_s;
};

LayerTimes layer_times(const model::Layer& l, int batch, Precision prec, const DeviceProfile& p,
                       double efficiency) {
  const double flops = l.forward_flops * batch;
  const double bytes = 2 * l.activation_bytes * batch * bytes_per_value(prec) / 4 +
                       static_cast<double>(l.params) * bytes_per_value(prec);
  const double compute = flops / (peak_flops(p, prec) * efficiency);
  const double memory = bytes / (p.memory_GBps * 1e9);
  const double backward_factor = l.params > 0 ? 2 : 1;
  return {std::max(compute, memory), backward_factor * std::max(compute, memory)};
}

// SGD with momentum touches each fp32 weight five times (read w, g, v; write w, v).
double optimizer_s(const model::Network& n, const DeviceProfile& p) {
  return static_cast<double>(n.params()) * 5 * 4 / (p.memory_GBps * 1e9);
}

double compute_s(const model::Network& n, int batch, Precision prec, const DeviceProfile& p,
                 double efficiency) {
  double t = optimizer_s(n, p);
  for (const auto& l : n.layers) {
    LayerTimes lt = layer_times(l, batch, prec, p, efficiency);
    t += lt.forward_s + lt.backward_s;
  }
  return t;
}

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
};

// The step's fixed cost, fitted where a profile measured one network at one precision at two
// batches: t(b) = overhead + roofline(b) at one share of peak fits both exactly (an affine step
// time, Amdahl's form). The H100's PyTorch ResNet-50 fp32 step at 32 and 256 images (1,771 and
// 2,520 images/s) gives about 6 ms. A profile that measured one batch per run has none (0),
// unless it borrows from one that has; the cost scales with the network's layer count.
struct StepOverhead {
  double seconds = 0;  // for the network measured
  size_t layers = 0;   // of that network
  std::string basis;
};

// The share of peak that makes the roofline of `n`, plus the step's fixed cost `overhead`,
// match measurement `m` of it on `p`.
Calibration from_measurement(const model::Network& n, Precision prec, const DeviceProfile& p,
                             const MeasuredThroughput& m, double overhead = 0) {
  const double target = m.batch_per_gpu / m.images_per_s - overhead;
  Calibration c{.efficiency = 1.0, .estimated = false};
  c.measured_gpus = m.gpus;
  c.step_overhead_s = overhead;
  // Without a fixed cost a measurement faster than the roofline at full peak keeps the peak, as
  // before; with one, the fit has left this row no time, and the profile is at fault.
  if (overhead > 0 && !(compute_s(n, m.batch_per_gpu, prec, p, 1.0) < target)) {
    char text[320];
    std::snprintf(text, sizeof text,
                  "rows one fixed cost of a step fits: %.1f ms a step leaves %s %s at batch %d (%.4g images/s) "
                  "less time than its roofline takes at full peak",
                  1e3 * overhead, m.model.c_str(), to_string(prec), m.batch_per_gpu, m.images_per_s);
    throw topo::InputError(p.file, "/measured", text);
  }
  if (compute_s(n, m.batch_per_gpu, prec, p, 1.0) < target) {
    double lo = 1e-4, hi = 1.0;  // compute time falls as efficiency rises
    for (int i = 0; i < 100; ++i) {
      double mid = std::sqrt(lo * hi);
      (compute_s(n, m.batch_per_gpu, prec, p, mid) > target ? lo : hi) = mid;
    }
    c.efficiency = hi;
  }
  char text[384];
  std::snprintf(text, sizeof text, "measured %.4g images/s at batch %d (%s): %.1f%% of peak",
                m.images_per_s, m.batch_per_gpu, m.source.c_str(), 100 * c.efficiency);
  c.basis = text;
  // The measured split, less the fixed cost's half on backprop (a borrowed or scaled fixed cost
  // can exceed what was measured: then the roofline's own split stands).
  if (m.backward_s > overhead / 2 && target - optimizer_s(n, p) > m.backward_s - overhead / 2) {
    double forward = 0, backward = 0;
    for (const auto& l : n.layers) {
      LayerTimes lt = layer_times(l, m.batch_per_gpu, prec, p, c.efficiency);
      forward += lt.forward_s, backward += lt.backward_s;
    }
    c.backward_scale = (m.backward_s - overhead / 2) / backward;
    c.forward_scale = (target - optimizer_s(n, p) - (m.backward_s - overhead / 2)) / forward;
    std::snprintf(text, sizeof text, "; backprop %.0f ms of it (%s)", 1e3 * m.backward_s,
                  m.backward_source.c_str());
    c.basis += text;
  }
  return c;
}

StepOverhead fit_step_overhead(const DeviceProfile& p) {
  for (const auto& small : p.measured)
    for (const auto& large : p.measured) {
      if (small.model != large.model || small.precision != large.precision || small.gpus != large.gpus ||
          !(small.batch_per_gpu < large.batch_per_gpu))
        continue;
      model::Network net;
      try {
        net = model::network_by_name(small.model);
      } catch (const std::invalid_argument&) {
        continue;
      }
      const double t_small = small.batch_per_gpu / small.images_per_s,
                   t_large = large.batch_per_gpu / large.images_per_s;
      // The share of peak at which the roofline grows by what the measurements grew by.
      auto growth = [&](double e) {
        return compute_s(net, large.batch_per_gpu, small.precision, p, e) -
               compute_s(net, small.batch_per_gpu, small.precision, p, e);
      };
      // Measurements that grew no more than the roofline at full peak would leave no share below
      // 1 to fit: no fixed cost can be read off them.
      if (!(t_large > t_small) || growth(1.0) >= t_large - t_small) continue;
      double lo = 1e-4, hi = 1.0;  // growth falls as the share rises
      for (int i = 0; i < 100; ++i) {
        const double mid = std::sqrt(lo * hi);
        (growth(mid) > t_large - t_small ? lo : hi) = mid;
      }
      const double overhead = t_small - compute_s(net, small.batch_per_gpu, small.precision, p, hi);
      if (!(overhead > 0)) continue;  // no fixed cost to speak of
      char text[256];
      std::snprintf(text, sizeof text,
                    "a fixed %.1f ms a step for %s, fitted on %s %s at batches %d and %d (%s, %s)", 1e3 * overhead,
                    p.device.c_str(), small.model.c_str(), to_string(small.precision), small.batch_per_gpu,
                    large.batch_per_gpu, small.source.c_str(), large.source.c_str());
      return {overhead, net.layers.size(), text};
    }
  return {};
}

// fit_step_overhead, once per profile's contents: the planner calibrates thousands of times.
StepOverhead cached_step_overhead(const DeviceProfile& p) {
  std::string key = p.file + '|' + p.device + '|' + std::to_string(p.memory_GBps) + '|' +
                    std::to_string(p.peak_TFLOPS_fp32) + '|' + std::to_string(p.peak_TFLOPS_fp16) + '|' +
                    std::to_string(p.peak_TFLOPS_bf16);
  for (const auto& m : p.measured)
    key += '|' + m.model + to_string(m.precision) + std::to_string(m.batch_per_gpu) + '/' +
           std::to_string(m.images_per_s) + '/' + std::to_string(m.gpus);
  static std::mutex mutex;
  static std::map<std::string, StepOverhead> fitted;
  {
    std::lock_guard lock(mutex);
    if (auto it = fitted.find(key); it != fitted.end()) return it->second;
  }
  StepOverhead o = fit_step_overhead(p);
  std::lock_guard lock(mutex);
  return fitted.emplace(std::move(key), std::move(o)).first->second;
}

// The fixed cost of a step of `n` on `p`: fitted on `p`, else on the device it borrows from.
StepOverhead step_overhead(const model::Network& n, const DeviceProfile& p) {
  StepOverhead o = cached_step_overhead(p);
  if (o.seconds == 0 && p.efficiency_of) o = cached_step_overhead(*p.efficiency_of);
  if (o.seconds > 0 && o.layers != n.layers.size()) {
    char text[96];
    std::snprintf(text, sizeof text, " x %zu/%zu layers", n.layers.size(), o.layers);
    o.seconds *= static_cast<double>(n.layers.size()) / o.layers;
    o.basis += text;
  }
  return o;
}

// The same network at the same precision measured on `p`, if it was (the largest batch, where
// the fixed cost weighs least).
std::optional<Calibration> measured(const model::Network& n, Precision prec, const DeviceProfile& p) {
  const MeasuredThroughput* best = nullptr;
  for (const auto& m : p.measured)
    if (m.model == n.name && m.precision == prec && (!best || m.batch_per_gpu > best->batch_per_gpu)) best = &m;
  if (!best) return std::nullopt;
  const StepOverhead o = step_overhead(n, p);
  Calibration c = from_measurement(n, prec, p, *best, o.seconds);
  if (o.seconds > 0) c.basis += "; " + o.basis;
  return c;
}

// Another network measured on `p` at this precision: the share of its roofline it reached, the
// nearest in FLOPs per image first (a ResNet-101 runs at about a ResNet-50's share, not at a
// guess). Only the share carries over; that run's forward/backward split is its own.
std::optional<Calibration> other_network(const model::Network& n, Precision prec, const DeviceProfile& p) {
  const MeasuredThroughput* nearest = nullptr;
  double nearest_gap = 0;
  model::Network nearest_net;
  for (const auto& m : p.measured) {
    if (m.precision != prec || m.model == n.name) continue;
    model::Network other;
    try {
      other = model::network_by_name(m.model);
    } catch (const std::invalid_argument&) {
      continue;  // a network basin cannot build has no roofline to compare
    }
    const double gap = std::abs(std::log(other.forward_flops() / n.forward_flops()));
    if (!nearest || gap < nearest_gap) nearest = &m, nearest_gap = gap, nearest_net = std::move(other);
  }
  if (!nearest) return std::nullopt;
  const Calibration theirs = from_measurement(nearest_net, prec, p, *nearest, step_overhead(nearest_net, p).seconds);
  Calibration c;
  c.efficiency = theirs.efficiency;
  c.measured_gpus = theirs.measured_gpus;  // the share already waited for that run's slowest GPU
  c.basis = "roofline estimate at the share of peak " + nearest->model + " reached (" + theirs.basis + "); no " +
            n.name + " measurement";
  return c;
}

// The other 16-bit format measured on `p` for this network, where its peak is this one's: bf16
// and fp16 run on the same tensor cores at the same rate on A100 and later, move the same bytes,
// so the share of peak one reached is the best evidence for the other. (Where both are measured,
// on the H100 with PyTorch, bf16 ran at 0.81 of fp16: the estimate may be that much fast.)
std::optional<Calibration> same_peak_sibling(const model::Network& n, Precision prec, const DeviceProfile& p) {
  if (prec == Precision::fp32) return std::nullopt;
  const Precision other = prec == Precision::bf16 ? Precision::fp16 : Precision::bf16;
  if (peak_TFLOPS(p, other) != peak_TFLOPS(p, prec)) return std::nullopt;
  auto c = measured(n, other, p);
  if (!c) return std::nullopt;
  char text[96];
  std::snprintf(text, sizeof text, "roofline estimate at the share of the %g TFLOPS peak %s reached (",
                peak_TFLOPS(p, prec), to_string(other));
  c->estimated = true;
  c->forward_scale = c->backward_scale = 1;  // only the share carries over
  c->basis = text + c->basis + "); no " + to_string(prec) + " measurement";
  return c;
}

// Measured figures first, then estimates from the nearest evidence: this device on this network
// in the other 16-bit format at the same peak; the device it borrows from on this network; this
// device on another network; the device it borrows from on another network; half of peak.
Calibration estimate_share(const model::Network& n, Precision prec, const DeviceProfile& p) {
  if (auto c = same_peak_sibling(n, prec, p)) return *c;
  Calibration c;
  if (p.efficiency_of) {
    if (auto borrowed = measured(n, prec, *p.efficiency_of)) {
      c.efficiency = borrowed->efficiency;
      c.measured_gpus = borrowed->measured_gpus;
      c.basis = "roofline estimate at the share of peak " + p.efficiency_of->device + " reached (" +
                borrowed->basis + "); no measurement of this device";
      return c;
    }
  }
  if (auto other = other_network(n, prec, p)) return *other;
  if (p.efficiency_of)
    if (auto other = other_network(n, prec, *p.efficiency_of)) {
      other->basis += " on " + p.efficiency_of->device + "; no measurement of this device";
      return *other;
    }
  char text[160];
  std::snprintf(text, sizeof text, "roofline estimate at %.0f%% of %s peak (no measurement in %s)",
                100 * c.efficiency, to_string(prec), p.file.c_str());
  c.basis = text;
  c.peak_only = true;
  return c;
}

Calibration calibrate(const model::Network& n, Precision prec, const DeviceProfile& p) {
  if (auto c = measured(n, prec, p)) return *c;
  Calibration c = estimate_share(n, prec, p);
  // An estimate carries this device's fixed cost of a step for this network, as a measurement does.
  const StepOverhead o = step_overhead(n, p);
  if (c.step_overhead_s == 0 && o.seconds > 0) c.basis += "; " + o.basis;
  c.step_overhead_s = o.seconds;
  return c;
}

void check_precision(const DeviceProfile& p, Precision prec) {
  if (peak_TFLOPS(p, prec) > 0) return;
  std::string has = "fp32";
  for (Precision q : {Precision::fp16, Precision::bf16})
    if (peak_TFLOPS(p, q) > 0) has += std::string(" or ") + to_string(q);
  throw topo::InputError("--precision", "",
                         has + " on a " + p.device + " (its profile, " + p.file + ", states no " + to_string(prec) +
                             " peak in /peak_TFLOPS, as for a GPU without that arithmetic, such as bf16 before "
                             "the A100; add the peak if the GPU has it), got " + to_string(prec));
}

}  // namespace

ComputeEvidence compute_evidence(const model::Network& net, Precision prec, const DeviceProfile& profile) {
  check_precision(profile, prec);
  const Calibration c = calibrate(net, prec, profile);
  using Kind = ComputeEvidence::Kind;
  return {!c.estimated ? Kind::measured : c.peak_only ? Kind::peak_only : Kind::from_measurement, c.basis};
}

double memory_needed_GB(const model::Network& net, int batch_per_gpu, Precision prec) {
  // fp32 weights, gradients and momentum (plus a 16-bit copy in mixed precision), and the
  // activations as the executor plans them (model::plan_training_memory): only what backward
  // reads is kept, in-place layers share a tensor, and gradients reuse dead activations.
  const double weights = static_cast<double>(net.params()) * (prec == Precision::fp32 ? 12 : 14);
  return (weights + model::training_activation_bytes(net, batch_per_gpu, bytes_per_value(prec))) /
         1e9;
}

IterationResult simulate_iteration(const topo::Topology& cluster, const DeviceProfile& profile,
                                   const TrainingConfig& cfg) {
  const auto all = topo::gpus(cluster);
  if (cfg.gpus < 1 || cfg.gpus > static_cast<int>(all.size()))
    throw topo::InputError("--gpus", "", "between 1 and the cluster's " +
                                             std::to_string(all.size()) + " GPUs, got " +
                                             std::to_string(cfg.gpus));
  const std::vector<topo::Vertex> gpus(all.begin(), all.begin() + cfg.gpus);
  Network network(cluster, cfg.network_params);
  return simulate_iteration(cluster, profile, cfg,
                            allreduce_cost(network, gpus, cfg.algorithm, cfg.inter,
                                           cfg.host_staging));
}

IterationResult simulate_iteration(const topo::Topology& cluster, const DeviceProfile& profile,
                                   const TrainingConfig& cfg, const CollectiveCost& allreduce) {
  const auto all = topo::gpus(cluster);
  if (cfg.gpus < 1 || cfg.gpus > static_cast<int>(all.size()))
    throw topo::InputError("--gpus", "", "between 1 and the cluster's " +
                                             std::to_string(all.size()) + " GPUs, got " +
                                             std::to_string(cfg.gpus));
  if (cfg.batch_per_gpu < 1)
    throw topo::InputError("--batch-per-gpu", "", "a batch of at least 1, got " +
                                                      std::to_string(cfg.batch_per_gpu));
  // NaN passes a plain `< 0` test and then poisons every time; negative values would be taken as
  // "one bucket per layer" or an input pipeline faster than free.
  if (!std::isfinite(cfg.bucket_MB) || cfg.bucket_MB < 0)
    throw topo::InputError("--bucket-mb", "", "0 (one bucket per layer) or more MB, got " +
                                                  std::to_string(cfg.bucket_MB));
  if (!std::isfinite(cfg.decode_images_per_s_per_core) || !(cfg.decode_images_per_s_per_core > 0))
    throw topo::InputError("--decode-rate", "", "images/s per core above 0, got " +
                                                    std::to_string(cfg.decode_images_per_s_per_core));
  if (!(cfg.gpu_decode_images_per_s >= 0) || !std::isfinite(cfg.gpu_decode_images_per_s))
    throw topo::InputError("--gpu-decode-rate", "", "0 (none) or images/s decoded on each GPU, got " +
                                                        std::to_string(cfg.gpu_decode_images_per_s));
  if (!(cfg.cores_per_gpu >= 0) || !std::isfinite(cfg.cores_per_gpu))
    throw topo::InputError("--cores-per-gpu", "", "0 (the server's share) or more cores, got " +
                                                      std::to_string(cfg.cores_per_gpu));
  const std::vector<topo::Vertex> gpus(all.begin(), all.begin() + cfg.gpus);
  const model::Network& net = cfg.network;
  const Precision prec = cfg.precision;

  const double need_GB = memory_needed_GB(net, cfg.batch_per_gpu, prec);
  if (need_GB > profile.memory_GB)
    throw topo::InputError("--batch-per-gpu", "",
                           "a batch that fits in the " + std::to_string(int(profile.memory_GB)) +
                               " GB of a " + (profile.memory_of.empty() ? profile.device : profile.memory_of) +
                               ", but batch " +
                               std::to_string(cfg.batch_per_gpu) + " needs about " +
                               std::to_string(int(std::ceil(need_GB))) + " GB");

  if (!(cfg.compute_jitter_cv >= 0 && cfg.compute_jitter_cv < 1))
    throw topo::InputError("--compute-jitter", "", "a coefficient of variation in [0, 1)");
  check_precision(profile, prec);
  Calibration cal = calibrate(net, prec, profile);
  // Every bucket waits for its gradients from the slowest GPU: the compute timeline stretches.
  const double stretch = straggler_stretch(cfg.compute_jitter_cv, cfg.gpus, cal.measured_gpus);
  cal.forward_scale *= stretch;
  cal.backward_scale *= stretch;
  IterationResult r;
  r.memory_GB = need_GB;
  r.compute_estimated = cal.estimated;
  r.compute_peak_only = cal.peak_only;
  r.compute_basis = cal.basis;
  r.step_overhead_s = cal.step_overhead_s;

  // The largest messages' schedule: a `small` one below a size may load other links (Gloo's
  // small buffers through the host; NCCL's own choice of algorithm for small buckets), which the
  // trace's busiest-link counters leave out.
  const std::map<std::string, double> busiest = busiest_links(cluster, allreduce);

  // The step's fixed cost, a share on each layer's forward and backward pass.
  const double per_pass = stretch * cal.step_overhead_s / (2.0 * static_cast<double>(net.layers.size()));
  double t = 0;
  for (const auto& l : net.layers) {
    double d = per_pass + cal.forward_scale *
               layer_times(l, cfg.batch_per_gpu, prec, profile, cal.efficiency).forward_s;
    r.spans.push_back({l.name, "compute", t, t + d});
    t += d;
  }
  const double bucket_bytes = cfg.bucket_MB * 1e6;
  double pending = 0, comm_free = t;
  auto flush = [&](double ready) {
    if (pending <= 0) return;
    double start = std::max(ready, comm_free), d = allreduce.time_s(pending);
    char name[64];
    std::snprintf(name, sizeof name, "allreduce %d (%.3g MB)", r.buckets, pending / 1e6);
    r.spans.push_back({name, "allreduce", start, start + d});
    Counter busy{start, link_utilization(busiest, allreduce, pending)}, idle{start + d, {}};
    for (auto& [kind, u] : busy.values) idle.values[kind] = 0;
    r.link_utilization.push_back(std::move(busy));
    r.link_utilization.push_back(std::move(idle));
    comm_free = start + d;
    r.comm_total_s += d;
    for (const CostTerm& term : allreduce.for_bytes(pending).terms)
      r.comm_terms[term.name].total_s += term.time_s(pending);
    r.gradient_MB += pending / 1e6;
    ++r.buckets;
    pending = 0;
  };
  for (auto it = net.layers.rbegin(); it != net.layers.rend(); ++it) {
    double d = per_pass + cal.backward_scale *
               layer_times(*it, cfg.batch_per_gpu, prec, profile, cal.efficiency).backward_s;
    r.spans.push_back({it->name + " backward", "compute", t, t + d});
    t += d;
    if (it->params == 0) continue;
    pending += static_cast<double>(it->params) * bytes_per_value(cfg.wire_precision.value_or(prec));
    if (pending >= bucket_bytes) flush(t);
  }
  flush(t);
  const double backward_end = t;
  const double opt = stretch * optimizer_s(net, profile);
  const double step_end = std::max(backward_end, comm_free) + opt;
  r.spans.push_back({"optimizer", "compute", step_end - opt, step_end});
  r.compute_s = backward_end + opt;
  r.exposed_comm_s = step_end - r.compute_s;

  // Input pipeline: decoding runs ahead on the CPU cores that serve this GPU.
  // A server's cores are shared by its GPUs' loaders, so a GPU gets a fractional share. A
  // topology that states no cores cannot bound the input pipeline: it is left out, and said so.
  double cores = cfg.cores_per_gpu;  // a share of cores, as the default one is
  char basis[160];
  if (cores > 0) {
    std::snprintf(basis, sizeof basis, "%.3g CPU cores per GPU, as configured", cfg.cores_per_gpu);
  } else {
    const auto& g = cluster.graph;
    int server_cores = 0, server_gpus = 0;
    for (auto v : topo::nodes_of_kind(cluster, topo::NodeKind::cpu, g[gpus[0]].server))
      server_cores += g[v].cores;
    // The GPUs this run uses there: a one-GPU run has the whole server's cores to decode for it.
    for (auto v : gpus) server_gpus += g[v].server == g[gpus[0]].server;
    cores = static_cast<double>(server_cores) / std::max(1, server_gpus);
    if (server_cores > 0)
      std::snprintf(basis, sizeof basis, "%.3g CPU cores per GPU: the server's %d cores shared by the %d GPUs used there",
                    cores, server_cores, server_gpus);
    else
      std::snprintf(basis, sizeof basis,
                    "not modelled: the topology states no CPU cores for the server (--cores-per-gpu gives them)");
  }
  r.input_basis = basis;
  const double fed = (cores > 0 ? cfg.decode_images_per_s_per_core * cores : 0) + cfg.gpu_decode_images_per_s;
  if (cfg.gpu_decode_images_per_s > 0) {
    std::snprintf(basis, sizeof basis, "%.4g images/s decoded on the GPU", cfg.gpu_decode_images_per_s);
    r.input_basis = cores > 0 ? r.input_basis + ", and " + basis : std::string(basis) + " alone";
  }
  // Only where something bounds it: a topology without cores and no GPU decoding is not modelled.
  const double data_s = fed > 0 && (cores > 0 || cfg.gpu_decode_images_per_s > 0) ? cfg.batch_per_gpu / fed : 0;
  r.iteration_s = std::max(step_end, data_s);
  r.data_stall_s = r.iteration_s - step_end;
  const double global_batch = static_cast<double>(cfg.batch_per_gpu) * cfg.gpus;
  r.images_per_s = global_batch / r.iteration_s;
  r.epoch_s = std::ceil(cfg.epoch_images / global_batch) * r.iteration_s;
  return r;
}

Prediction predict(const topo::Topology& cluster, const DeviceProfile& profile,
                   const TrainingConfig& cfg) {
  return predict(cluster, profile, cfg, [&](Network& network, const std::vector<topo::Vertex>& gpus) {
    return allreduce_cost(network, gpus, cfg.algorithm, cfg.inter, cfg.host_staging);
  });
}

Prediction predict(const topo::Topology& cluster, const DeviceProfile& profile,
                   const TrainingConfig& cfg, const AllreduceModel& model) {
  Prediction p;
  const auto all = topo::gpus(cluster);
  if (cfg.gpus < 1 || cfg.gpus > static_cast<int>(all.size()))
    return p.result = simulate_iteration(cluster, profile, cfg), p;  // throws the input error
  Network network(cluster, cfg.network_params);
  const CollectiveCost cost = model(network, {all.begin(), all.begin() + cfg.gpus});
  p.result = simulate_iteration(cluster, profile, cfg, cost);
  for (auto& [name, term] : p.result.comm_terms)
    term.iteration_s_without =
        simulate_iteration(cluster, profile, cfg, cost.without(name)).iteration_s;
  int per_server = 0;
  for (auto v : all) per_server += cluster.graph[v].server == cluster.graph[all[0]].server;
  TrainingConfig one = cfg;
  one.gpus = std::min(cfg.gpus, per_server);
  p.one_server =
      simulate_iteration(cluster, profile, one, model(network, {all.begin(), all.begin() + one.gpus}));
  p.scaling_efficiency = p.result.images_per_s /
                         (p.one_server.images_per_s * cfg.gpus / static_cast<double>(one.gpus));
  TrainingConfig single = cfg;
  single.gpus = 1;
  const IterationResult alone = simulate_iteration(cluster, profile, single, CollectiveCost{});
  p.scaling_efficiency_vs_one_gpu = p.result.images_per_s / (alone.images_per_s * cfg.gpus);
  return p;
}

std::string chrome_trace(const IterationResult& r) {
  nlohmann::json events = nlohmann::json::array();
  const char* lanes[] = {"compute", "allreduce"};
  for (int tid = 0; tid < 2; ++tid)
    events.push_back({{"name", "thread_name"}, {"ph", "M"}, {"pid", 0}, {"tid", tid},
                      {"args", {{"name", lanes[tid]}}}});
  for (const Span& s : r.spans)
    events.push_back({{"name", s.name}, {"cat", s.lane}, {"ph", "X"}, {"pid", 0},
                      {"tid", s.lane == "compute" ? 0 : 1}, {"ts", s.start_s * 1e6},
                      {"dur", (s.end_s - s.start_s) * 1e6}});
  // Counters: Perfetto draws each as a track, the busiest link of each kind in percent.
  for (const Counter& c : r.link_utilization) {
    nlohmann::json args = nlohmann::json::object();
    for (const auto& [kind, u] : c.values) args[kind] = 100 * u;
    events.push_back({{"name", "busiest link utilization %"}, {"ph", "C"}, {"pid", 0},
                      {"ts", c.time_s * 1e6}, {"args", args}});
  }
  // The breakdown, for scripts (reports/goyal2017.md): trace viewers ignore unknown keys.
  nlohmann::json terms = nlohmann::json::object();
  for (const auto& [name, t] : r.comm_terms)
    terms[name] = {{"total_s", t.total_s}, {"iteration_s_without", t.iteration_s_without}};
  nlohmann::json breakdown = {{"iteration_s", r.iteration_s}, {"compute_s", r.compute_s},
                              {"exposed_comm_s", r.exposed_comm_s},
                              {"data_stall_s", r.data_stall_s}, {"comm_total_s", r.comm_total_s},
                              {"comm_terms", terms}};
  return nlohmann::json{{"traceEvents", events}, {"displayTimeUnit", "ms"}, {"basin", breakdown}}
             .dump(1) +
         "\n";
}

}  // namespace basin::sim
