// Checking a training config and fingerprinting it for resume (see train_parts.h), and the
// network and global batch it describes.
#include "train_parts.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace basin::exec {
namespace detail {

void check_config(const TrainConfig& c) {
  auto bad = [](const std::string& field, const std::string& expected) {
    throw std::invalid_argument(field + ": expected " + expected);
  };
  if (c.batch < 1) bad("batch", "at least 1, got " + std::to_string(c.batch));
  if (c.micro_batches < 1) bad("micro_batches", "at least 1, got " + std::to_string(c.micro_batches));
  const int ranks = c.comm ? c.comm->world_size() : 1;
  if (c.world_size != ranks)
    bad("world_size", std::to_string(ranks) + (c.comm ? " (the ranks that met at the rendezvous)"
                                                      : " (one process: start ranks with --nproc "
                                                        "or RANK/WORLD_SIZE)") +
                          ", got " + std::to_string(c.world_size));
  // Every real-valued field is tested so that NaN fails too (it passes `x < 0`): a NaN or
  // infinite rate, momentum or decay would otherwise start the run and end it as "diverged"
  // (exit 3) or train with a learning rate of NaN, instead of naming the bad value up front.
  const auto finite = [](double x) { return std::isfinite(x); };
  const auto got = [](double x) { return ", got " + std::to_string(x); };
  if (!(c.epochs > 0) || !finite(c.epochs)) bad("epochs", "more than 0" + got(c.epochs));
  if (!(c.schedule.base_lr > 0) || !finite(c.schedule.base_lr))
    bad("base_lr", "more than 0" + got(c.schedule.base_lr));
  if (c.schedule.base_batch < 1) bad("base_batch", "at least 1");
  if (!(c.schedule.warmup_epochs >= 0) || !finite(c.schedule.warmup_epochs))
    bad("warmup_epochs", "0 or more" + got(c.schedule.warmup_epochs));
  if (!finite(c.schedule.warmup_start_lr))
    bad("warmup_start_lr", "a rate (negative: the base lr)" + got(c.schedule.warmup_start_lr));
  if (!(c.schedule.gamma > 0) || !finite(c.schedule.gamma))
    bad("gamma", "a decay factor above 0" + got(c.schedule.gamma));
  if (!(c.sgd.momentum >= 0 && c.sgd.momentum < 1)) bad("momentum", "in [0, 1)" + got(c.sgd.momentum));
  if (!(c.sgd.weight_decay >= 0) || !finite(c.sgd.weight_decay))
    bad("weight_decay", "0 or more" + got(c.sgd.weight_decay));
  for (double m : c.schedule.milestones)
    if (!(m >= 0) || !finite(m)) bad("milestones", "epochs of 0 or more" + got(m));
  if (!std::is_sorted(c.schedule.milestones.begin(), c.schedule.milestones.end()))
    bad("milestones", "epochs in increasing order");
  if (!(c.augment.min_scale > 0 && c.augment.min_scale <= c.augment.max_scale && c.augment.max_scale <= 1))
    bad("min_scale", "a share of the image area in (0, " + std::to_string(c.augment.max_scale) + "]" +
                         got(c.augment.min_scale));
  if (!(c.augment.flip_probability >= 0 && c.augment.flip_probability <= 1))
    bad("flip_probability", "a probability in [0, 1]" + got(c.augment.flip_probability));
  if (c.loader_threads < 1) bad("loader_threads", "at least 1");
  if (!(c.bucket_mb >= 0) || !finite(c.bucket_mb))
    bad("bucket_mb", "0 (one bucket per layer) or more" + got(c.bucket_mb));
  if (c.checkpoint_every < 0)
    bad("checkpoint_every", "0 (each epoch end) or more steps, got " + std::to_string(c.checkpoint_every));
  if (c.trace_step < 0) bad("trace_step", "a step of 0 or more, got " + std::to_string(c.trace_step));
  if (c.out.empty()) bad("out", "a run directory");
  if (c.loss_scale.enabled) check_loss_scale(c.loss_scale);
  // Gloo's algorithm and layout matter only where Gloo sums the gradients.
  if (c.comm && c.gpu_collective == TrainConfig::GpuCollective::nccl_gloo &&
      c.allreduce.algorithm != comm::Algorithm::hierarchical)
    bad("algorithm", std::string("hierarchical with gpu_collective nccl_gloo (NCCL inside each server, Gloo "
                                 "between them), got ") + comm::name(c.allreduce.algorithm));
  if (c.comm && c.gpu_collective != TrainConfig::GpuCollective::nccl) {
    const std::string why = comm::unsupported_reason(c.allreduce.algorithm, ranks, c.allreduce.bcube_base);
    if (!why.empty()) bad("algorithm", why);
    // Gloo's AllreduceRing adds each rank's arriving values into its own buffer, so rank r holds
    // x_r + x_(r-1) + ... in its own order: from 3 participants on, their sums differ in the last
    // bits, the replicas' weights drift apart step by step, and with fp16 loss scaling one can
    // overflow and skip a step another takes. Training needs one sum, the same everywhere.
    // Between servers the participants are the leaders, whose broadcasts copy each leader's sum to
    // its own server only, so the rule is the same over servers.
    auto refuse_drifting_ring = [&](const char* field, comm::Algorithm runs, int participants,
                                    const std::string& where) {
      if (runs != comm::Algorithm::ring || participants < 3) return;
      bad(field, "ring_chunked or halving_doubling " + where +
                     ", got ring: Gloo's plain ring leaves each its sum in a different order, so replicas drift "
                     "apart; ring_chunked is the same ring as reduce-scatter + allgather, one sum copied to all");
    };
    if (c.allreduce.algorithm == comm::Algorithm::hierarchical) {
      if (!comm::runs_between_servers(c.allreduce.inter))
        bad("inter", std::string("halving_doubling, ring_chunked or ring between servers, got ") +
                         comm::name(c.allreduce.inter));
      comm::RendezvousConfig layout;
      layout.rank = c.comm->rank();
      layout.world_size = ranks;
      layout.local_rank = c.comm->local_rank();
      layout.local_world_size = c.comm->local_world_size();
      if (const std::string wrong = comm::hierarchy_reason(layout, c.allreduce.inter); !wrong.empty())
        bad("algorithm", wrong);
      const int servers = ranks / layout.local_world_size;
      refuse_drifting_ring("inter", c.allreduce.inter, servers, "between " + std::to_string(servers) + " servers");
    }
    refuse_drifting_ring("algorithm", c.allreduce.algorithm, ranks, "on " + std::to_string(ranks) + " ranks");
  }
}

nlohmann::json recipe_of(const TrainConfig& c, const model::Network& net, size_t train_images) {
  const auto& s = c.schedule;
  nlohmann::json r = {
      {"model", net.name},
      {"layers", net.layers.size()},
      {"parameters", net.params()},
      {"image_size", net.image_size},
      {"classes", net.classes},
      {"train_images", train_images},
      {"batch", c.batch},
      {"micro_batches", c.micro_batches},
      {"world_size", c.world_size},
      {"seed", c.seed},
      {"zero_init_residual", c.zero_init_residual},
      {"base_lr", s.base_lr},
      {"base_batch", s.base_batch},
      {"warmup_epochs", s.warmup_epochs},
      // The start the run states (base_lr for "unset"), so a summary reads as the run went.
      {"warmup_start_lr", stated_warmup_start(s)},
      {"decay", s.decay == LrSchedule::Decay::step ? "step" : "cosine"},
      {"milestones", s.milestones},
      {"gamma", s.gamma},
      {"momentum", c.sgd.momentum},
      {"nesterov", c.sgd.nesterov},
      {"weight_decay", c.sgd.weight_decay},
      {"decay_bn_and_bias", c.sgd.decay_bn_and_bias},
      {"min_scale", c.augment.min_scale},
      {"max_scale", c.augment.max_scale},
      {"flip_probability", c.augment.flip_probability},
      {"min_ratio", c.augment.min_ratio},
      {"max_ratio", c.augment.max_ratio}};
  // Cosine's rate depends on the total length; step decay's does not, so such a run may be
  // extended on resume.
  if (s.decay == LrSchedule::Decay::cosine) r["epochs"] = c.epochs;
  return r;
}

void check_same_recipe(const std::string& saved_text, const nlohmann::json& wanted,
                       const std::filesystem::path& checkpoint) {
  auto saved = nlohmann::json::parse(saved_text);
  // Checkpoints of earlier basins wrote -1 for a warmup starting at base_lr.
  if (saved.contains("warmup_start_lr") && saved["warmup_start_lr"].is_number() &&
      saved["warmup_start_lr"].get<double>() < 0 && saved.contains("base_lr"))
    saved["warmup_start_lr"] = saved["base_lr"];
  // Warmup starts at min(stated start, peak): a start above the peak is the peak, so two
  // recipes stating 0.1 and the peak 0.003125 (a --plan auto run and its own plan file) run
  // alike and compare alike.
  auto effective_start = [](nlohmann::json& r) {
    for (const char* key : {"warmup_start_lr", "base_lr", "base_batch", "batch", "micro_batches", "world_size"})
      if (!r.contains(key) || !r[key].is_number()) return;
    LrSchedule s;  // scaled_lr's own arithmetic, so that the peak rounds as the run's does
    s.base_lr = r["base_lr"].get<double>();
    s.base_batch = r["base_batch"].get<int>();
    const long long global =
        r["batch"].get<long long>() * r["micro_batches"].get<long long>() * r["world_size"].get<long long>();
    r["warmup_start_lr"] = std::min(r["warmup_start_lr"].get<double>(), scaled_lr(s, global));
  };
  const nlohmann::json stated = saved;  // what each run said, for the refusal
  nlohmann::json want = wanted;
  effective_start(saved);
  effective_start(want);
  for (const auto& [key, value] : want.items()) {
    const auto it = saved.find(key);
    const std::string had = it == saved.end() ? "nothing" : stated.at(key).dump();
    if (it == saved.end() || *it != value)
      throw std::invalid_argument(
          "--resume: " + checkpoint.string() + " was written by a run with " + key + " = " + had +
          "; this run asks for " + wanted.at(key).dump() +
          ". Resume with the same settings, or start a new run in another directory");
  }
}

std::string schedule_caveats(const LrSchedule& s, long long global_batch, double epochs) {
  char text[200];
  std::string out;
  if (s.warmup_epochs > epochs && warmup_start(s, global_batch) < scaled_lr(s, global_batch)) {
    std::snprintf(text, sizeof text, "; warmup (%g epochs) outlasts the run (%g): the peak is never reached",
                  s.warmup_epochs, epochs);
    out += text;
  }
  if (s.decay == LrSchedule::Decay::step && !s.milestones.empty() &&
      std::all_of(s.milestones.begin(), s.milestones.end(), [&](double m) { return m >= epochs; })) {
    std::snprintf(text, sizeof text, "; no decay milestone falls inside the run's %g epochs (first: %g)", epochs,
                  *std::min_element(s.milestones.begin(), s.milestones.end()));
    out += text;
  }
  return out;
}

std::string describe_warmup(const LrSchedule& s, long long global_batch) {
  char text[200];
  const double peak = scaled_lr(s, global_batch), start = warmup_start(s, global_batch);
  if (s.warmup_epochs > 0 && start < peak)
    std::snprintf(text, sizeof text, "peak lr %g after %g epochs of warmup from %g", peak,
                  s.warmup_epochs, start);
  else if (s.warmup_epochs > 0 && stated_warmup_start(s) > peak)
    std::snprintf(text, sizeof text,
                  "peak lr %g from the first step (no warmup: the peak is below its start %g, and warmup only climbs)",
                  peak, stated_warmup_start(s));
  else if (s.warmup_epochs > 0)
    std::snprintf(text, sizeof text, "peak lr %g from the first step (no warmup: it starts at the peak)", peak);
  else
    std::snprintf(text, sizeof text, "peak lr %g from the first step", peak);
  return text;
}

}  // namespace detail

const char* nccl_algo_name(TrainConfig::NcclAlgorithm algorithm) {
  switch (algorithm) {
    case TrainConfig::NcclAlgorithm::ring: return "Ring";
    case TrainConfig::NcclAlgorithm::tree: return "Tree";
    case TrainConfig::NcclAlgorithm::nvls: return "NVLS";
    case TrainConfig::NcclAlgorithm::nvls_tree: return "NVLSTree";
    case TrainConfig::NcclAlgorithm::collnet_chain: return "CollNetChain";
    case TrainConfig::NcclAlgorithm::automatic: return nullptr;
  }
  return nullptr;
}

long long global_batch(const TrainConfig& c) {
  return 1LL * c.batch * c.micro_batches * (c.comm ? c.comm->world_size() : 1);
}

model::Network network_for(const TrainConfig& config, int classes) {
  if (config.model == "resnet-custom") {
    model::ResNetShape shape = config.shape;
    shape.classes = classes;
    return model::resnet(shape);
  }
  try {
    return model::network_by_name(config.model, config.shape.image_size, classes);
  } catch (const std::invalid_argument&) {
    std::string known;
    for (const auto& n : model::network_names()) known += n + ", ";
    throw std::invalid_argument("model: expected " + known + "or resnet-custom, got '" + config.model + "'");
  }
}

}  // namespace basin::exec
