// One data-parallel training iteration, simulated (see basin/training.h): per-layer compute from
// a calibrated roofline, gradient buckets allreduced on one communication stream behind backward,
// the optimizer step, and the input pipeline as a possible bound.
#include "calibration.h"

#include <basin/memory_plan.h>
#include <basin/training.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <string>

#include <nlohmann/json.hpp>

namespace basin::sim {

using detail::calibrate;
using detail::Calibration;
using detail::check_precision;
using detail::layer_times;
using detail::optimizer_s;

double memory_needed_GB(const model::Network& net, int batch_per_gpu, Precision prec) {
  // fp32 weights, gradients and momentum (plus a 16-bit copy in mixed precision), and the
  // activations as the executor plans them (model::plan_training_memory): only what backward
  // reads is kept, in-place layers share a tensor, and gradients reuse dead activations.
  const double weights = static_cast<double>(net.params()) * (prec == Precision::fp32 ? 12 : 14);
  return (weights + model::training_activation_bytes(net, batch_per_gpu, bytes_per_value(prec))) /
         1e9;
}

namespace {

// The CPUs of the machine a GPU's loader runs on: the CPU it hangs off (over PCIe or NVLink-C2C,
// through PCIe switches) and every CPU joined to that one by CPU interconnects (the sockets of
// one host). A DGX's two sockets are one host; a GB200 NVL72 rack, one NVLink domain and so one
// server here, is 18 hosts of two Grace CPUs, and a loader cannot decode on another tray's
// cores. Empty where no CPU is reachable that way.
std::vector<topo::Vertex> host_cpus(const topo::Topology& cluster, topo::Vertex gpu) {
  const auto& g = cluster.graph;
  std::vector<bool> seen(boost::num_vertices(g), false);
  std::vector<topo::Vertex> frontier{gpu}, host;
  seen[gpu] = true;
  // Up from the GPU through PCIe switches and C2C to the first CPU.
  for (size_t i = 0; i < frontier.size() && host.empty(); ++i)
    for (auto e : boost::make_iterator_range(boost::out_edges(frontier[i], g))) {
      const topo::Vertex next = boost::target(e, g);
      const auto kind = g[e].kind;
      if (seen[next] || (kind != topo::LinkKind::pcie && kind != topo::LinkKind::c2c)) continue;
      seen[next] = true;
      if (g[next].kind == topo::NodeKind::cpu) host.push_back(next);
      else if (g[next].kind == topo::NodeKind::pcie_switch) frontier.push_back(next);
    }
  // Across the CPU interconnects of that host.
  for (size_t i = 0; i < host.size(); ++i)
    for (auto e : boost::make_iterator_range(boost::out_edges(host[i], g)))
      if (const topo::Vertex next = boost::target(e, g);
          g[e].kind == topo::LinkKind::cpu_interconnect && g[next].kind == topo::NodeKind::cpu && !seen[next]) {
        seen[next] = true;
        host.push_back(next);
      }
  return host;
}

}  // namespace

IterationResult simulate_iteration(const topo::Topology& cluster, const DeviceProfile& profile,
                                   const TrainingConfig& cfg) {
  const auto all = topo::gpus(cluster);
  if (cfg.gpus < 1 || cfg.gpus > static_cast<int>(all.size()))
    throw topo::InputError("--gpus", "", "between 1 and the cluster's " +
                                             std::to_string(all.size()) + " GPUs, got " +
                                             std::to_string(cfg.gpus));
  const std::vector<topo::Vertex> gpus = gpus_in_use(cluster, cfg.gpus, cfg.gpus_per_server);
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
  const std::vector<topo::Vertex> gpus = gpus_in_use(cluster, cfg.gpus, cfg.gpus_per_server);
  const model::Network& net = cfg.network;
  const Precision prec = cfg.precision;

  const double need_GB = memory_needed_GB(net, cfg.batch_per_gpu, prec);
  if (need_GB > profile.memory_GB)
    throw topo::InputError("--batch-per-gpu", "",
                           "a batch that fits in the " + std::to_string(int(profile.memory_GB)) +
                               " GB of a " + memory_owner(profile) +
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
  // The measurement already waited for the slowest of its own GPUs: fewer GPUs than it ran on
  // wait for fewer stragglers and run faster than it, more run slower. Said with the factor.
  if (cfg.compute_jitter_cv > 0 && stretch != 1) {
    char text[200];
    std::snprintf(text, sizeof text,
                  "; compute x%.3f for jitter %.3g: the slowest of %d GPUs against the slowest of the %d "
                  "the measurement ran on",
                  stretch, cfg.compute_jitter_cv, cfg.gpus, cal.measured_gpus);
    r.compute_basis += text;
  }
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
  // A bucket holds bucket_MB of fp32 gradients, as basin train fills them (and PyTorch DDP's
  // bucket_cap_mb, in the parameters' own type); a 16-bit wire then sends half that.
  const double bucket_bytes = cfg.bucket_MB * 1e6;
  double pending = 0, pending_fp32 = 0, comm_free = t;
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
    pending_fp32 += static_cast<double>(it->params) * sizeof(float);
    if (pending_fp32 >= bucket_bytes) {
      flush(t);
      pending_fp32 = 0;
    }
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
    // The host of the first GPU, where found; else its whole server. Where the host is the whole
    // server (a DGX's two sockets), every GPU used there shares it, with no search per GPU.
    const std::vector<topo::Vertex> server_cpus = topo::nodes_of_kind(cluster, topo::NodeKind::cpu, g[gpus[0]].server);
    std::vector<topo::Vertex> host = host_cpus(cluster, gpus[0]);
    const bool whole_server = host.empty() || host.size() >= server_cpus.size();
    if (whole_server) host = server_cpus;
    for (auto v : host) server_cores += g[v].cores;
    // The GPUs this run uses there: a one-GPU run has the whole host's cores to decode for it.
    for (auto v : gpus) {
      if (g[v].server != g[gpus[0]].server) continue;
      if (whole_server) {
        ++server_gpus;
      } else {
        const auto own = host_cpus(cluster, v);
        server_gpus += !own.empty() && std::find(host.begin(), host.end(), own.front()) != host.end();
      }
    }
    cores = static_cast<double>(server_cores) / std::max(1, server_gpus);
    if (server_cores > 0)
      std::snprintf(basis, sizeof basis, "%.3g CPU cores per GPU: the %s's %d cores shared by the %d GPUs used there",
                    cores, whole_server ? "server" : "host", server_cores, server_gpus);
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
  const double data_s = fed > 0 ? cfg.batch_per_gpu / fed : 0;
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
  const CollectiveCost cost = model(network, gpus_in_use(cluster, cfg.gpus, cfg.gpus_per_server));
  p.result = simulate_iteration(cluster, profile, cfg, cost);
  for (auto& [name, term] : p.result.comm_terms)
    term.iteration_s_without =
        simulate_iteration(cluster, profile, cfg, cost.without(name)).iteration_s;
  // One server's share of the run: its GPUs, or as many as the run puts on each.
  int per_server = 0;
  for (auto v : all) per_server += cluster.graph[v].server == cluster.graph[all[0]].server;
  if (cfg.gpus_per_server > 0) per_server = std::min(per_server, cfg.gpus_per_server);
  TrainingConfig one = cfg;
  one.gpus = std::min(cfg.gpus, per_server);
  p.one_server =
      simulate_iteration(cluster, profile, one, model(network, gpus_in_use(cluster, one.gpus, cfg.gpus_per_server)));
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
