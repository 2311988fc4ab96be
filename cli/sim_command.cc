// `basin sim`: predicted iteration and epoch time of data-parallel training on a cluster, with
// its breakdown (down to the allreduce's named terms), as text or JSON, and a Chrome trace of
// the simulated iteration.
#include "commands.h"
#include "sim_scaling.h"

#include <basin/plan.h>
#include <basin/training.h>

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdio>
#include <iostream>
#include <set>
#include <string>

namespace basin::cli {
namespace {

struct SimOptions {
  std::string cluster = "bigbasin:32";
  int gpus = 0;  // 0: all of the cluster's
  int per_server = 0;  // GPUs on each server; 0: all of each in turn
  std::string model = "resnet50";
  int batch_per_gpu = 32;
  std::string algorithm = "hierarchical";
  std::string inter = "halving-doubling";
  double bucket_MB = 0;
  std::string precision = "fp32";
  std::string wire;  // empty: the compute precision
  std::string profile;
  double overhead_us = 5;
  double decode_rate = sim::TrainingConfig{}.decode_images_per_s_per_core;
  double gpu_decode_rate = 0;
  double cores_per_gpu = 0;
  std::string host_staging = "auto";
  double compute_jitter = 0;
  int epochs = 90;
  long long dataset_images = sim::TrainingConfig{}.epoch_images;
  bool json = false;
  std::string trace;
  bool scaling = false;
  ScalingOptions scaling_options;
};

// Spelled auto/on/off on the command line because "automatic" is the model's word for "decide from
// the NICs", which users should not have to type.
sim::HostStaging::Mode host_staging_mode(const std::string& text) {
  if (text == "auto") return sim::HostStaging::Mode::automatic;
  if (text == "on") return sim::HostStaging::Mode::on;
  if (text == "off") return sim::HostStaging::Mode::off;
  throw topo::InputError("--host-staging", "", "auto, on or off, got '" + text + "'");
}

int run(const SimOptions& o) {
  topo::Topology cluster = topo::load_any(o.cluster);
  sim::TrainingConfig cfg;
  try {
    cfg.network = model::network_by_name(o.model);
  } catch (const std::invalid_argument& e) {
    throw topo::InputError("--model", "", e.what());
  }
  // 0 is the documented "all"; a negative count is a mistake, not another way to say it.
  if (o.gpus < 0) throw topo::InputError("--gpus", "", "0 (all) or a GPU count, got " + std::to_string(o.gpus));
  cfg.gpus_per_server = o.per_server;
  cfg.gpus = o.gpus > 0 ? o.gpus : static_cast<int>(sim::gpus_in_use(cluster, 0, o.per_server).size());
  cfg.batch_per_gpu = o.batch_per_gpu;
  // As plan takes them, so that a plan made for another dataset or length can be checked here.
  if (o.epochs < 1) throw topo::InputError("--epochs", "", "at least 1 epoch, got " + std::to_string(o.epochs));
  if (o.dataset_images < 1)
    throw topo::InputError("--dataset-images", "", "at least 1 image, got " + std::to_string(o.dataset_images));
  cfg.epoch_images = o.dataset_images;
  // NCCL's algorithms ("nccl-ring/Simple") are timed by NCCL's model (plan::nccl_model); basin's
  // own by the engine alone.
  const bool nccl = o.algorithm.rfind("nccl", 0) == 0;
  const plan::Choice choice = nccl ? plan::choice_from_string(o.algorithm, "--algorithm") : plan::Choice{};
  cfg.algorithm = nccl ? choice.algorithm : sim::algorithm_from_string(o.algorithm);
  cfg.inter = sim::algorithm_from_string(o.inter, "--inter");
  cfg.bucket_MB = o.bucket_MB;
  cfg.precision = sim::precision_from_string(o.precision);
  if (!o.wire.empty()) cfg.wire_precision = sim::precision_from_string(o.wire, "--wire");
  cfg.network_params.per_message_overhead_us = o.overhead_us;
  cfg.decode_images_per_s_per_core = o.decode_rate;
  cfg.gpu_decode_images_per_s = o.gpu_decode_rate;
  cfg.cores_per_gpu = o.cores_per_gpu;
  cfg.host_staging.mode = host_staging_mode(o.host_staging);
  cfg.compute_jitter_cv = o.compute_jitter;
  gpus_of_cluster(cluster);  // refuses a cluster without GPUs, naming it
  sim::DeviceProfile profile =
      o.profile.empty()
          ? sim::device_profile_for(sim::default_profiles_dir(), cluster,
                                    sim::gpus_in_use(cluster, cfg.gpus, cfg.gpus_per_server))
          : sim::load_device_profile(o.profile);
  const sim::AllreduceModel model =
      nccl ? plan::nccl_model(cluster, choice, cfg.network_params, "--algorithm")
           : sim::AllreduceModel([&](sim::Network& network, const std::vector<topo::Vertex>& gpus) {
               return sim::allreduce_cost(network, gpus, cfg.algorithm, cfg.inter, cfg.host_staging);
             });
  if (o.scaling) {
    ScalingOptions so = o.scaling_options;
    so.json = o.json;
    char bucket[32];
    std::snprintf(bucket, sizeof bucket, "%g", o.bucket_MB);
    so.configuration = o.model + " on " + cluster.name + ": " + std::to_string(cfg.batch_per_gpu) + " images/GPU, " + o.precision + ", " +
                       o.algorithm + (cfg.algorithm == sim::Algorithm::hierarchical ? " (inter: " + o.inter + ")" : "") +
                       (o.bucket_MB > 0 ? ", buckets of " + std::string(bucket) + " MB" : ", a bucket per layer");
    if (!o.trace.empty())
      throw topo::InputError("--trace", "", "one configuration; --scaling predicts several");
    // Before the points are worked out and printed: an unwritable plot is refused with nothing done.
    if (!so.plot.empty()) topo::require_writable(so.plot);
    if (so.plot.empty() && !so.measured.empty())
      throw topo::InputError("--measured", "", "--plot, which draws the points beside the curve");
    return run_scaling(cluster, profile, cfg, so, model);
  }
  if (!o.scaling_options.plot.empty() || !o.scaling_options.measured.empty())
    throw topo::InputError(o.scaling_options.plot.empty() ? "--measured" : "--plot", "",
                           "--scaling, which makes the curve it draws");
  // What NCCL would not run on these GPUs by default (LL128 before Volta or off NVLink, NVLS
  // without a switch that sums) is priced as asked, as NCCL_PROTO/NCCL_ALGO would force it, and
  // said: basin plan leaves it out of its search for the same reason.
  if (nccl && cfg.gpus > 1) {
    const std::vector<topo::Vertex> used = sim::gpus_in_use(cluster, cfg.gpus, cfg.gpus_per_server);
    if (!plan::nccl_runs(choice, cluster, used))
      std::cerr << "basin sim: note: NCCL does not run " << choice.name() << " on these " << cfg.gpus
                << " GPUs by default (" << (choice.protocol == plan::Protocol::ll128
                                                ? "LL128: Volta or newer GPUs on NVLink, and between servers NICs within their PCIe switches"
                                                : "it needs hardware these GPUs lack")
                << "); priced as if forced, and basin plan does not consider it here\n";
  }
  sim::Prediction p = sim::predict(cluster, profile, cfg, model);
  const sim::IterationResult& r = p.result;
  // Staging only applies to allreduces that leave a server (allreduce_cost), so "auto" or "on" on
  // one server's GPUs stages nothing; say what actually happened rather than echo the flag.
  const auto& g = cluster.graph;
  // The switch's sums (NVLS, NVLS-tree, CollNet) never stage: they are NCCL's, GPU memory to the NICs.
  const bool in_switch = cfg.algorithm == sim::Algorithm::nvls || cfg.algorithm == sim::Algorithm::nvls_tree ||
                         cfg.algorithm == sim::Algorithm::collnet_chain;
  const bool staged = !nccl && !in_switch && sim::stages_through_host(cluster, cfg.host_staging) &&
                      [&] {
                        const auto used = sim::gpus_in_use(cluster, cfg.gpus, cfg.gpus_per_server);
                        return g[used.front()].server != g[used.back()].server;
                      }();
  // What would run the allreduce as priced (plan::library_of): the default, Goyal et al.'s
  // hierarchical, is basin's own schedule on an RDMA fabric, which nothing runs.
  const plan::Choice priced = nccl ? choice : plan::Choice{.algorithm = cfg.algorithm, .inter = cfg.inter};
  const std::string library =
      plan::library_of(priced, cluster, sim::gpus_in_use(cluster, cfg.gpus, cfg.gpus_per_server), cfg.host_staging);
  if (!o.trace.empty()) {
    topo::write_file_atomically(o.trace, sim::chrome_trace(r));
    std::cerr << "basin sim: wrote " << o.trace << " (open in https://ui.perfetto.dev)\n";
  }
  // Each term of the allreduces summed over the buckets, and how much longer the iteration is
  // for it (most of a term can hide behind backward, so the two differ).
  nlohmann::json terms = nlohmann::json::object();
  for (const auto& [name, t] : r.comm_terms)
    terms[name] = {{"total_s", t.total_s},
                   {"iteration_s_without", t.iteration_s_without},
                   {"contribution_s", r.iteration_s - t.iteration_s_without}};
  // A last, partly filled batch takes a whole iteration: the epoch is its iterations, not the
  // images over images/s.
  const double images_a_step = static_cast<double>(cfg.gpus) * cfg.batch_per_gpu;
  const double iterations = std::ceil(static_cast<double>(cfg.epoch_images) / images_a_step);
  if (o.json) {
    nlohmann::json j = {
        {"format", "basin.sim_result/1"},
        {"config",
         {{"cluster", o.cluster}, {"gpus", cfg.gpus}, {"model", o.model},
          {"batch_per_gpu", cfg.batch_per_gpu}, {"algorithm", o.algorithm}, {"inter", o.inter},
          {"bucket_MB", o.bucket_MB}, {"precision", o.precision},
          {"wire", sim::to_string(cfg.wire_precision.value_or(cfg.precision))},
          {"profile", profile.file},
          {"per_message_overhead_us", o.overhead_us},
          {"decode_images_per_s_per_core", o.decode_rate}, {"gpu_decode_images_per_s", o.gpu_decode_rate}, {"host_staging", o.host_staging},
          {"compute_jitter_cv", o.compute_jitter}}},
        {"staged_through_host", staged},
        {"library", library},
        {"iteration_s", r.iteration_s},
        {"epoch_s", r.epoch_s},
        {"iterations_per_epoch", static_cast<long long>(iterations)},
        {"epochs", o.epochs},
        {"time_to_train_h", o.epochs * r.epoch_s / 3600},
        {"images_per_s", r.images_per_s},
        {"scaling_efficiency_vs_one_server", p.scaling_efficiency},
        {"scaling_efficiency_vs_one_gpu", p.scaling_efficiency_vs_one_gpu},
        {"breakdown",
         {{"compute_s", r.compute_s}, {"exposed_comm_s", r.exposed_comm_s},
          {"data_stall_s", r.data_stall_s}, {"comm_total_s", r.comm_total_s}}},
        {"comm_terms", terms},
        {"buckets", r.buckets},
        {"gradient_MB", r.gradient_MB},
        {"memory_GB", r.memory_GB},
        {"device_memory_GB", profile.memory_GB},
        {"device", sim::memory_owner(profile)},
        {"compute_estimated", r.compute_estimated},
        {"compute_basis", r.compute_basis},
        {"step_overhead_s", r.step_overhead_s},
        {"input_basis", r.input_basis}};
    std::cout << j.dump(2) << "\n";
    return 0;
  }
  std::string placed;  // where a run spread over more servers sits
  if (cfg.gpus_per_server > 0) {
    std::set<int> servers;
    for (auto v : sim::gpus_in_use(cluster, cfg.gpus, cfg.gpus_per_server)) servers.insert(cluster.graph[v].server);
    placed = " (at most " + std::to_string(cfg.gpus_per_server) + " on each of " + std::to_string(servers.size()) +
             " servers)";
  }
  std::printf("%s on %d GPUs%s of %s, %d images/GPU (global batch %d), %s, %s",
              o.model.c_str(), cfg.gpus, placed.c_str(), cluster.name.c_str(), cfg.batch_per_gpu,
              cfg.batch_per_gpu * cfg.gpus, o.precision.c_str(), o.algorithm.c_str());
  if (cfg.algorithm == sim::Algorithm::hierarchical) std::printf(" (inter: %s)", o.inter.c_str());
  if (cfg.wire_precision && *cfg.wire_precision != cfg.precision)
    std::printf(", gradients sent as %s", sim::to_string(*cfg.wire_precision));
  if (o.bucket_MB > 0)
    std::printf(", buckets: %g MB\n", o.bucket_MB);
  else
    std::printf(", buckets: one per layer\n");
  std::printf("host staging: %s (%s)\n", o.host_staging.c_str(),
              staged ? "copies through host memory, sums on one CPU core" : "none");
  if (plan::runs_as_priced(library))
    std::printf("runs as: %s (basin train --device gpu --gpu-collective %s)\n", library.c_str(), library.c_str());
  else if (library != "none")
    std::printf("runs as: %s: basin's own schedule, priced %s, which neither NCCL nor Gloo runs here; "
                "--algorithm nccl prices what NCCL runs\n",
                library.c_str(), staged ? "through host memory in a shape Gloo has not" : "moving GPU memory directly");
  std::printf("compute: %s%s\n", r.compute_estimated ? "ESTIMATE, " : "", r.compute_basis.c_str());
  std::printf("  iteration        %8.4f s\n", r.iteration_s);
  std::printf("    compute        %8.4f s\n", r.compute_s);
  std::printf("    exposed comm   %8.4f s  (of %.4f s of allreduce in %d buckets, %.1f MB)\n",
              r.exposed_comm_s, r.comm_total_s, r.buckets, r.gradient_MB);
  if (!r.comm_terms.empty())
    std::printf("      allreduce time by part; the iteration without that part alone (the parts overlap,\n"
                "      and removing one can hide the rest behind backprop, so these do not add up):\n");
  for (const auto& [name, t] : r.comm_terms)
    std::printf("      %-30s %8.4f s  (%.1f ms shorter without it)\n", name.c_str(), t.total_s,
                1e3 * (r.iteration_s - t.iteration_s_without));
  std::printf("    data stall     %8.4f s  (input pipeline: %s)\n", r.data_stall_s, r.input_basis.c_str());
  std::printf("  images/s         %8.0f\n", r.images_per_s);
  std::printf("  device memory    %8.1f GB of the %.0f GB of a %s\n", r.memory_GB,
              profile.memory_GB, sim::memory_owner(profile).c_str());
  const bool partly = std::fmod(static_cast<double>(cfg.epoch_images), images_a_step) != 0;
  std::printf("  epoch            %8.1f s  (%.0f iterations%s; %d epochs: %.2f h)\n", r.epoch_s, iterations,
              partly ? ", the last one partly filled" : "", o.epochs, o.epochs * r.epoch_s / 3600);
  std::printf("  scaling efficiency vs one server: %.1f%%, vs one GPU: %.1f%%\n", 100 * p.scaling_efficiency,
              100 * p.scaling_efficiency_vs_one_gpu);
  // Time is not the whole answer past 8k images (Goyal et al. 2017, fig. 1): say what accuracy
  // the published runs lost at this global batch.
  const long long global = static_cast<long long>(cfg.batch_per_gpu) * cfg.gpus;
  const double penalty = plan::accuracy_penalty_points(global);
  if (std::isnan(penalty))
    std::printf("warning: global batch %lld is beyond the published accuracy data (64k images, Goyal et al. "
                "2017): expect a large, unknown top-1 loss\n", global);
  else if (penalty > 0)
    std::printf("warning: global batch %lld: Goyal et al. 2017 lost about %.1f top-1 points at this size with "
                "the same recipe (none up to 8k); basin plan --tolerated-loss weighs it\n", global, penalty);
  return 0;
}

}  // namespace

std::function<int()> add_sim_command(CLI::App& app) {
  auto o = std::make_shared<SimOptions>();
  CLI::App* cmd = app.add_subcommand("sim", "Predict iteration and epoch time of data-parallel training");
  cmd->add_option("--cluster", o->cluster, "Cluster spec or topology/cluster JSON")->capture_default_str();
  cmd->add_option("--gpus", o->gpus, "GPUs to use, in rank order (default: all)");
  cmd->add_option("--per-server", o->per_server,
                  "GPUs used on each server, the run spread over more servers (default: 0, all of each)")
      ->capture_default_str();
  cmd->add_option("--model", o->model, "Network: resnet18, resnet34, resnet50, resnet101, resnet152")
      ->capture_default_str();
  cmd->add_option("--batch-per-gpu", o->batch_per_gpu, "Images per GPU per iteration")->capture_default_str();
  cmd->add_option("--algorithm", o->algorithm,
                  "Allreduce: ring, halving-doubling, recursive-doubling, tree, bcube, 2d-torus, hierarchical, "
                  "nvls (the NVSwitch sums: H100 or B200 NVSwitch servers, one, or several on a fabric whose "
                  "switches sum too, sharp=on), nvls-tree (NVLS in each such server, trees between them), "
                  "collnet-chain (chains in the servers, the fabric's switches sum between them: sharp=on), or "
                  "NCCL's as NCCL runs them: nccl-ring/PROTO, nccl-tree/PROTO (LL, LL128, Simple; auto, or no /PROTO: "
                  "NCCL's tuner picks per bucket), nccl (NCCL's tuner picks the algorithm too, as with NCCL_ALGO "
                  "unset), "
                  "nccl-nvls/Simple, nccl-nvls-tree/Simple, nccl-collnet-chain/Simple")
      ->capture_default_str();
  cmd->add_option("--inter", o->inter, "Inter-server algorithm of hierarchical")->capture_default_str();
  cmd->add_option("--bucket-mb", o->bucket_MB, "Gradient bucket size, MB of fp32 gradients as basin train fills them; a 16-bit --wire sends half (0: one per layer)")
      ->capture_default_str();
  cmd->add_option("--precision", o->precision, "fp32, fp16 or bf16")->capture_default_str();
  cmd->add_option("--wire", o->wire,
                  "Precision of the allreduced gradients (default: --precision; PyTorch AMP: fp32)");
  cmd->add_option("--profile", o->profile, "Device profile JSON (default: matched in profiles/devices)");
  cmd->add_option("--overhead-us", o->overhead_us, "Per-message software overhead (us)")
      ->capture_default_str();
  cmd->add_option("--decode-rate", o->decode_rate,
                  "JPEG decode+augment images/s per CPU core (assumed default)")
      ->capture_default_str();
  cmd->add_option("--epochs", o->epochs, "Epochs to train, for the time to train")->capture_default_str();
  cmd->add_option("--dataset-images", o->dataset_images, "Training images per epoch (default: ImageNet-1k's)")
      ->capture_default_str();
  cmd->add_option("--cores-per-gpu", o->cores_per_gpu, "CPU cores feeding each GPU, a share such as 3.5 (default: the server's cores over its GPUs in use)");
  cmd->add_option("--gpu-decode-rate", o->gpu_decode_rate,
                  "JPEG images/s each GPU decodes itself beside its CPU cores (DALI's mixed decoder on "
                  "A100/H100 hardware JPEG engines; default 0: none)");
  cmd->add_option("--host-staging", o->host_staging,
                  "Gloo's copies through host memory for allreduces between servers: auto (when "
                  "the NICs are Ethernet), on, off")
      ->capture_default_str();
  cmd->add_option("--compute-jitter", o->compute_jitter,
                  "Step-to-step variation of one GPU's compute time (coefficient of variation): a "
                  "synchronous step waits for the slowest GPU")
      ->capture_default_str();
  cmd->add_flag("--json", o->json, "Print the result as JSON");
  cmd->add_option("--trace", o->trace, "Write a Chrome trace of the iteration to this file");
  cmd->add_flag("--scaling", o->scaling,
                "Predict from one server up to --gpus, doubling the servers: a table, or JSON");
  cmd->add_option("--plot", o->scaling_options.plot, "With --scaling: write the scaling curve as SVG");
  cmd->add_option("--measured", o->scaling_options.measured,
                  "With --plot: your measured points beside the curve, GPUS:EFFICIENCY,...");
  return [o] { return run(*o); };
}

}  // namespace basin::cli
