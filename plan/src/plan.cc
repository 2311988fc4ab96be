// `basin plan`: search GPU count x per-GPU batch x allreduce x bucket size x precision for the
// fastest (or cheapest) way to train a model on a cluster, within device memory and the
// accuracy limit of large minibatches. Every candidate is one simulated iteration; what makes
// thousands of them cheap is that an allreduce's cost depends only on the GPUs and the
// algorithm, so it is solved once per pair and reused for every batch, bucket and precision.
#include <basin/plan.h>

#include "number_text.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>
#include <map>
#include <set>

namespace basin::plan {
namespace {

std::string format(const char* spec, double x) { return detail::number_text(spec, x); }
std::string percent(double x) { return format("%+.0f%%", 100 * x); }

// The choices searched when none are named: what basin train runs on GPUs, as the simulator
// prices it. NCCL's ring and tree with the protocol NCCL's tuner picks per bucket (the trainer
// sets only NCCL's algorithm), and NVLS, NVLS-tree and CollNet's chain where they run; basin's
// ring and halving-doubling, and Goyal et al.'s three phases with halving-doubling between the
// servers, where Gloo runs them as priced (see library_of).
std::vector<Choice> default_algorithms() {
  using A = sim::Algorithm;
  std::vector<Choice> out;
  for (A a : {A::ring, A::halving_doubling}) out.push_back({a});
  out.push_back({A::hierarchical, Protocol::none, A::halving_doubling});  // Goyal et al.'s
  for (A a : {A::ring, A::tree}) out.push_back({a, Protocol::automatic});
  for (A a : {A::nvls, A::nvls_tree, A::collnet_chain}) out.push_back({a, Protocol::simple});
  return out;
}

// What the GPUs of a plan cost an hour (GPU-hours an hour, its GPU count, without a price).
double hourly_cost(const PlanRow& r) { return r.cost / r.time_to_train_h; }

double objective_value(const PlanRow& r, Objective o) {
  switch (o) {
    case Objective::time: return r.time_to_train_h;
    case Objective::cost: return r.cost;
    // The cluster's price an hour over its images a second: the cost of an image, whose
    // inverse is the throughput a dollar buys.
    case Objective::throughput_per_dollar: return hourly_cost(r) / r.images_per_s;
  }
  return 0;
}

}  // namespace

GlooRun gloo_run(const std::string& algorithm, const std::string& inter) {
  if (algorithm == "hierarchical") {
    // Between leaders comm runs ring, ring_chunked or halving_doubling; for anything else (bcube,
    // hierarchical itself) halving-doubling stands in. The same shape where the leaders' schedule is.
    const GlooRun between = gloo_run(inter.empty() ? "halving-doubling" : inter);
    const bool flat = between.algorithm == "ring_chunked" || between.algorithm == "halving_doubling";
    return {"hierarchical", flat ? between.algorithm : "halving_doubling", flat && between.same_shape};
  }
  if (algorithm == "ring") return {"ring_chunked", "", true};
  if (algorithm == "halving-doubling") return {"halving_doubling", "", true};
  if (algorithm == "tree" || algorithm == "2d-torus") return {"ring_chunked", "", false};
  if (algorithm == "bcube") return {"bcube", "", false};
  return {"halving_doubling", "", false};
}

std::string library_of(const Choice& choice, const topo::Topology& cluster, const std::vector<topo::Vertex>& gpus,
                       const sim::HostStaging& staging) {
  if (gpus.size() < 2) return "none";
  if (choice.is_nccl()) return "nccl";
  std::set<int> servers;
  for (topo::Vertex v : gpus) servers.insert(cluster.graph[v].server);
  const bool staged = servers.size() > 1 && sim::stages_through_host(cluster, staging);
  if (choice.algorithm == sim::Algorithm::hierarchical)
    return staged && gloo_run("hierarchical", sim::to_string(choice.inter)).same_shape ? "nccl+gloo" : "simulated-only";
  return staged && gloo_run(sim::to_string(choice.algorithm)).same_shape ? "gloo" : "simulated-only";
}

bool runs_as_priced(const std::string& library) {
  return library == "nccl" || library == "gloo" || library == "nccl+gloo";
}

double accuracy_penalty_points(long long global_batch) {
  // (log2 batch, added top-1 error in points): Goyal et al. 2017.
  static const std::pair<double, double> published[] = {
      {13, 0.0}, {14, 1.2}, {15, 4.0}, {16, 10.4}};
  const double x = std::log2(static_cast<double>(global_batch));
  if (x <= 13) return 0;
  for (size_t i = 1; i < std::size(published); ++i)
    if (x <= published[i].first) {
      auto [x0, y0] = published[i - 1];
      auto [x1, y1] = published[i];
      return y0 + (y1 - y0) * (x - x0) / (x1 - x0);
    }
  return std::nan("");
}

Objective objective_from_string(const std::string& text) {
  if (text == "time") return Objective::time;
  if (text == "cost") return Objective::cost;
  if (text == "throughput-per-dollar") return Objective::throughput_per_dollar;
  throw topo::InputError("--objective", "", "time, cost or throughput-per-dollar, got '" + text + "'");
}

std::string PrecisionChoice::name() const {
  std::string n = sim::to_string(compute);
  if (wire != compute) n += std::string("/wire-") + sim::to_string(wire);
  return n;
}

// Plans whose figures differ by under 0.5% count as equal (the model is not that precise).
// Orders `items` by `value`, then takes as equal every item within 0.5% of the first of its group
// (the best, then the best of the rest, ...), and orders each group by `before`. A fixed grid of
// 0.5% bands split plans 0.01% apart where a band's edge fell between them.
namespace {
template <class T, class Value, class Before>
void sort_with_ties(std::vector<T>& items, Value value, Before before) {
  std::stable_sort(items.begin(), items.end(), [&](const T& a, const T& b) { return value(a) < value(b); });
  for (auto group = items.begin(); group != items.end();) {
    const double limit = value(*group) * 1.005;
    auto end = std::find_if(group, items.end(), [&](const T& x) { return value(x) > limit; });
    std::stable_sort(group, end, before);
    group = end;
  }
}
}  // namespace

std::string PlanRow::bottleneck() const {
  // Any stall means the input pipeline sets the pace: the iteration is its batch's decode time,
  // and faster compute or communication would not shorten it.
  if (data_stall_s > 1e-3 * iteration_s) return "input pipeline";
  if (exposed_comm_s > 0.05 * iteration_s) return "communication";
  return "compute";
}

PlanResult make_plan(const topo::Topology& cluster, const sim::DeviceProfile& profile,
                     const PlanOptions& o) {
  const auto start = std::chrono::steady_clock::now();
  PlanResult result;
  result.cluster = cluster.name;
  result.model = o.model;
  result.device = profile.device;
  result.gpu = profile.gpu_model.empty() ? profile.device : profile.gpu_model;
  result.cost_in_gpu_hours = !(o.price_per_gpu_hour > 0);
  if (o.epochs < 1) throw topo::InputError("--epochs", "", "at least 1 epoch");
  if (o.dataset_images < 1) throw topo::InputError("--dataset-images", "", "at least 1 image");
  if (!std::isfinite(o.tolerated_loss_points) || o.tolerated_loss_points < 0)
    throw topo::InputError("--tolerated-loss", "", "a non-negative number of top-1 points");
  // The limits below use 0 for "none": a negative or NaN one would silently mean "none" too,
  // and a negative price would rank the most expensive plan cheapest.
  auto none_or_positive = [](const char* flag, double v, const char* what) {
    if (!std::isfinite(v) || v < 0)
      throw topo::InputError(flag, "", std::string("0 (none) or a positive ") + what + ", got " +
                                           format("%g", v));
  };
  none_or_positive("--price-per-gpu-hour", o.price_per_gpu_hour, "price per GPU-hour");
  none_or_positive("--deadline-h", o.deadline_h, "number of hours");
  none_or_positive("--budget", o.budget, "cost");
  none_or_positive("--max-global-batch", o.max_global_batch, "global batch");
  for (int b : o.batches_per_gpu)
    if (b < 1) throw topo::InputError("--batches", "", "per-GPU batches of at least 1, got " + std::to_string(b));
  for (double mb : o.buckets_MB)
    if (!std::isfinite(mb) || mb < 0)
      throw topo::InputError("--buckets-mb", "", "bucket sizes of 0 (one per layer) or more MB, got " +
                                                     format("%g", mb));
  model::Network net;
  try {
    net = model::network_by_name(o.model);
  } catch (const std::invalid_argument& e) {
    throw topo::InputError("--model", "", e.what());
  }
  // Servers that no route joins (fabric=none) train only on one server's GPUs (at most the
  // largest --per-server of them): the search keeps to the first server's, and a count beyond
  // it is refused by name, not at the first route.
  const std::vector<topo::Vertex> every_gpu = topo::gpus(cluster);
  const int unjoined = sim::unjoined_server_gpus(cluster);  // one search of the graph, used thrice
  const bool joined = unjoined == 0;
  int reachable = joined ? static_cast<int>(every_gpu.size()) : unjoined;
  if (!joined && !o.gpus_per_server.empty() &&
      std::find(o.gpus_per_server.begin(), o.gpus_per_server.end(), 0) == o.gpus_per_server.end())
    reachable = std::min(reachable, *std::max_element(o.gpus_per_server.begin(), o.gpus_per_server.end()));
  std::vector<int> counts = o.gpu_counts.empty() ? default_gpu_counts(cluster, o.gpus_per_server) : o.gpu_counts;
  if (!joined) {
    result.one_server_only = reachable;
    if (o.gpu_counts.empty()) std::erase_if(counts, [&](int n) { return n > reachable; });
    for (int n : counts)
      if (n > reachable)
        throw topo::InputError("--gpus", "",
                               "GPU counts of at most " + std::to_string(reachable) + " (one server's" +
                                   (reachable < unjoined ? ", as --per-server allows" : "") +
                                   "), got " +
                                   std::to_string(n) + ": no route joins the servers of " + cluster.name +
                                   (cluster.fabric.empty() ? " (fabric=none)" : ""));
  }
  const bool named = !o.algorithms.empty();
  const std::vector<Choice> algorithms = named ? o.algorithms : default_algorithms();
  std::vector<PrecisionChoice> precisions = o.precisions;
  for (const PrecisionChoice& p : precisions)
    try {
      sim::compute_evidence(net, p.compute, profile);
    } catch (const topo::InputError& e) {
      // check_precision's refusal names sim's flag; plan's is --precisions. A fault of the
      // profile itself keeps its file and field.
      if (e.origin != "--precision") throw;
      throw topo::InputError("--precisions", "", e.expected);
    }
  std::vector<std::pair<std::string, std::string>> unmeasured;
  if (precisions.empty()) {
    using P = sim::Precision;
    precisions = {{P::fp32, P::fp32}, {P::fp32, P::fp16}};
    if (profile.peak_TFLOPS_fp16 > 0) precisions.push_back({P::fp16, P::fp16});
    if (profile.peak_TFLOPS_bf16 > 0) precisions.push_back({P::bf16, P::bf16});
    // A winner whose speed rests on nothing measured would outrank the measured plans on a
    // guess (fp16 on a P100 at half its datasheet peak came out 2.7x its measured fp32).
    auto peak_only = [&](const PrecisionChoice& p) {
      return sim::compute_evidence(net, p.compute, profile).kind == sim::ComputeEvidence::Kind::peak_only;
    };
    if (!std::all_of(precisions.begin(), precisions.end(), peak_only)) {
      for (const PrecisionChoice& p : precisions)
        if (peak_only(p) && std::none_of(unmeasured.begin(), unmeasured.end(),
                                         [&](const auto& u) { return u.first == sim::to_string(p.compute); }))
          unmeasured.emplace_back(sim::to_string(p.compute), sim::compute_evidence(net, p.compute, profile).basis);
      std::erase_if(precisions, peak_only);
    }
  }
  const int total = static_cast<int>(topo::gpus(cluster).size());
  for (int n : counts)
    if (n < 1 || n > total)
      throw topo::InputError("--gpus", "", "GPU counts between 1 and the cluster's " +
                                               std::to_string(total) + ", got " + std::to_string(n));

  sim::Network network(cluster, o.network);
  std::map<std::pair<int, std::string>, double> one_gpu_rate;  // (batch, precision) -> images/s
  auto base_config = [&](int gpus, int batch, const PrecisionChoice& p) {
    sim::TrainingConfig cfg;
    cfg.network = net;
    cfg.gpus = gpus;
    cfg.batch_per_gpu = batch;
    cfg.precision = p.compute;
    cfg.wire_precision = p.wire;
    cfg.network_params = o.network;
    cfg.decode_images_per_s_per_core = o.decode_images_per_s_per_core;
    cfg.gpu_decode_images_per_s = o.gpu_decode_images_per_s;
    cfg.compute_jitter_cv = o.compute_jitter_cv;
    cfg.epoch_images = o.dataset_images;
    return cfg;
  };

  // NVLS on one GPU stands for NVLS on the server's GPUs: only where the first server has it.
  std::vector<topo::Vertex> first_server;
  for (topo::Vertex v : every_gpu)
    if (cluster.graph[v].server == cluster.graph[every_gpu.front()].server) first_server.push_back(v);
  const bool nvls_here = topo::nvlink_sharp_switch(cluster, first_server).has_value();
  std::map<std::string, std::vector<int>> not_run;  // named choices -> GPU counts above one they skipped
  result.gpus_on_a_server = sim::gpus_on_a_server(cluster);
  bool placed_any = false;  // some count fits some layout named with --per-server
  for (int count : counts) {
  // Named choices that run on some placement of this count; the rows a placement cannot change
  // (accuracy, dataset, memory) are recorded once, on the first placement where anything runs.
  std::set<std::string> ran;
  bool recorded = false;
  for (const Placement& placed : placements(cluster, count, o.gpus_per_server)) {
    const std::vector<topo::Vertex>& gpus = placed.gpus;
    std::set<int> servers;
    for (auto v : gpus) servers.insert(cluster.graph[v].server);
    if (!joined && servers.size() > 1) continue;  // spread over servers no route joins
    placed_any = true;
    // The choices that run on these GPUs; the first of them also records the rejected rows.
    auto runs = [&](const Choice& c) {
      // Unnamed, basin's own schedules only where Gloo runs them as priced (not on one GPU either,
      // where NCCL's choice stands for the plan that reduces nothing).
      if (!named && !c.is_nccl() && !runs_as_priced(library_of(c, cluster, gpus))) return false;
      if (count == 1)  // nothing to reduce; NVLS-tree never stands for one GPU
        return c.algorithm != sim::Algorithm::nvls_tree && c.algorithm != sim::Algorithm::collnet_chain &&
               (c.algorithm != sim::Algorithm::nvls || nvls_here);
      if (c.algorithm == sim::Algorithm::hierarchical && servers.size() < 2) return false;
      return !c.is_nccl() || nccl_runs(c, cluster, gpus);
    };
    for (const Choice& c : algorithms)
      if (runs(c)) ran.insert(c.name());
    const auto first = std::find_if(algorithms.begin(), algorithms.end(), runs);
    if (first == algorithms.end()) continue;  // none of the choices runs on these GPUs
    const bool first_layout = !recorded;
    recorded = true;
    for (const Choice& choice : algorithms) {
      if (count == 1 && &choice != &*first) continue;  // nothing to reduce: one row
      if (!runs(choice)) continue;
      const sim::CollectiveCost cost =
          choice.is_nccl() ? nccl_choice_cost(network, gpus, choice)
                           : sim::allreduce_cost(network, gpus, choice.algorithm, choice.inter);
      for (int batch : o.batches_per_gpu) {
        PlanRow row{count, batch, static_cast<long long>(count) * batch, choice};
        row.library = library_of(choice, cluster, gpus);
        row.ranks_per_server = placed.ranks_per_server;
        row.accuracy_penalty = accuracy_penalty_points(row.global_batch);
        // A step of more images than the dataset holds would make every epoch one partly filled step.
        if (row.global_batch > o.dataset_images) {
          if (&choice == &*first && first_layout) {
            row.rejected = "more than the dataset: global batch " + std::to_string(row.global_batch) + " of " +
                           std::to_string(o.dataset_images) + " images";
            result.rejected.push_back(row);
          }
          continue;
        }
        if (std::isnan(row.accuracy_penalty) || row.accuracy_penalty > o.tolerated_loss_points ||
            (o.max_global_batch > 0 && row.global_batch > o.max_global_batch)) {
          if (&choice == &*first && first_layout) {
            row.rejected = "global batch " + std::to_string(row.global_batch) +
                           (std::isnan(row.accuracy_penalty)
                                ? " is beyond the published accuracy data (64k)"
                                : " costs +" + format("%.2g", row.accuracy_penalty) +
                                      " top-1 points (tolerated: " +
                                      format("%.2g", o.tolerated_loss_points) + ")");
            if (o.max_global_batch > 0 && row.global_batch > o.max_global_batch)
              row.rejected = "global batch " + std::to_string(row.global_batch) + " over the limit " +
                             std::to_string(o.max_global_batch);
            result.rejected.push_back(row);
          }
          continue;
        }
        for (const PrecisionChoice& p : precisions) {
          row.precision = p;
          row.rejected.clear();  // an earlier precision's refusal is not this one's
          const double need = sim::memory_needed_GB(net, batch, p.compute);
          row.memory_GB = need;
          if (need > profile.memory_GB) {
            if (&choice == &*first && first_layout) {
              char why[160];
              std::snprintf(why, sizeof why, "batch %d in %s needs about %.1f GB of the %s's %.0f GB",
                            batch, p.name().c_str(), need,
                            sim::memory_owner(profile).c_str(),
                            profile.memory_GB);
              row.rejected = why;
              result.rejected.push_back(row);
            }
            continue;
          }
          auto key = std::pair(batch, p.name());
          if (!one_gpu_rate.count(key))
            one_gpu_rate[key] =
                sim::simulate_iteration(cluster, profile, base_config(1, batch, p), {}).images_per_s;
          for (double bucket : o.buckets_MB) {
            if (count == 1 && bucket != o.buckets_MB.front()) break;
            sim::TrainingConfig cfg = base_config(count, batch, p);
            cfg.gpus_per_server = placed.layout;
            cfg.algorithm = choice.algorithm;
            cfg.inter = choice.inter;
            cfg.bucket_MB = bucket;
            sim::IterationResult r = sim::simulate_iteration(cluster, profile, cfg, cost);
            ++result.evaluated;
            PlanRow done = row;
            done.bucket_MB = bucket;
            done.iteration_s = r.iteration_s;
            done.epoch_s = r.epoch_s;
            done.images_per_s = r.images_per_s;
            done.compute_s = r.compute_s;
            done.exposed_comm_s = r.exposed_comm_s;
            done.data_stall_s = r.data_stall_s;
            done.input_basis = r.input_basis;
            done.compute_estimated = r.compute_estimated;
            done.compute_basis = r.compute_basis;
            done.scaling_efficiency = r.images_per_s / (one_gpu_rate[key] * count);
            done.time_to_train_h = o.epochs * r.epoch_s / 3600;
            done.gpu_hours = done.time_to_train_h * count;
            done.cost = result.cost_in_gpu_hours ? done.gpu_hours : done.gpu_hours * o.price_per_gpu_hour;
            if (o.deadline_h > 0 && done.time_to_train_h > o.deadline_h)
              done.rejected = "misses the deadline: " + format("%.3g", done.time_to_train_h) + " h";
            else if (o.budget > 0 && done.cost > o.budget)
              done.rejected = "over budget: " + format("%.6g", done.cost) +
                              (result.cost_in_gpu_hours ? " GPU-hours" : " (in --price-per-gpu-hour's currency)");
            (done.rejected.empty() ? result.rows : result.rejected).push_back(done);
          }
        }
      }
    }
  }
  // A named choice is reported not run at a count only where no placement of it ran it.
  if (named && count > 1)
    for (const Choice& c : algorithms)
      if (!ran.count(c.name())) not_run[c.name()].push_back(count);
  }
  if (!o.gpus_per_server.empty() && !placed_any)
    throw topo::InputError("--per-server", "",
                           "a layout that fits a GPU count searched (N GPUs at most P on each server take N/P "
                           "servers, rounded up, and a server as many GPUs), on the cluster's " +
                               std::to_string(cluster.servers) +
                               " servers of at most " + std::to_string(result.gpus_on_a_server) + " GPUs");
  result.unmeasured = std::move(unmeasured);
  for (const Choice& c : algorithms)
    if (auto it = not_run.find(c.name()); it != not_run.end()) {
      result.not_run.emplace_back(it->first, it->second);
      not_run.erase(it);  // a choice named twice is reported once
    }
  if (result.rows.empty() && result.rejected.empty())
    throw topo::InputError("--algorithms", "",
                           "an allreduce that runs on the GPU counts searched (hierarchical: GPUs on two servers or "
                           "more; LL128: Volta or newer GPUs on NVLink, NICs near them; nccl-nvls/Simple: every "
                           "GPU on one NVSwitch that sums in the switch, NVLink 4 or later, or such servers on a "
                           "fabric that sums (sharp=on); nccl-nvls-tree/Simple: such "
                           "servers, two or more, as many GPUs on each; nccl-collnet-chain/Simple: two servers or "
                           "more on a fabric that sums), "
                           "got none");
  if (result.rows.empty()) {
    // One example of each reason, the nearest miss: the fastest plan past the deadline, the
    // cheapest over the budget, which say what deadline or budget would do.
    std::map<std::string, const PlanRow*> nearest;
    std::vector<std::string> order;
    for (const auto& r : result.rejected) {
      const std::string kind = r.rejected.substr(0, r.rejected.find(':'));
      auto [it, added] = nearest.emplace(kind, &r);
      if (added) order.push_back(kind);
      else if (kind == "misses the deadline" ? r.time_to_train_h < it->second->time_to_train_h
               : kind == "over budget"       ? r.cost < it->second->cost
                                             : false)
        it->second = &r;
    }
    std::string reasons;
    for (size_t i = 0; i < order.size() && i < 4; ++i) reasons += "\n  " + nearest[order[i]]->rejected;
    throw topo::InputError("basin plan", "", "at least one configuration that fits, but every one "
                                             "of the " + std::to_string(result.rejected.size()) +
                                             " was rejected, e.g.:" + reasons);
  }
  // Plans within 0.5% on the objective count as equal (the model is not that precise); among
  // them the faster one wins (the cheaper one when the objective is time), and then the one with
  // the most headroom: the shortest iteration without its data stall, which stays ahead when the
  // input pipeline gets faster (more cores, decoding on the GPU). Many plans tie when the input
  // pipeline sets the pace.
  auto fed_seconds_per_image = [](const PlanRow& r) {
    return (r.iteration_s - r.data_stall_s) / static_cast<double>(r.global_batch);
  };
  auto objective = [&](const PlanRow& r) { return objective_value(r, o.objective); };
  sort_with_ties(result.rows, objective, [&](const PlanRow& a, const PlanRow& b) {
    const double first_a = o.objective == Objective::time ? a.cost : a.time_to_train_h;
    const double first_b = o.objective == Objective::time ? b.cost : b.time_to_train_h;
    if (std::abs(first_a - first_b) > 1e-3 * std::max(first_a, first_b)) return first_a < first_b;
    return fed_seconds_per_image(a) < fed_seconds_per_image(b);
  });
  const PlanRow& best = result.rows.front();
  double lowest = objective(best);
  for (const PlanRow& r : result.rows) lowest = std::min(lowest, objective(r));
  const char* objective_name = o.objective == Objective::time   ? "time to train"
                               : o.objective == Objective::cost ? "cost"
                                                                : "cost per image";
  for (size_t i = 1; i < result.rows.size(); ++i) {
    PlanRow& r = result.rows[i];
    // In the best's group the objective ties (a row may even be a little ahead on it): what it
    // loses is the tie-break's, cost under time, time under the others, else headroom.
    if (objective(r) <= lowest * 1.005) {
      const bool by_time = o.objective == Objective::time;
      const double second = by_time ? r.cost / best.cost - 1 : r.time_to_train_h / best.time_to_train_h - 1;
      r.lost = std::string("ties on ") + objective_name + "; " +
               (std::abs(second) > 1e-3
                    ? (std::abs(second) < 0.1 ? format("%+.1f%%", 100 * second) : percent(second)) +
                          (by_time ? " cost" : " time to train")
                    : "less headroom") +
               "; bound by " + r.bottleneck();
      continue;
    }
    const double delta = objective(r) / objective(best) - 1;
    r.lost = percent(delta) + " " + objective_name + "; bound by " + r.bottleneck();
  }
  // Pareto front of time against cost: fastest first, each next one strictly cheaper. Times
  // within 0.5% count as equal here too, and among equals the ranking's order decides (which
  // already weighs cost, within its own tolerance, and headroom), so that the front's fastest
  // point is the plan ranked first when the objective is time; ordering equals by exact cost
  // put a plan 0.04% cheaper but with less headroom there, beside a different "best".
  std::vector<int> order(result.rows.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int>(i);
  sort_with_ties(order, [&](int i) { return result.rows[i].time_to_train_h; }, std::less<int>());
  // Each next point costs less by more than the 0.5% the model can tell apart: a slower plan
  // that saves 0.04% offers no trade.
  double cheapest = std::numeric_limits<double>::infinity();
  for (int i : order)
    if (result.rows[i].cost * 1.005 < cheapest) {
      cheapest = result.rows[i].cost;
      result.pareto.push_back(i);
    }
  result.search_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

}  // namespace basin::plan
