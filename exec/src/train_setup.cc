// Checking a training config and fingerprinting it for resume (see train_parts.h), and the
// network and global batch it describes.
#include "train_parts.h"

#include <algorithm>

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
  if (!(c.epochs > 0)) bad("epochs", "more than 0, got " + std::to_string(c.epochs));
  if (!(c.schedule.base_lr > 0)) bad("base_lr", "more than 0");
  if (c.schedule.base_batch < 1) bad("base_batch", "at least 1");
  if (c.schedule.warmup_epochs < 0) bad("warmup_epochs", "0 or more");
  if (c.sgd.momentum < 0 || c.sgd.momentum >= 1) bad("momentum", "in [0, 1)");
  if (c.sgd.weight_decay < 0) bad("weight_decay", "0 or more");
  if (!std::is_sorted(c.schedule.milestones.begin(), c.schedule.milestones.end()))
    bad("milestones", "epochs in increasing order");
  if (c.loader_threads < 1) bad("loader_threads", "at least 1");
  if (c.bucket_mb < 0) bad("bucket_mb", "0 (one bucket per layer) or more");
  if (c.out.empty()) bad("out", "a run directory");
  if (c.loss_scale.enabled) check_loss_scale(c.loss_scale);
  if (c.comm) {
    const std::string why = comm::unsupported_reason(c.allreduce.algorithm, ranks, c.allreduce.bcube_base);
    if (!why.empty()) bad("algorithm", why);
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
      {"warmup_start_lr", s.warmup_start_lr},
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
  const auto saved = nlohmann::json::parse(saved_text);
  for (const auto& [key, value] : wanted.items()) {
    const auto it = saved.find(key);
    const std::string had = it == saved.end() ? "nothing" : it->dump();
    if (it == saved.end() || *it != value)
      throw std::invalid_argument(
          "--resume: " + checkpoint.string() + " was written by a run with " + key + " = " + had +
          "; this run asks for " + value.dump() +
          ". Resume with the same settings, or start a new run in another directory");
  }
}

}  // namespace detail

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
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(std::string("model: ") + e.what() + ", or resnet-custom");
  }
}

}  // namespace basin::exec
