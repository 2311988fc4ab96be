// Calibrating the roofline (calibration.h): the share of a device's peak that reproduces what
// its profile measured, the nearest evidence where it measured nothing for this network or
// precision, and a step's fixed cost fitted where it measured two batches.
#include "calibration.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <map>
#include <mutex>
#include <optional>
#include <string>

namespace basin::sim {
namespace detail {

double peak_TFLOPS(const DeviceProfile& p, Precision prec) {
  switch (prec) {
    case Precision::fp16: return p.peak_TFLOPS_fp16;
    case Precision::bf16: return p.peak_TFLOPS_bf16;
    default: return p.peak_TFLOPS_fp32;
  }
}

static double peak_flops(const DeviceProfile& p, Precision prec) { return peak_TFLOPS(p, prec) * 1e12; }

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

namespace {

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
  c.source = m.source;
  c.step_overhead_s = overhead;
  // Without a fixed cost a measurement faster than the roofline at full peak keeps the peak, as
  // before; with one, the fit has left this row no time, and the profile is at fault.
  const double at_peak = compute_s(n, m.batch_per_gpu, prec, p, 1.0);
  if (overhead > 0 && !(at_peak < target)) {
    char text[320];
    std::snprintf(text, sizeof text,
                  "rows one fixed cost of a step fits: %.1f ms a step leaves %s %s at batch %d (%.4g images/s) "
                  "less time than its roofline takes at full peak",
                  1e3 * overhead, m.model.c_str(), to_string(prec), m.batch_per_gpu, m.images_per_s);
    throw topo::InputError(p.file, "/measured", text);
  }
  if (at_peak < target) {
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

// The first pair of `network`'s own measurements that fits one, else the first of any network's
// (a profile measured by basin profile beside a framework's figures fits each network on its own).
// Where `source` is given, only a pair measured by it: a fixed cost is the stepping framework's
// (a CPU standing in for a V100 in basin's step fits 556 ms, which NVIDIA's PyTorch rows of the
// same profile do not have).
StepOverhead fit_step_overhead(const DeviceProfile& p, const std::string& network, const std::string& source = "") {
  for (const bool own : {true, false})
    for (const auto& small : p.measured)
      for (const auto& large : p.measured) {
        if (small.model != large.model || small.precision != large.precision || small.gpus != large.gpus ||
            !(small.batch_per_gpu < large.batch_per_gpu) || (own && small.model != network))
          continue;
        if (!source.empty() && (small.source != source || large.source != source)) continue;
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

// What a calibration depends on in a profile, as text: the cache's key (calibrate).
std::string profile_key(const DeviceProfile& p) {
  std::string key = p.file + '|' + p.device + '|' + p.gpu_model + '|' + std::to_string(p.memory_GBps) + '|' +
                    std::to_string(p.peak_TFLOPS_fp32) + '|' + std::to_string(p.peak_TFLOPS_fp16) + '|' +
                    std::to_string(p.peak_TFLOPS_bf16);
  for (const auto& m : p.measured)
    key += '|' + m.model + to_string(m.precision) + std::to_string(m.batch_per_gpu) + '/' +
           std::to_string(m.images_per_s) + '/' + std::to_string(m.gpus) + '/' + std::to_string(m.backward_s) +
           '/' + m.source + '/' + m.backward_source;
  if (p.efficiency_of) key += "|of:" + profile_key(*p.efficiency_of);
  return key;
}

// The fixed cost of a step of `n` on `p`: fitted on `p`, else on the device it borrows from;
// for a row of `source`, that source's (empty: any).
StepOverhead step_overhead(const model::Network& n, const DeviceProfile& p, const std::string& source = "") {
  StepOverhead o = fit_step_overhead(p, n.name, source);
  if (o.seconds == 0 && p.efficiency_of) o = fit_step_overhead(*p.efficiency_of, n.name, source);
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
  const StepOverhead o = step_overhead(n, p, best->source);
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
  const Calibration theirs = from_measurement(nearest_net, prec, p, *nearest, step_overhead(nearest_net, p, nearest->source).seconds);
  Calibration c;
  c.efficiency = theirs.efficiency;
  c.measured_gpus = theirs.measured_gpus;  // the share already waited for that run's slowest GPU
  c.source = theirs.source;
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
// in the other 16-bit format at the same peak; the device it borrows from on this network, at
// this precision or (both devices' 16-bit peaks the same) the other 16-bit format; this device
// on another network; the device it borrows from on another network; half of peak.
Calibration estimate_share(const model::Network& n, Precision prec, const DeviceProfile& p) {
  if (auto c = same_peak_sibling(n, prec, p)) return *c;
  Calibration c;
  if (p.efficiency_of) {
    if (auto borrowed = measured(n, prec, *p.efficiency_of)) {
      c.efficiency = borrowed->efficiency;
      c.measured_gpus = borrowed->measured_gpus;
      c.source = borrowed->source;
      c.basis = "roofline estimate at the share of peak " + p.efficiency_of->device + " reached (" +
                borrowed->basis + "); no measurement of this device";
      return c;
    }
    // bf16 and fp16 at one rate here and there: the borrowed device's other 16-bit share, as
    // fp16 would take it (otherwise bf16 fell to half of peak while fp16 took a measured share).
    if (const auto sibling = same_peak_sibling(n, prec, *p.efficiency_of);
        sibling && prec != Precision::fp32 &&
        peak_TFLOPS(p, Precision::fp16) == peak_TFLOPS(p, Precision::bf16)) {
      c.efficiency = sibling->efficiency;
      c.measured_gpus = sibling->measured_gpus;
      c.source = sibling->source;
      c.basis = sibling->basis + " on " + p.efficiency_of->device + "; no measurement of this device";
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

Calibration calibrate_afresh(const model::Network& n, Precision prec, const DeviceProfile& p) {
  if (auto c = measured(n, prec, p)) return *c;
  Calibration c = estimate_share(n, prec, p);
  // An estimate carries this device's fixed cost of a step for this network, as a measurement
  // does: that of the source whose share it took (any, for a share of the datasheet peak).
  const StepOverhead o = step_overhead(n, p, c.source);
  // (Said once: an estimate borrowed from another device's measurement already names that
  // device's fixed cost, which is the one taken.)
  if (c.step_overhead_s == 0 && o.seconds > 0 && c.basis.find(o.basis) == std::string::npos)
    c.basis += "; " + o.basis;
  c.step_overhead_s = o.seconds;
  return c;
}

}  // namespace

// Once per profile's contents, network and precision: the planner simulates thousands of
// configurations of one network on one device, and each calibration bisects over every layer.
Calibration calibrate(const model::Network& n, Precision prec, const DeviceProfile& p) {
  const std::string key = profile_key(p) + "|net:" + n.name + '/' + std::to_string(n.layers.size()) + '/' +
                          std::to_string(n.forward_flops()) + '/' + std::to_string(n.params()) + '|' +
                          to_string(prec);
  static std::mutex mutex;
  static std::map<std::string, Calibration> done;
  {
    std::lock_guard lock(mutex);
    if (auto it = done.find(key); it != done.end()) return it->second;
  }
  Calibration c = calibrate_afresh(n, prec, p);  // throws, uncached, for a profile at fault
  // A PCIe card found by an SXM part's profile (its name matched: an H100 PCIe the H100 SXM's, a
  // V100 PCIe the V100 SXM2's) runs on that part's measurements: said, since the card's power
  // and clocks are lower. Other differences in the name (memory size, spelling) are not.
  auto upper = [](std::string text) {
    for (char& ch : text) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    return text;
  };
  auto pcie = [](std::string name) {
    for (char& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    return name.find("pcie") != std::string::npos;
  };
  if (!p.gpu_model.empty() && pcie(p.gpu_model) && !pcie(p.device))
    c.basis = "by the " + p.device + "'s profile (" + p.gpu_model + " matched its name; a PCIe card runs at lower " +
              "power and clocks than an SXM part): " + c.basis;
  // Another part found by a name the profile lists for it (an H200 or GH200 by the H100's): its
  // step is timed by that part's measurements, which is said.
  else if (!p.gpu_model.empty() && !p.matched_by.empty() && upper(p.device).find(upper(p.matched_by)) == std::string::npos)
    c.basis = "by the " + p.device + "'s profile (" + p.gpu_model + " matched its name " + p.matched_by +
              ", which the profile lists for a part it did not measure): " + c.basis;
  std::lock_guard lock(mutex);
  return done.emplace(key, std::move(c)).first->second;
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

}  // namespace detail

ComputeEvidence compute_evidence(const model::Network& net, Precision prec, const DeviceProfile& profile) {
  detail::check_precision(profile, prec);
  const detail::Calibration c = detail::calibrate(net, prec, profile);
  using Kind = ComputeEvidence::Kind;
  return {!c.estimated ? Kind::measured : c.peak_only ? Kind::peak_only : Kind::from_measurement, c.basis};
}

}  // namespace basin::sim
