// `basin train --plan auto`: discovers the machine and writes the plan `basin train` then runs.
//
// With GPUs the decision is the planner's (plan/): the discovered server is the cluster, its GPU
// model picks the device profile, and the simulator searches ranks x batch x allreduce x bucket x
// precision exactly as `basin plan --cluster <out>/topology.json` would. Without GPUs there is no
// measured CPU profile for the simulator to search with, so the plan follows the rule that holds
// for CPU data parallelism: one rank per NUMA node, each using its node's cores as compute
// threads. oneDNN scales within a node; across nodes a single process pays remote-memory traffic
// on every layer, while ranks pay one allreduce per bucket. The plan file is the same basin.plan/1
// either way, written before training starts, so a run can always be reproduced from it.
#include "plan_auto.h"

#include <basin/plan.h>
#include <basin/topology.h>

#include <algorithm>
#include <sstream>

namespace basin::cli {
namespace {

std::string describe(const topo::Topology& t) {
  std::ostringstream s;
  const auto cpus = topo::nodes_of_kind(t, topo::NodeKind::cpu);
  int cores = 0;
  for (auto v : cpus) cores += t.graph[v].cores;
  const auto gpus = topo::gpus(t);
  s << "found " << cpus.size() << " NUMA node(s) with " << cores << " core(s)";
  if (!gpus.empty()) s << " and " << gpus.size() << " GPU(s) (" << t.graph[gpus.front()].model << ")";
  else s << " and no GPU";
  return s.str();
}

// What basin's GPU trainer runs, so that the plan the search picks is one `basin train` can run
// here: with NCCL, the planner's default choices, which on one machine are NCCL's ring, tree or
// NVLS (the trainer sets the algorithm, NCCL's tuner the protocol per bucket, as the planner
// prices it), and any GPU count; without NCCL, one GPU, since the Gloo path between GPUs of
// one server stages through host memory, which the simulator does not price inside a server.
// Compute in fp32, fp16 or bf16 where the device has it; with NCCL,
// gradients in fp32 or in the 16-bit format of the compute (fp16 also under fp32 compute, as
// PyTorch's fp16 compression hook sends them), which NCCL sums in that format.
void hold_to_the_gpu_trainer(plan::PlanOptions& o, const sim::DeviceProfile& profile, int ranks, int gpus_found) {
  using P = sim::Precision;
  const bool bf16 = profile.peak_TFLOPS_bf16 > 0;
  o.precisions = {{P::fp32, P::fp32}, {P::fp16, P::fp32}};
  if (bf16) o.precisions.push_back({P::bf16, P::fp32});
  if (BASIN_HAVE_NCCL) {
    o.precisions.insert(o.precisions.end(), {{P::fp32, P::fp16}, {P::fp16, P::fp16}});
    if (bf16) o.precisions.push_back({P::bf16, P::bf16});
  }
  if (!BASIN_HAVE_NCCL) {
    if (ranks > 1)
      throw topo::InputError("--nproc", "", "1 with --plan auto on GPUs in a basin built without NCCL, got " +
                                                std::to_string(ranks));
    o.gpu_counts = {1};
    return;
  }
  if (ranks > gpus_found)
    throw topo::InputError("--nproc", "", "at most the " + std::to_string(gpus_found) +
                                              " GPU(s) found with --plan auto, got " + std::to_string(ranks));
  if (ranks > 0) o.gpu_counts = {ranks};
}

AutoPlan gpu_plan(const AutoPlanRequest& r, const topo::Topology& machine, const std::string& topology_path) {
  plan::PlanOptions o;
  o.cluster_spec = topology_path;
  o.model = r.model;
  o.dataset_images = r.dataset_images;
  o.epochs = static_cast<int>(std::max(1.0, r.epochs));
  const sim::DeviceProfile profile =
      sim::device_profile_for(sim::default_profiles_dir(), machine, topo::gpus(machine));
  hold_to_the_gpu_trainer(o, profile, r.ranks, static_cast<int>(topo::gpus(machine).size()));
  const plan::PlanResult result = plan::make_plan(machine, profile, o);
  const plan::PlanRow& best = result.rows.front();
  AutoPlan p;
  p.needs_gpus = true;
  p.ranks = best.gpus;
  p.plan_path = (r.out / "plan.json").string();
  topo::write_file_atomically(p.plan_path, plan::plan_document(result, best, o).dump(2) + "\n");
  std::ostringstream s;
  s << "planned " << best.gpus << " GPU(s) x " << best.batch_per_gpu << " images, "
    << (best.gpus == 1 ? std::string("no allreduce") : best.algorithm.name()) << ", bucket " << best.bucket_MB
    << " MB, " << best.precision.name() << ": " << best.images_per_s << " images/s predicted, "
    << best.time_to_train_h << " h for " << o.epochs << " epochs (" << result.evaluated
    << " configurations simulated on the " << profile.device
    << " profile; limited to what the GPU trainer runs: "
    << (BASIN_HAVE_NCCL ? "NCCL's ring, tree or NVLS)" : "one GPU without NCCL)");
  p.summary = s.str();
  return p;
}

AutoPlan cpu_plan(const AutoPlanRequest& r, const topo::Topology& machine, const std::string& topology_path) {
  std::vector<int> cores;
  for (auto v : topo::nodes_of_kind(machine, topo::NodeKind::cpu))
    if (machine.graph[v].cores > 0) cores.push_back(machine.graph[v].cores);
  if (cores.empty())
    throw topo::InputError(r.hwloc_xml.empty() ? "this machine" : r.hwloc_xml, "NUMA nodes",
                           "at least one NUMA node with CPU cores, found none");
  AutoPlan p;
  p.ranks = r.ranks > 0 ? r.ranks : static_cast<int>(cores.size());
  // A rank per node uses the smallest node's core count, so no rank waits on a busier sibling;
  // another rank count (--nproc) shares all cores evenly.
  int total = 0;
  for (int c : cores) total += c;
  p.threads_per_rank = p.ranks == static_cast<int>(cores.size()) ? *std::min_element(cores.begin(), cores.end())
                                                                  : std::max(1, total / p.ranks);
  plan::PlanResult result;
  result.cluster = machine.name;
  result.model = r.model;
  result.device = "cpu";
  plan::PlanRow row;
  row.gpus = p.ranks;
  row.batch_per_gpu = r.batch_per_device;
  row.global_batch = static_cast<long long>(p.ranks) * r.batch_per_device;
  // Gloo's ring_chunked on CPU ranks of one machine (basin's `ring` maps onto it); bucket size as
  // in PyTorch's DDP default, which keeps per-message overhead small on loopback.
  row.algorithm.algorithm = sim::Algorithm::ring;
  row.library = p.ranks > 1 ? "gloo" : "none";
  row.bucket_MB = 25;
  plan::PlanOptions o;
  o.cluster_spec = topology_path;
  o.model = r.model;
  o.dataset_images = r.dataset_images;
  o.epochs = static_cast<int>(std::max(1.0, r.epochs));
  nlohmann::json doc = plan::plan_document(result, row, o);
  doc["prediction"] = nullptr;
  doc["basis"] = "no GPU found: one rank per NUMA node (" + std::to_string(cores.size()) + "), " +
                 std::to_string(p.threads_per_rank) + " compute thread(s) per rank; no simulated prediction";
  doc["threads_per_rank"] = p.threads_per_rank;
  p.plan_path = (r.out / "plan.json").string();
  topo::write_file_atomically(p.plan_path, doc.dump(2) + "\n");
  p.summary = "planned " + std::to_string(p.ranks) + " CPU rank(s) x " + std::to_string(r.batch_per_device) +
              " images, " + std::to_string(p.threads_per_rank) + " thread(s) each" +
              (p.ranks > 1 ? ", Gloo ring_chunked in 25 MB buckets" : "");
  return p;
}

}  // namespace

AutoPlan make_auto_plan(const AutoPlanRequest& r) {
  topo::DiscoverOptions d;
  d.hwloc_xml = r.hwloc_xml;
  d.use_nvml = r.use_nvml;
  const topo::DiscoverReport found = topo::discover(d);
  std::filesystem::create_directories(r.out);
  const std::string topology_path = std::filesystem::absolute(r.out / "topology.json").string();
  topo::save_topology_file(found.topo, topology_path);
  AutoPlan p = topo::gpus(found.topo).empty() ? cpu_plan(r, found.topo, topology_path)
                                              : gpu_plan(r, found.topo, topology_path);
  p.summary = describe(found.topo) + " (topology in " + topology_path + ")\n" + p.summary + "; plan in " +
              p.plan_path;
  return p;
}

}  // namespace basin::cli
