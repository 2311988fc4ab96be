// train(): the one-process training loop of the large-minibatch recipe, with everything a long
// run needs around it (progress, log, measured trace, validation, checkpoints, exact resume).
//
// Exact resume rests on three facts: the data order and augmentations are pure functions of
// (seed, epoch, position); the learning rate is a pure function of the step; and the oneDNN
// kernels are deterministic for a fixed thread count. So restoring (weights, buffers, momentum,
// step, loader position) continues the very same sequence of floating-point operations.
#include <basin/train.h>

#include <basin/topology.h>

#include "train_log.h"

#include <algorithm>
#include <cmath>
#include <mutex>
#include <numeric>

namespace basin::exec {
namespace {

using detail::Clock;
using detail::seconds_between;

void check_config(const TrainConfig& c) {
  auto bad = [](const std::string& field, const std::string& expected) {
    throw std::invalid_argument(field + ": expected " + expected);
  };
  if (c.batch < 1) bad("batch", "at least 1, got " + std::to_string(c.batch));
  if (c.world_size != 1)
    bad("world_size", "1: this trainer runs one process (data-parallel ranks are not built yet), "
                      "got " + std::to_string(c.world_size));
  if (!(c.epochs > 0)) bad("epochs", "more than 0, got " + std::to_string(c.epochs));
  if (!(c.schedule.base_lr > 0)) bad("base_lr", "more than 0");
  if (c.schedule.base_batch < 1) bad("base_batch", "at least 1");
  if (c.schedule.warmup_epochs < 0) bad("warmup_epochs", "0 or more");
  if (c.sgd.momentum < 0 || c.sgd.momentum >= 1) bad("momentum", "in [0, 1)");
  if (c.sgd.weight_decay < 0) bad("weight_decay", "0 or more");
  if (!std::is_sorted(c.schedule.milestones.begin(), c.schedule.milestones.end()))
    bad("milestones", "epochs in increasing order");
  if (c.loader_threads < 1) bad("loader_threads", "at least 1");
  if (c.out.empty()) bad("out", "a run directory");
}

// What defines the sequence of steps: a resumed run must agree on all of it.
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

struct Accuracy {
  double loss = 0, top1 = 0, top5 = 0;
};

// Eval-mode pass over a whole split: mean cross-entropy, top-1 and top-k (k = min(5, classes)).
Accuracy evaluate(Net& net, const std::vector<data::Sample>& samples, const data::Transform& t,
                  int threads, std::uint64_t seed) {
  data::LoaderConfig lc{.transform = t, .batch_size = net.batch(), .threads = threads,
                        .seed = seed, .shuffle = false};
  data::Loader loader(samples, lc);
  const int classes = net.network().classes, k = std::min(5, classes);
  const size_t per_image = 3ull * t.output_size() * t.output_size();
  std::vector<float> input(per_image * net.batch());
  double loss = 0;
  long long seen = 0, top1 = 0, topk = 0;
  for (std::int64_t b = 0; b < loader.batches_per_epoch(); ++b) {
    const data::Batch batch = loader.next();
    std::fill(input.begin(), input.end(), 0.f);
    std::copy(batch.pixels.begin(), batch.pixels.end(), input.begin());
    net.forward(input.data(), Mode::eval);
    const std::vector<float> logits = net.logits();
    for (int i = 0; i < batch.size; ++i) {
      const float* row = logits.data() + static_cast<size_t>(i) * classes;
      const int label = batch.labels[i];
      const float top = *std::max_element(row, row + classes);
      double sum = 0;
      int above = 0;  // classes scoring strictly higher than the label (ties favour the label)
      for (int j = 0; j < classes; ++j) {
        sum += std::exp(double(row[j]) - top);
        above += row[j] > row[label];
      }
      loss += std::log(sum) - (double(row[label]) - top);
      top1 += above == 0;
      topk += above < k;
      ++seen;
    }
  }
  if (seen == 0) return {};
  return {loss / seen, double(top1) / seen, double(topk) / seen};
}

}  // namespace

model::Network network_for(const TrainConfig& config, int classes) {
  if (config.model == "resnet-custom") {
    model::ResNetShape shape = config.shape;
    shape.classes = classes;
    return model::resnet(shape);
  }
  for (int depth : {18, 34, 50, 101, 152})
    if (config.model == "resnet" + std::to_string(depth))
      return model::resnet(depth, config.shape.image_size, classes);
  throw std::invalid_argument("model: expected one of resnet18, resnet34, resnet50, resnet101, "
                              "resnet152 or resnet-custom, got '" + config.model + "'");
}

TrainSummary train(const TrainConfig& config, Backend& backend,
                   const std::function<void(const std::string&)>& progress_out) {
  check_config(config);
  const auto started = Clock::now();
  std::mutex say_mutex;
  auto say = [&](const std::string& line) {
    std::lock_guard lock(say_mutex);
    if (progress_out) progress_out(line);
  };

  const data::ImageNetLayout layout = data::open_imagenet(config.data);
  Net net(network_for(config, static_cast<int>(layout.train.classes.size())), backend,
          config.batch);
  std::vector<float> velocity(net.params().size(), 0.f);
  const nlohmann::json recipe = recipe_of(config, net.network(), layout.train.samples.size());

  std::filesystem::create_directories(config.out);
  const auto checkpoint_path = config.out / "checkpoint.basin";
  RunState state{.recipe = recipe.dump()};
  if (config.resume) {
    if (!std::filesystem::exists(checkpoint_path))
      throw std::invalid_argument("--resume: no checkpoint at " + checkpoint_path.string());
    const RunState saved = read_checkpoint(checkpoint_path, net, velocity);
    check_same_recipe(saved.recipe, recipe, checkpoint_path);
    state.step = saved.step;
    state.position = saved.position;
    say("resumed from " + checkpoint_path.string() + " at step " + std::to_string(state.step));
  } else {
    if (std::filesystem::exists(checkpoint_path))
      throw std::invalid_argument("out: " + checkpoint_path.string() +
                                  " exists; pass --resume to continue that run, or choose "
                                  "another directory");
    net.init({.seed = config.seed, .zero_init_residual = config.zero_init_residual});
  }

  const int image = net.network().image_size;
  data::Transform train_t{.kind = data::Transform::Kind::train, .train = config.augment};
  train_t.train.output = image;
  data::Transform val_t{.kind = data::Transform::Kind::val};
  val_t.val.crop = image;
  // ImageNet's 256 for 224, kept in proportion for other sizes.
  if (config.val_resize <= 0) val_t.val.resize = (image * 8 + 6) / 7;
  else if (config.val_resize < image)
    throw std::invalid_argument("val_resize: expected at least the image size " +
                                std::to_string(image) + ", got " + std::to_string(config.val_resize));
  else val_t.val.resize = config.val_resize;
  data::LoaderConfig lc{.transform = train_t, .batch_size = config.batch,
                        .threads = config.loader_threads, .seed = config.seed,
                        .shuffle = true, .drop_last = true,
                        .warn = [&](const std::string& m) { say("warning: " + m); }};
  data::Loader loader(layout.train.samples, lc, state.position);

  const long long per_epoch = loader.batches_per_epoch();
  const long long total = static_cast<long long>(std::ceil(config.epochs * per_epoch - 1e-9));
  const long long stop = config.stop_after >= 0 ? std::min(total, config.stop_after) : total;
  const long long global_batch = 1LL * config.batch * config.world_size;
  const long long whole_epochs = (total + per_epoch - 1) / per_epoch;

  detail::JsonlLog log(config.out / "log.jsonl", config.resume ? state.step : -1);
  TrainSummary summary{.steps = state.step, .total_steps = total};
  if (state.step == 0)
    say("training " + net.network().name + " (" + std::to_string(net.params().size()) +
        " parameters) on " + std::to_string(layout.train.samples.size()) + " images of " +
        std::to_string(layout.train.classes.size()) + " classes: " + std::to_string(total) +
        " steps of " + std::to_string(global_batch) + " images, peak lr " +
        std::to_string(scaled_lr(config.schedule, global_batch)));

  auto checkpoint = [&] {
    write_checkpoint(checkpoint_path, net, velocity, state);
  };
  auto validate = [&](long long epoch, double train_loss, double images_per_s) {
    EpochSummary e{.epoch = epoch, .train_loss = train_loss, .val_loss = NAN, .top1 = NAN,
                   .top5 = NAN, .images_per_s = images_per_s};
    if (config.validate) {
      const Accuracy a = evaluate(net, layout.val.samples, val_t, config.loader_threads, config.seed);
      e.val_loss = a.loss, e.top1 = a.top1, e.top5 = a.top5;
      log.write({{"type", "val"}, {"step", state.step}, {"epoch", epoch + 1}, {"loss", a.loss},
                 {"top1", a.top1}, {"top5", a.top5}});
      char buf[160];
      std::snprintf(buf, sizeof buf, "epoch %lld/%lld: train loss %.4f, val loss %.4f, top-1 %.2f%%, top-5 %.2f%%",
                    epoch + 1, whole_epochs, train_loss, a.loss, 100 * a.top1, 100 * a.top5);
      say(buf);
    }
    summary.epochs.push_back(e);
  };

  double epoch_loss = 0, epoch_images = 0, epoch_seconds = 0;
  long long epoch_steps = 0;
  double run_seconds = 0;
  long long run_steps = 0;
  auto last_say = Clock::now();
  while (state.step < stop) {
    const long long step = state.step;
    const bool tracing = step == config.trace_step || (config.trace_step >= stop && step == stop - 1);
    std::vector<detail::MeasuredSpan> spans;
    const auto t0 = Clock::now();
    auto mark = [&](const std::string& name, const std::string& lane, Clock::time_point a,
                    Clock::time_point b) {
      if (tracing) spans.push_back({name, lane, seconds_between(t0, a), seconds_between(t0, b)});
    };
    const data::Batch batch = loader.next();
    const auto t1 = Clock::now();
    mark("wait for data", "data", t0, t1);

    const double epoch_f = double(step) / per_epoch;
    const double lr = learning_rate(config.schedule, global_batch, epoch_f, config.epochs);
    net.forward(batch.pixels.data(), Mode::training);
    const double loss = net.loss(batch.labels.data(), static_cast<double>(global_batch));
    const auto t2 = Clock::now();
    mark("forward + loss", "compute", t1, t2);
    if (!std::isfinite(loss)) {
      log.write({{"type", "diverged"}, {"step", step}, {"loss", std::isnan(loss) ? "nan" : "inf"}});
      throw Diverged("the loss is " + std::string(std::isnan(loss) ? "NaN" : "infinite") +
                     " at step " + std::to_string(step) + " (epoch " + std::to_string(step / per_epoch + 1) +
                     ", lr " + std::to_string(lr) + "); stopped before applying it. " +
                     (std::filesystem::exists(checkpoint_path)
                          ? "The last good checkpoint is " + checkpoint_path.string() + "."
                          : "No checkpoint was written yet."));
    }
    auto layer_start = t2;
    net.backward([&](int backward_step, long long) {
      if (!tracing) return;
      const auto now = Clock::now();
      std::string name = "backward";
      for (const ParamInfo& p : net.param_info())
        if (p.backward_step == backward_step) {
          name = "backward " + net.network().layers[p.layer].name;
          break;
        }
      mark(name, "compute", layer_start, now);
      layer_start = now;
    });
    const auto t3 = Clock::now();
    mark("end of backward", "compute", layer_start, t3);
    sgd_step(net, velocity, config.sgd, lr);
    const auto t4 = Clock::now();
    mark("optimizer", "compute", t3, t4);

    state.step = step + 1;
    state.position = loader.position();
    const double step_s = seconds_between(t0, t4), wait_s = seconds_between(t0, t1);
    run_seconds += step_s, ++run_steps;
    epoch_loss += loss, epoch_images += batch.size, epoch_seconds += step_s, ++epoch_steps;
    log.write({{"step", step}, {"epoch", epoch_f}, {"loss", loss}, {"lr", lr},
               {"images_per_s", batch.size / step_s}, {"step_s", step_s},
               {"compute_s", step_s - wait_s}, {"data_wait_s", wait_s}});
    if (tracing)
      topo::write_file_atomically(
          (config.out / "trace.json").string(),
          detail::measured_trace(spans, {{"step", step}, {"batch", config.batch},
                                         {"model", net.network().name}, {"measured", true}}));

    const bool epoch_end = state.step % per_epoch == 0 || state.step == total;
    const auto now = Clock::now();
    if (epoch_end || seconds_between(last_say, now) >= config.progress_every_s) {
      last_say = now;
      const double eta = (stop - state.step) * run_seconds / run_steps;
      char buf[200];
      std::snprintf(buf, sizeof buf,
                    "epoch %lld/%lld step %lld/%lld loss %.4f lr %.4g %.1f img/s data wait %.0f%% ETA %s",
                    step / per_epoch + 1, whole_epochs, state.step, total, loss, lr,
                    epoch_images / epoch_seconds, 100 * wait_s / step_s,
                    detail::clock_text(eta).c_str());
      say(buf);
    }
    if (epoch_end) {
      validate((state.step - 1) / per_epoch, epoch_loss / epoch_steps, epoch_images / epoch_seconds);
      epoch_loss = epoch_images = epoch_seconds = 0, epoch_steps = 0;
      checkpoint();
    } else if ((config.checkpoint_every > 0 && state.step % config.checkpoint_every == 0) ||
               state.step == stop) {
      checkpoint();
    }
  }
  summary.steps = state.step;
  summary.finished = state.step >= total;
  summary.skipped_files = static_cast<std::int64_t>(loader.stats().skipped_files.size());
  summary.seconds = seconds_between(started, Clock::now());
  if (summary.finished) save_state(net, config.out / "weights");

  nlohmann::json epochs = nlohmann::json::array();
  for (const EpochSummary& e : summary.epochs)
    epochs.push_back({{"epoch", e.epoch + 1}, {"train_loss", e.train_loss},
                      {"val_loss", std::isfinite(e.val_loss) ? nlohmann::json(e.val_loss) : nlohmann::json()},
                      {"top1", std::isfinite(e.top1) ? nlohmann::json(e.top1) : nlohmann::json()},
                      {"top5", std::isfinite(e.top5) ? nlohmann::json(e.top5) : nlohmann::json()},
                      {"images_per_s", e.images_per_s}});
  topo::write_file_atomically(
      (config.out / "summary.json").string(),
      nlohmann::json{{"format", "basin.train-summary/1"}, {"steps", summary.steps},
                     {"total_steps", total}, {"finished", summary.finished},
                     {"skipped_files", summary.skipped_files}, {"seconds", summary.seconds},
                     {"epochs", epochs}, {"recipe", recipe}}
              .dump(1) + "\n");
  return summary;
}

}  // namespace basin::exec
