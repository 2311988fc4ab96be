// `basin plan`: the fastest (or cheapest) way to train a model on a cluster, as a ranked table,
// the Pareto front of time against cost, a `basin.plan/1` file and the command that runs it;
// with --compare (or a changed part), the same question on a second cluster side by side.
#include "commands.h"

#include <basin/plan.h>
#include <basin/plot.h>

#include <cmath>
#include <map>
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <cctype>
#include <set>
#include <sstream>

namespace basin::cli {

std::vector<topo::Vertex> gpus_of_cluster(const topo::Topology& t) { return sim::require_gpus(t); }

namespace {

struct PlanCliOptions {
  plan::PlanOptions plan;
  std::string cluster = "bigbasin:32";
  std::vector<std::string> algorithms, precisions;
  std::string objective = "time";
  std::string profile;
  std::string out = "plan.json";
  int top = 12;
  bool json = false;
  std::string compare;          // a second cluster
  double compare_nic_GBps = 0;  // ... or this one with every network port at this rate
  std::string compare_profile;  // ... or with another GPU profile
  std::string plot;             // SVG of the Pareto front; empty: none
};

plan::PrecisionChoice parse_precision(const std::string& text) {
  plan::PrecisionChoice p;
  auto slash = text.find("/wire-");
  p.compute = sim::precision_from_string(text.substr(0, slash), "--precisions");
  p.wire = slash == std::string::npos ? p.compute
                                      : sim::precision_from_string(text.substr(slash + 6), "--precisions");
  return p;
}

sim::DeviceProfile profile_for(const topo::Topology& t, const std::string& path) {
  const auto gpus = gpus_of_cluster(t);
  if (!path.empty()) return sim::load_device_profile(path);
  return sim::device_profile_for(sim::default_profiles_dir(), t, gpus);
}

void print_table(const plan::PlanResult& r, const PlanCliOptions& o) {
  const char* cost_unit = r.cost_in_gpu_hours ? "GPU-h" : "cost";
  std::printf("%4s %5s %7s %5s %6s  %-31s %6s %-16s %6s %8s %7s %8s %5s %7s %9s %5s  %s\n", "rank",
              "GPUs", "servers", "b/GPU", "global", "allreduce", "bucket", "precision", "mem GB", "iter s",
              "epoch s", "img/s", "eff", "train h", cost_unit, "+top1", "why not first");
  for (size_t i = 0; i < r.rows.size() && static_cast<int>(i) < o.top; ++i) {
    const auto& x = r.rows[i];
    const std::string why = i == 0 ? "best; bound by " + x.bottleneck() : x.lost;
    std::printf(
        "%4zu %5d %7s %5d %6lld  %-31s %6.3g %-16s %6.1f %8.4f %7.1f %8.0f %4.0f%% %7.2f %9.1f %5.1f  %s\n",
        i + 1, x.gpus, x.placement().c_str(),
        x.batch_per_gpu, x.global_batch,
        x.gpus == 1 ? "-" : x.algorithm.name().c_str(), x.bucket_MB,
        (x.precision.name() + (x.compute_estimated ? " *" : "")).c_str(),
        x.memory_GB, x.iteration_s, x.epoch_s, x.images_per_s, 100 * x.scaling_efficiency,
        x.time_to_train_h, x.cost, x.accuracy_penalty, why.c_str());
  }
  // Which rows' compute speed nothing measured directly, and what it was estimated from.
  std::map<std::string, std::string> estimated;
  for (size_t i = 0; i < r.rows.size() && static_cast<int>(i) < o.top; ++i)
    if (r.rows[i].compute_estimated) estimated.emplace(sim::to_string(r.rows[i].precision.compute), r.rows[i].compute_basis);
  for (const auto& [precision, basis] : estimated)
    std::printf("%s* %s compute is an ESTIMATE: %s\n", precision == estimated.begin()->first ? "\n" : "",
                precision.c_str(), basis.c_str());
  for (const auto& [precision, basis] : r.unmeasured)
    std::printf("%s not searched: its speed would rest on no measurement (%s); name it with --precisions to plan it\n",
                precision.c_str(), basis.c_str());
  // An input-bound winner is worth a sentence: the GPUs idle, and the fix is on the CPU side.
  if (!r.rows.empty() && r.rows.front().bottleneck() == "input pipeline") {
    const auto& b = r.rows.front();
    const double decoded = b.batch_per_gpu / b.iteration_s;
    const double could = b.batch_per_gpu / (b.iteration_s - b.data_stall_s);
    std::printf("\nThe best plan waits for its input: each GPU is fed about %.0f images/s (%s; --decode-rate "
                "%.4g per core) where it could take %.0f. More cores per GPU or decoding on the GPU "
                "(--gpu-decode-rate) would raise the ceiling.\n",
                decoded, b.input_basis.c_str(), o.plan.decode_images_per_s_per_core, could);
  }
  std::printf("\nPareto front (time to train against %s):\n", cost_unit);
  for (int i : r.pareto) {
    const auto& x = r.rows[i];
    std::printf("  %7.2f h  %9.1f %s  %4d GPUs x %d%s, %s, %s\n", x.time_to_train_h, x.cost, cost_unit,
                x.gpus, x.batch_per_gpu,
                x.servers() > 1 && (!x.even() || x.ranks_per_server.front() < r.gpus_on_a_server)
                    ? (" (" + (x.even() ? std::to_string(x.ranks_per_server.front()) + " on each of "
                                        : x.placement() + " on ") +
                       std::to_string(x.servers()) + " servers)").c_str()
                    : "",
                x.gpus == 1 ? "-" : x.algorithm.name().c_str(), x.precision.name().c_str());
  }
  if (r.pareto.size() == 1)
    std::printf("  (one point: no slower plan costs more than 0.5%% less, so time costs nothing here)\n");
  // Rejected before simulation: a GPU count, batch (and precision) that no allreduce, bucket or
  // layout can save, counted once; after: a simulated configuration past the deadline or budget.
  const auto before = std::count_if(r.rejected.begin(), r.rejected.end(),
                                    [](const plan::PlanRow& x) { return x.iteration_s == 0; });
  // Each count with an example of its own kind.
  auto example = [&](bool simulated) {
    const auto it = std::find_if(r.rejected.begin(), r.rejected.end(),
                                 [&](const plan::PlanRow& x) { return (x.iteration_s != 0) == simulated; });
    return it == r.rejected.end() ? std::string() : " (e.g. \"" + it->rejected + "\")";
  };
  std::printf("\n%d configurations simulated in %.2f s: %zu usable, %zu past the deadline or budget%s", r.evaluated,
              r.search_s, r.rows.size(), r.rejected.size() - before, example(true).c_str());
  if (before > 0)
    std::printf("; %td GPU count and batch choices rejected before simulation%s", before, example(false).c_str());
  std::printf("\n");
  if (r.one_server_only > 0)
    std::printf("Searched one server's %d GPUs: no route joins %s's servers; a fabric joining them "
                "(fabric=switch, fat-tree or rail) lets plan search more.\n",
                r.one_server_only, r.cluster.c_str());
}

// What `basin train` runs the best plan's allreduce with, so that a schedule no library runs is
// not read as one that does.
std::string runs_with(const plan::PlanRow& best) {
  const std::string name = best.algorithm.name();
  if (best.library == "nccl" && best.algorithm.nccl_picks_algorithm)
    return "nccl runs on NCCL (basin train sets no algorithm: NCCL's tuner picks algorithm and protocol per "
           "bucket as the environment lets it, priced as NCCL's defaults, CollNet off, at the fastest by basin's "
           "model of NCCL)";
  if (best.library == "nccl")
    return name + " runs on NCCL (basin train sets the algorithm; NCCL's tuner picks the protocol per bucket" +
           (best.algorithm.protocol == plan::Protocol::automatic ||
                    (best.algorithm.algorithm != sim::Algorithm::ring && best.algorithm.algorithm != sim::Algorithm::tree)
                ? std::string(", as priced)")
                : ", where the plan priced " + std::string(plan::to_string(best.algorithm.protocol)) + " throughout)");
  // basin's Gloo paths copy fp32 to host memory and narrow there; the simulator prices the
  // copies at the wire's width.
  const std::string wide_copies =
      best.precision.wire == sim::Precision::fp32
          ? ""
          : std::string(", except that the copies between GPU and host carry fp32, twice the ") +
                sim::to_string(best.precision.wire) + " wire's bytes priced";
  if (best.library == "gloo")
    return name + " runs on Gloo, every bucket staged through host memory, as priced" + wide_copies;
  if (best.library == "nccl+gloo")
    return name + " runs as priced: NCCL's reduce and broadcast in each server, Gloo between the servers on one "
                  "host copy each (basin train --gpu-collective nccl+gloo)" + wide_copies;
  if (best.library == "simulated-only" && best.algorithm.algorithm == sim::Algorithm::hierarchical)
    return name +
           " is priced with its servers' first GPUs moving GPU memory directly (or with an algorithm between "
           "servers Gloo has not): a design to compare. basin train runs the three phases with Gloo's ring or "
           "halving-doubling between servers through host memory (--gpu-collective nccl+gloo), or NCCL's choice "
           "with --gpu-collective nccl";
  if (best.library == "simulated-only")
    return name + " is basin's own schedule, priced moving GPU memory directly, which neither NCCL nor Gloo does" +
           ": a design to compare, which basin train runs only with --gpu-collective nccl (NCCL's choice) or "
           "gloo (every rank staged, slower than predicted)";
  return "";
}

// The named choices that skipped some GPU counts, so a plan that quietly fell back to fewer GPUs
// or to another choice is not read as the named one's best.
void print_not_run(const plan::PlanResult& r) {
  if (r.not_run.empty()) return;
  std::printf("\nNot run on every GPU count searched:");
  for (const auto& [name, counts] : r.not_run) {
    std::string list;
    for (int n : counts) list += (list.empty() ? "" : ", ") + std::to_string(n);
    std::printf(" %s on %s GPUs;", name.c_str(), list.c_str());
  }
  std::printf(" (hierarchical: two servers or more; LL128: Volta or newer GPUs on NVLink, NICs near them; NVLS, "
              "NVLS-tree, CollNet: NVSwitches or a fabric that sums)\n");
}

nlohmann::json not_run_json(const plan::PlanResult& r) {
  nlohmann::json out = nlohmann::json::object();
  for (const auto& [name, counts] : r.not_run) out[name] = counts;
  return out;
}

// Time to train against cost: every usable plan as a point, the Pareto front as a line (and the
// what-if cluster's front beside it). Log axes: plans span hours to weeks, and costs as much.
void write_pareto_plot(const PlanCliOptions& o, const plan::PlanResult& r,
                       const plan::PlanResult* other, const std::string& other_name) {
  const char* cost_unit = o.plan.price_per_gpu_hour > 0 ? "cost" : "GPU-hours";
  auto front = [](const plan::PlanResult& x, const std::string& label) {
    plot::Series s{label, {}, {}, plot::Series::Style::line_and_points};
    for (int i : x.pareto) s.x.push_back(x.rows[i].time_to_train_h), s.y.push_back(x.rows[i].cost);
    return s;
  };
  plot::Series all{"every usable plan", {}, {}, plot::Series::Style::points};
  for (const auto& row : r.rows) all.x.push_back(row.time_to_train_h), all.y.push_back(row.cost);
  plot::Chart chart{.title = o.plan.model + " on " + o.cluster + ": time to train against cost",
                    .x = {"time to train (hours)", true},
                    .y = {cost_unit, true},
                    .series = {all, front(r, "Pareto front, " + o.cluster)}};
  if (other) chart.series.push_back(front(*other, "Pareto front, " + other_name));
  topo::write_file_atomically(o.plot, plot::to_svg(chart));
  std::cerr << "basin plan: wrote " << o.plot << "\n";
}

// --compare names a cluster as --cluster does; its errors should name the flag the user typed.
topo::Topology load_compare(const std::string& spec) {
  try {
    return topo::load_any(spec);
  } catch (const topo::InputError& e) {
    if (e.origin != "--cluster") throw;
    throw topo::InputError("--compare", e.path, e.expected);
  }
}

int run(PlanCliOptions o) {
  if (o.top < 0) throw topo::InputError("--top", "", "0 or more rows, got " + std::to_string(o.top));
  topo::Topology cluster = topo::load_any(o.cluster);
  // A topology file is written as an absolute path, so that the plan finds it from anywhere: a
  // whole file, or the server file of a spec ("box.json:4,fabric=switch").
  o.plan.cluster_spec = o.cluster;
  if (std::filesystem::is_regular_file(o.cluster)) {
    o.plan.cluster_spec = std::filesystem::absolute(o.cluster).lexically_normal().string();
  } else if (topo::ClusterSpec spec = topo::parse_cluster_spec(o.cluster);
             spec.server.ends_with(".json") && std::filesystem::is_regular_file(spec.server)) {
    spec.server = std::filesystem::absolute(spec.server).lexically_normal().string();
    o.plan.cluster_spec = topo::to_string(spec);
  }
  for (const auto& a : o.algorithms) o.plan.algorithms.push_back(plan::choice_from_string(a));
  for (const auto& p : o.precisions) o.plan.precisions.push_back(parse_precision(p));
  o.plan.objective = plan::objective_from_string(o.objective);
  sim::DeviceProfile profile = profile_for(cluster, o.profile);
  plan::PlanResult result = plan::make_plan(cluster, profile, o.plan);
  const plan::PlanRow& best = result.rows.front();
  nlohmann::json doc = plan::plan_document(result, best, o.plan);
  // The plan file is written only once every input (the --compare side included) has been read
  // and both outputs can be written, so bad input leaves no plan.json behind.
  if (!o.out.empty()) topo::require_writable(o.out);
  if (!o.plot.empty()) topo::require_writable(o.plot);
  // The rate as the user wrote it (100, not 100.000000), in the refusal and the compared name.
  const std::string nic_rate = [&] {
    char text[32];
    std::snprintf(text, sizeof text, "%g", o.compare_nic_GBps);
    return std::string(text);
  }();
  if (!std::isfinite(o.compare_nic_GBps) || o.compare_nic_GBps < 0)
    throw topo::InputError("--compare-nic-GBps", "", "0 (none) or a port rate in GB/s, got " + nic_rate);

  std::optional<plan::PlanResult> other;
  std::string other_name;
  if (!o.compare.empty() || o.compare_nic_GBps > 0 || !o.compare_profile.empty()) {
    other_name = o.compare.empty() ? o.cluster : o.compare;
    topo::Topology second = o.compare.empty() ? topo::load_any(other_name) : load_compare(other_name);
    if (o.compare_nic_GBps > 0) {
      topo::set_nic_port_rate(second, o.compare_nic_GBps, "--compare-nic-GBps");
      other_name += " with " + nic_rate + " GB/s network ports";
    }
    if (!o.compare_profile.empty()) other_name += " with " + o.compare_profile;
    plan::PlanOptions p2 = o.plan;
    p2.cluster_spec = o.compare.empty() ? o.cluster : o.compare;
    // The compared cluster's GPUs take --compare-profile, or, being the same GPU model as this
    // cluster's (the same box, more of them), the --profile given for it.
    const auto model_of = [](const topo::Topology& t) {
      const auto gpus = topo::gpus(t);  // none: profile_for below says so
      return gpus.empty() ? std::string() : t.graph[gpus.front()].model;
    };
    const std::string second_profile = !o.compare_profile.empty()                           ? o.compare_profile
                                       : o.compare.empty() || model_of(second) == model_of(cluster) ? o.profile
                                                                                                  : "";
    try {
      other = plan::make_plan(second, profile_for(second, second_profile), p2);
    } catch (const topo::InputError& e) {
      // A flag both sides share (--gpus 256 on a 16-GPU --compare) is the second cluster's fault
      // here; so is a GPU no shipped profile matches, which --compare-profile gives.
      std::string expected = e.expected;
      const size_t at = second_profile.empty() ? expected.find("--profile FILE") : std::string::npos;
      if (at != std::string::npos) expected.replace(at, 14, "--compare-profile FILE");
      if (!e.origin.starts_with("--") && at == std::string::npos) throw;
      throw topo::InputError(e.origin == "--profile" ? "--compare-profile" : e.origin, e.path,
                             expected + " (on the --compare cluster, " + other_name + ")");
    }
  }

  if (!o.out.empty()) topo::write_file_atomically(o.out, doc.dump(2) + "\n");
  if (!o.plot.empty()) write_pareto_plot(o, result, other ? &*other : nullptr, other_name);
  if (o.json) {
    nlohmann::json out = {{"format", "basin.plan_result/1"}, {"best", doc},
                          {"evaluated", result.evaluated}, {"search_s", result.search_s},
                          {"usable", result.rows.size()}, {"rejected", result.rejected.size()},
                          {"not_run", not_run_json(result)}};
    if (result.one_server_only > 0) out["one_server_only"] = result.one_server_only;
    // Precisions left out of the default search, and the estimate each would have rested on.
    out["unmeasured"] = nlohmann::json::object();
    for (const auto& [precision, basis] : result.unmeasured) out["unmeasured"][precision] = basis;
    // The ranked rows the table shows (--top of them), each with why it is not first, and one
    // example of each kind of rejection.
    auto row_json = [](const plan::PlanRow& x) {
      return nlohmann::json{{"gpus", x.gpus}, {"ranks_per_server", x.ranks_per_server},
                            {"batch_per_gpu", x.batch_per_gpu}, {"global_batch", x.global_batch},
                            {"algorithm", x.algorithm.name()}, {"library", x.library}, {"bucket_MB", x.bucket_MB},
                            {"precision", x.precision.name()}, {"memory_GB", x.memory_GB},
                            {"iteration_s", x.iteration_s}, {"epoch_s", x.epoch_s}, {"images_per_s", x.images_per_s},
                            {"scaling_efficiency", x.scaling_efficiency}, {"time_to_train_h", x.time_to_train_h},
                            {"gpu_hours", x.gpu_hours}, {"cost", x.cost}, {"accuracy_penalty_points", x.accuracy_penalty},
                            {"compute_estimated", x.compute_estimated}, {"bottleneck", x.bottleneck()},
                            {"why_not_first", x.lost.empty() ? "best" : x.lost}};
    };
    out["rows"] = nlohmann::json::array();
    for (size_t i = 0; i < result.rows.size() && static_cast<int>(i) < o.top; ++i)
      out["rows"].push_back(row_json(result.rows[i]));
    out["rejected_examples"] = nlohmann::json::array();
    std::set<std::string> kinds;
    for (const plan::PlanRow& x : result.rejected) {
      std::string kind = x.rejected;  // the reason with its numbers left out
      std::erase_if(kind, [](char ch) { return std::isdigit(static_cast<unsigned char>(ch)) || ch == '.'; });
      if (kinds.insert(kind).second) out["rejected_examples"].push_back(x.rejected);
    }
    nlohmann::json pareto = nlohmann::json::array();
    for (int i : result.pareto) pareto.push_back(plan::plan_document(result, result.rows[i], o.plan));
    out["pareto"] = pareto;
    if (other) out["compare"] = {{"cluster", other_name},
                                 {"best", plan::plan_document(*other, other->rows.front(), o.plan)},
                                 {"not_run", not_run_json(*other)}};
    std::cout << out.dump(1) << "\n";
    return 0;
  }
  // The GPU the cluster has (a DGX-1's 16 GB V100, which the 32 GB part's profile times with its
  // own memory kept), as sim names it; the plan file's `device` is the profile's.
  std::printf("%s on %s (%s), %d epochs of %lld images, objective: %s\n\n", o.plan.model.c_str(),
              o.cluster.c_str(), result.gpu.c_str(), o.plan.epochs, o.plan.dataset_images, o.objective.c_str());
  print_table(result, o);
  if (const std::string how = runs_with(best); !how.empty()) std::printf("\nThe best plan's allreduce: %s.\n", how.c_str());
  print_not_run(result);
  // The simulator leaves the input pipeline out where the topology states no CPU cores (its
  // basis for the best row says so): say so, or the rows read as if decoding were free.
  if (best.input_basis.rfind("not modelled", 0) == 0)
    std::printf("\nThe input pipeline is not modelled: %s states no CPU cores, so --decode-rate bounds nothing.\n",
                o.cluster.c_str());
  if (!o.out.empty())
    std::printf("\nbest plan written to %s; run it with:\n  %s\n", o.out.c_str(),
                plan::train_command(o.out, best).c_str());
  if (other) {
    std::printf("\n--- what if: %s ---\n", other_name.c_str());
    print_table(*other, o);
    print_not_run(*other);
    std::printf("\n%s", plan::explain_difference(best, o.cluster, other->rows.front(), other_name).c_str());
  }
  return 0;
}

}  // namespace

std::function<int()> add_plan_command(CLI::App& app) {
  auto o = std::make_shared<PlanCliOptions>();
  CLI::App* cmd = app.add_subcommand("plan", "Search GPUs x batch x allreduce x bucket x precision for the best training plan");
  cmd->add_option("--cluster", o->cluster, "Cluster spec or topology/cluster JSON")->capture_default_str();
  cmd->add_option("--model", o->plan.model, "Network: resnet18 .. resnet152")->capture_default_str();
  cmd->add_option("--dataset-images", o->plan.dataset_images, "Training images per epoch")->capture_default_str();
  cmd->add_option("--epochs", o->plan.epochs, "Epochs to train")->capture_default_str();
  // Lists as several values or comma-separated ("--gpus 8 16" or "--gpus 8,16").
  cmd->add_option("--per-server", o->plan.gpus_per_server,
                  "GPUs a run takes on each server, 0 for all of each (default: 0, and half, a quarter, ... of a "
                  "server's spread over more servers)")
      ->delimiter(',');
  cmd->add_option("--gpus", o->plan.gpu_counts, "GPU counts to try (default: 1, 2, 4, whole servers doubling, all)")
      ->delimiter(',');
  cmd->add_option("--batches", o->plan.batches_per_gpu, "Per-GPU batches to try")->capture_default_str()->delimiter(',');
  cmd->add_option("--algorithms", o->algorithms,
                  "Allreduce choices: ring, halving-doubling, ..., hierarchical[:INTER], nccl-ring, nccl-tree (NCCL's "
                  "tuner picks the protocol per bucket), nccl (it picks the algorithm too), nccl-ring/LL128 ..., "
                  "nccl-nvls/Simple, nccl-nvls-tree/Simple, nccl-collnet-chain/Simple (default: what basin train runs on GPUs "
                  "as priced: NCCL's, and basin's ring and halving-doubling between servers joined by Ethernet, staged by "
                  "Gloo)")
      ->delimiter(',');
  cmd->add_option("--buckets-mb", o->plan.buckets_MB, "Bucket sizes to try, MB of fp32 gradients, as basin train fills them (0: one per layer)")
      ->capture_default_str()
      ->delimiter(',');
  cmd->add_option("--precisions", o->precisions,
                  "fp32, fp16, bf16, or COMPUTE/wire-WIRE (default: fp32, fp32/wire-fp16, fp16, bf16)")
      ->delimiter(',');
  cmd->add_option("--tolerated-loss", o->plan.tolerated_loss_points,
                  "Top-1 points the large minibatch may cost (Goyal et al.: 0 up to 8k)")->capture_default_str();
  cmd->add_option("--max-global-batch", o->plan.max_global_batch, "Hard limit on the global batch (0: none beyond --tolerated-loss)");
  cmd->add_option("--price-per-gpu-hour", o->plan.price_per_gpu_hour, "Price of one GPU-hour (default: cost in GPU-hours)");
  cmd->add_option("--objective", o->objective, "time, cost or throughput-per-dollar")->capture_default_str();
  cmd->add_option("--deadline-h", o->plan.deadline_h, "Reject plans that take longer (hours)");
  cmd->add_option("--budget", o->plan.budget, "Reject plans that cost more");
  cmd->add_option("--overhead-us", o->plan.network.per_message_overhead_us, "Per-message software overhead (us)")->capture_default_str();
  cmd->add_option("--decode-rate", o->plan.decode_images_per_s_per_core, "JPEG decode+augment images/s per CPU core")->capture_default_str();
  cmd->add_option("--gpu-decode-rate", o->plan.gpu_decode_images_per_s,
                  "JPEG images/s each GPU decodes itself beside its CPU cores (DALI's mixed decoder; default 0: none)");
  cmd->add_option("--compute-jitter", o->plan.compute_jitter_cv,
                  "Step-to-step variation of one GPU's compute time (coefficient of variation)")
      ->capture_default_str();
  cmd->add_option("--profile", o->profile, "Device profile JSON (default: matched in profiles/devices)");
  cmd->add_option("--out", o->out, "Write the best plan here (basin.plan/1)")->capture_default_str();
  cmd->add_option("--top", o->top, "Rows of the table to print (0: none, only the summary)")->capture_default_str();
  cmd->add_flag("--json", o->json, "Print the result as JSON");
  cmd->add_option("--plot", o->plot, "Write the Pareto front of time against cost as SVG");
  cmd->add_option("--compare", o->compare, "What if: the same search on this cluster, side by side");
  cmd->add_option("--compare-nic-GBps", o->compare_nic_GBps,
                  "What if: every network port at this rate (GB/s; 0: no comparison); with --compare, the "
                  "compared cluster's ports are the ones changed");
  cmd->add_option("--compare-profile", o->compare_profile, "What if: another GPU profile");
  return [o] { return run(*o); };
}

}  // namespace basin::cli
