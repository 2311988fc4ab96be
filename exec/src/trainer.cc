// train(): the training loop of the large-minibatch recipe, on one process or as one rank of
// many, with everything a long run needs around it (progress, log, measured trace, validation,
// checkpoints, exact resume).
//
// Exact resume rests on three facts: the data order and augmentations are pure functions of
// (seed, epoch, position); the learning rate is a pure function of the step; and the oneDNN
// kernels are deterministic for a fixed thread count. So restoring (weights, buffers, momentum,
// step, loader position) continues the very same sequence of floating-point operations. With
// dynamic loss scaling the scale's state (loss_scale.h) is part of that and rides along.
#include <basin/train.h>

#include <basin/topology.h>

#include "train_parts.h"

#include <algorithm>
#include <cmath>
#include <mutex>
#include <numeric>

namespace basin::exec {

using detail::Clock;
using detail::loss_for_log;
using detail::seconds_between;

TrainSummary train(const TrainConfig& config, Backend& backend,
                   const std::function<void(const std::string&)>& progress_out) {
  detail::check_config(config);
  const auto started = Clock::now();
  const int rank = config.comm ? config.comm->rank() : 0;
  const int ranks = config.comm ? config.comm->world_size() : 1;
  const bool lead = rank == 0;  // writes the files and the progress
  std::mutex say_mutex;
  auto say = [&](const std::string& line) {
    std::lock_guard lock(say_mutex);
    if (progress_out && (lead || line.starts_with("warning")))
      progress_out(ranks > 1 && !lead ? "rank " + std::to_string(rank) + ": " + line : line);
  };

  const data::ImageNetLayout layout = data::open_imagenet(config.data, config.validate);
  Net net(network_for(config, static_cast<int>(layout.train.classes.size())), backend,
          config.batch);
  // Momentum sits beside the parameters, in the backend's memory.
  const std::shared_ptr<float> velocity_memory =
      backend.alloc_flat(static_cast<long long>(net.params().size()));
  const std::span<float> velocity(velocity_memory.get(), net.params().size());
  const nlohmann::json recipe = detail::recipe_of(config, net.network(), layout.train.samples.size());

  const auto checkpoint_path = config.out / "checkpoint.basin";
  RunState state{.recipe = recipe.dump()};
  const LossScaleConfig& scaling = config.loss_scale;
  LossScaleState scaler = initial_loss_scale(scaling);
  if (backend.precision() == Precision::fp16 && !scaling.enabled)
    say("warning: fp16 without dynamic loss scaling: gradients below 2^-24 flush to zero");
  // Each rank's batch-norm running statistics are its own (it normalized its own batches), and
  // the checkpoint holds rank 0's: every other rank keeps its own beside it, named by the step,
  // so that a resumed run validates as the uninterrupted one does.
  auto own_statistics = [&](long long step) {
    return config.out / ("running_stats.rank" + std::to_string(rank) + ".step" + std::to_string(step) + ".npy");
  };
  if (config.resume) {
    if (!std::filesystem::exists(checkpoint_path))
      throw std::invalid_argument("--resume: no checkpoint at " + checkpoint_path.string());
    const RunState saved = read_checkpoint(checkpoint_path, net, velocity);
    detail::check_same_recipe(saved.recipe, recipe, checkpoint_path);
    if (!lead) {
      const auto own = own_statistics(saved.step);
      if (std::filesystem::exists(own))
        net.from_host(read_npy(own, nullptr), net.buffers());
      else
        say("warning: no " + own.string() + ": this rank resumes with rank 0's batch-norm running statistics");
      // This rank's files of other steps are a stopped session's: the run goes on from this one.
      const std::string mine = "running_stats.rank" + std::to_string(rank) + ".step";
      std::error_code ec;
      for (const auto& e : std::filesystem::directory_iterator(config.out, ec))
        if (const std::string name = e.path().filename().string();
            name.starts_with(mine) && name.ends_with(".npy") && e.path() != own)
          std::filesystem::remove(e.path(), ec);
    }
    state.step = saved.step;
    state.position = saved.position;
    state.epoch = saved.epoch;
    state.seconds = saved.seconds;
    state.validation_pending = saved.validation_pending;
    // A checkpoint of a run without scaling (or of an older basin) starts at the initial scale.
    if (scaling.enabled && saved.loss_scale) scaler = *saved.loss_scale;
    say("resumed from " + checkpoint_path.string() + " at step " + std::to_string(state.step));
  } else {
    if (std::filesystem::exists(checkpoint_path))
      throw std::invalid_argument("out: " + checkpoint_path.string() +
                                  " exists; pass --resume to continue that run, or choose "
                                  "another directory");
    // A run stopped before its first checkpoint leaves only its log: starting over would
    // overwrite what it measured.
    if (const auto log_path = config.out / "log.jsonl";
        std::filesystem::exists(log_path) && std::filesystem::file_size(log_path) > 0)
      throw std::invalid_argument("out: " + log_path.string() +
                                  " holds an earlier run's log (stopped before its first checkpoint, so "
                                  "it cannot be resumed); choose another directory or remove it");
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

  // One loader per micro-batch, each the shard of one virtual rank; all must agree on the
  // number of steps in an epoch or the ranks would drift apart.
  const int micros = config.micro_batches, shards = ranks * micros;
  const auto images = static_cast<std::int64_t>(layout.train.samples.size());
  const std::int64_t per_epoch = data::shard_size(images, shards - 1, shards) / config.batch;
  const std::int64_t smallest = data::shard_size(images, shards - 1, shards),
                     largest = data::shard_size(images, 0, shards);
  const std::string split = std::to_string(images) + " training images in " + std::to_string(shards) +
                            (shards == 1 ? " shard" : " shards (ranks x micro-batches)");
  if (per_epoch < 1)
    throw std::invalid_argument("batch: expected at most " + std::to_string(smallest) + " (" + split +
                                " leave " + std::to_string(smallest) + " to a shard, which must hold " +
                                "a whole batch), got " + std::to_string(config.batch));
  if (largest / config.batch != per_epoch)
    throw std::invalid_argument(
        "batch: expected a batch that gives every shard the same number of steps: " + split +
        " leave " + std::to_string(smallest) + " to " + std::to_string(largest) + " to a shard, " +
        std::to_string(per_epoch) + " or " + std::to_string(largest / config.batch) +
        " whole batches of " + std::to_string(config.batch) + ", and ranks that take different numbers " +
        "of steps would wait for each other forever; got " + std::to_string(config.batch));
  // The input stage in the backend (raw batches) or in the loader's workers (float batches).
  const bool raw_input = config.input_stage == InputStage::device ||
                         (config.input_stage == InputStage::automatic && backend.on_device());
  const data::LoaderOutput output = raw_input ? data::LoaderOutput::raw : data::LoaderOutput::normalized;
  std::vector<std::unique_ptr<data::Loader>> loaders;
  for (int j = 0; j < micros; ++j)
    loaders.push_back(std::make_unique<data::Loader>(
        layout.train.samples,
        data::LoaderConfig{.transform = train_t, .output = output, .batch_size = config.batch,
                           .threads = config.loader_threads, .seed = config.seed,
                           .shuffle = true, .rank = rank * micros + j, .world_size = shards,
                           .drop_last = true,
                           .warn = [&](const std::string& m) { say("warning: " + m); }},
        state.position));

  const long long total = static_cast<long long>(std::ceil(config.epochs * per_epoch - 1e-9));
  const long long stop = config.stop_after >= 0 ? std::min(total, config.stop_after) : total;
  const long long batch_all = global_batch(config);
  const long long whole_epochs = (total + per_epoch - 1) / per_epoch;
  if (state.step > total)
    throw std::invalid_argument("epochs: at least the " + std::to_string(state.step) + " steps the checkpoint has run (" +
                                std::to_string(total) + " steps make this run's epochs)");

  // A finished run resumed: nothing to train, and its files stand as they are (its summary counts
  // what this session, which runs no step, would not: the files its loaders skipped). A run
  // stopped short (--stop-after) and resumed with exactly the steps it had run (fewer epochs than
  // it first had) has no step left either, but was never finished: its weights and summary are
  // written below, after the loop that runs no step, and its end validated unless it fell on an
  // epoch's end, where the loop validated it already. Rank 0 decides from its summary (the other
  // ranks' hosts need not share the directory) and tells the others through the store.
  // A checkpoint written before its epoch's validation (interrupted there) is validated first,
  // unless the run goes on through that epoch (an end inside one, extended), where the
  // uninterrupted run drops that validation too.
  const bool validate_first = state.validation_pending && (state.step % per_epoch == 0 || state.step == total);
  bool end_unvalidated = false;
  bool rewriting_summary = false;  // rank 0 alone: the other ranks have returned
  if (config.resume && state.step == total) {
    const auto before = lead ? detail::read_summary(config.out / "summary.json") : std::nullopt;
    // A summary of this run's end, not of a shorter run this one extended (killed after its
    // last checkpoint, it left the shorter run's summary standing).
    const bool stale = before && (before->total_steps != total || before->steps != state.step);
    // 0: finished before; 1: ends now at an epoch's end; 2: ends now inside an epoch. A run
    // interrupted in its last validation never wrote its summary, so it ends now too.
    char ends_now =
        (before && (!before->finished || stale)) || validate_first ? (state.step % per_epoch ? 2 : 1) : 0;
    if (config.comm && config.comm->world_size() > 1)
      ends_now = config.comm->share("resume-ends-at-" + std::to_string(state.step), {ends_now}).at(0);
    end_unvalidated = ends_now == 2 && !validate_first;
    if (ends_now == 0) {
      say("the run in " + config.out.string() + " had already finished (step " + std::to_string(total) + " of " +
          std::to_string(total) + "); nothing to do");
      // Only rank 0 writes the run's files; the others have nothing to do. Without a readable
      // summary (a run killed after its last checkpoint) rank 0 writes it again below, before
      // the gradient communicator, whose setup (NCCL's) the others would not join.
      if (!lead) return TrainSummary{.steps = state.step, .total_steps = total, .finished = true};
      if (before) return *before;
      rewriting_summary = true;
    } else {
      say("the run in " + config.out.string() + " stopped at step " + std::to_string(total) + ", which now ends it: " +
          ((end_unvalidated || validate_first) && config.validate ? "validating and writing its weights"
                                                                   : "writing its weights"));
    }
  }
  if (config.resume && stop <= state.step && state.step < total)
    say("--stop-after " + std::to_string(config.stop_after) + ": the checkpoint is at step " +
        std::to_string(state.step) + " already; no step to run");
  // The run directory is made only now, when every check that can refuse the run has passed:
  // a refused run leaves nothing behind.
  if (lead) std::filesystem::create_directories(config.out);
  std::optional<detail::JsonlLog> log;
  if (lead)
    // The record at the checkpoint's step stays where that epoch is done: at an epoch's end
    // validated before the checkpoint, and at a finished run's end, which nothing redoes. A
    // pending validation writes its record again; a run extended through its partial last
    // epoch records that epoch again when whole.
    log.emplace(config.out / "log.jsonl", config.resume ? state.step : -1,
                /*keep_epoch_record_at_step=*/(state.step % per_epoch == 0 && !state.validation_pending) ||
                    rewriting_summary);
  auto write_log = [&](const nlohmann::json& record) {
    if (log) log->write(record);
  };
  TrainSummary summary{.steps = state.step, .total_steps = total};
  // The epochs of the sessions before a resume, from their epoch records ("val", or "epoch"
  // without validation), so that the summary describes the whole run.
  if (log)
    for (const nlohmann::json& v : log->earlier_epochs()) {
      auto number = [&](const char* key) {
        return v.contains(key) && v[key].is_number() ? v[key].get<double>() : NAN;
      };
      summary.epochs.push_back({.epoch = static_cast<long long>(number("epoch")) - 1,
                                .train_loss = number("train_loss"), .val_loss = number("loss"),
                                .top1 = number("top1"), .top5 = number("top5"),
                                .images_per_s = number("images_per_s")});
    }
  if (state.step == 0)
    say("training " + net.network().name + " (" + std::to_string(net.params().size()) +
        " parameters) on " + std::to_string(images) + " images of " +
        std::to_string(layout.train.classes.size()) + " classes: " + std::to_string(total) +
        " steps of " + std::to_string(batch_all) + " images (" + std::to_string(ranks) +
        " ranks x " + std::to_string(micros) + " micro-batches x " + std::to_string(config.batch) +
        "), " + detail::describe_warmup(config.schedule, batch_all) +
        (raw_input ? ", input stage in the backend" : ", input stage in the loader") + "; each rank on " +
        backend.name() + detail::schedule_caveats(config.schedule, batch_all, config.epochs));

  const double earlier_seconds = state.seconds;  // of the sessions before this one
  // The run's end: its counts, and rank 0's weights (of a finished run) and summary.
  auto finish = [&] {
    summary.steps = state.step;
    summary.finished = state.step >= total;
    summary.skipped_steps = scaler.skipped_steps;
    for (const auto& l : loaders)
      summary.skipped_files += static_cast<std::int64_t>(l->stats().skipped_files.size());
    summary.seconds = earlier_seconds + seconds_between(started, Clock::now());
    if (!lead) return summary;
    // Every micro-batch is one training forward of every batch norm, as torch counts them.
    if (summary.finished) save_state(net, config.out / "weights", state.step * micros);
    detail::write_summary(config.out / "summary.json", summary, recipe);
    return summary;
  };
  if (rewriting_summary) return finish();

  detail::GradientSync sync(net, config);
  if (state.step == 0 && !sync.describe().empty()) say("gradients: " + sync.describe());
  // The last two steps whose statistics this rank wrote: the older goes only once a newer
  // checkpoint follows the newer, so rank 0's checkpoint, written at about the same time, always
  // finds its step's file (a failed or killed write leaves the one before).
  std::vector<long long> statistics_written;
  if (config.resume) statistics_written.push_back(state.step);
  auto checkpoint = [&] {
    if (scaling.enabled) state.loss_scale = scaler;
    state.seconds = earlier_seconds + seconds_between(started, Clock::now());
    if (lead) {
      write_checkpoint(checkpoint_path, net, velocity, state);
    } else if (statistics_written.empty() || statistics_written.back() != state.step) {
      // Another host's rank may not share rank 0's directory: make it, and lose only the
      // statistics (said, not fatal) where it cannot be written.
      try {
        std::filesystem::create_directories(config.out);
        const std::vector<float> own = net.to_host(net.buffers());
        write_npy(own_statistics(state.step), own, {static_cast<long long>(own.size())});
        statistics_written.push_back(state.step);
        if (statistics_written.size() > 2) {
          std::filesystem::remove(own_statistics(statistics_written.front()));
          statistics_written.erase(statistics_written.begin());
        }
      } catch (const std::exception& e) {
        say(std::string("warning: this rank's batch-norm running statistics not kept: ") + e.what());
      }
    }
  };
  auto validate = [&](long long epoch, double train_loss, double images_per_s) {
    EpochSummary e{.epoch = epoch, .train_loss = train_loss, .val_loss = NAN, .top1 = NAN,
                   .top5 = NAN, .images_per_s = images_per_s};
    if (!config.validate)  // the epoch's record all the same, for a resumed run's summary
      write_log({{"type", "epoch"}, {"step", state.step}, {"epoch", epoch + 1},
                 {"train_loss", loss_for_log(train_loss)}, {"images_per_s", images_per_s}});
    if (config.validate) {
      const detail::Accuracy a = detail::evaluate(net, layout.val.samples, val_t,
                                                  config.loader_threads, config.seed, sync, raw_input);
      e.val_loss = a.loss, e.top1 = a.top1, e.top5 = a.top5;
      write_log({{"type", "val"}, {"step", state.step}, {"epoch", epoch + 1}, {"loss", a.loss},
                 {"top1", a.top1}, {"top5", a.top5}, {"val_images", a.images},
                 {"train_loss", loss_for_log(train_loss)}, {"images_per_s", images_per_s}});
      char buf[160];
      std::snprintf(buf, sizeof buf, "epoch %lld/%lld: train loss %.4f, val loss %.4f, top-1 %.2f%%, top-5 %.2f%%",
                    epoch + 1, whole_epochs, train_loss, a.loss, 100 * a.top1, 100 * a.top5);
      say(buf);
    }
    summary.epochs.push_back(e);
  };

  // The epoch in progress, carried through checkpoints (state.epoch) so that a resume in its
  // middle reports it whole.
  double& epoch_loss = state.epoch.loss_sum;
  double& epoch_images = state.epoch.images;
  double& epoch_seconds = state.epoch.seconds;
  long long& epoch_steps = state.epoch.finite_steps;  // with a finite loss, for the epoch's mean
  long long nonfinite_losses = 0;  // steps in a row whose loss was not finite
  // With loss scaling, the running statistics before each step: a step skipped for a
  // non-finite loss puts them back, since its overflowed forward folded NaN or Inf into them
  // (skipping leaves weights and momentum alone; NaN statistics would spoil every later eval).
  const auto buffer_count = static_cast<long long>(net.buffers().size());
  const std::shared_ptr<float> saved_buffers =
      scaling.enabled ? backend.alloc_flat(buffer_count) : nullptr;
  // Validates (or records) the epoch that ends at this step, from its sums so far; an epoch's
  // sums start over after its end, but not after a run's end inside an epoch, which a longer
  // resumed run goes on through.
  auto end_epoch = [&] {
    validate((state.step - 1) / per_epoch, epoch_steps > 0 ? epoch_loss / epoch_steps : NAN,
             epoch_seconds > 0 ? epoch_images / epoch_seconds : 0.0);
    if (state.step % per_epoch == 0) epoch_loss = epoch_images = epoch_seconds = 0, epoch_steps = 0;
  };
  if (validate_first) {
    say("the checkpoint at step " + std::to_string(state.step) +
        " was written before its epoch's validation, which was interrupted: validating now");
    end_epoch();
    state.validation_pending = false;
    checkpoint();
  } else {
    // Nothing pending, or an end inside an epoch that this run goes on through (uninterrupted,
    // it drops that validation too).
    state.validation_pending = false;
  }
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
    const double epoch_f = double(step) / per_epoch;
    sync.set_place("step " + std::to_string(step) + " (epoch " + std::to_string(step / per_epoch + 1) + ")");
    const double lr = learning_rate(config.schedule, batch_all, epoch_f, config.epochs);
    double wait_s = 0, local_loss = 0;
    int step_images = 0;
    if (saved_buffers) backend.copy_flat(saved_buffers.get(), net.buffers().data(), buffer_count);
    for (int j = 0; j < micros; ++j) {
      const auto d0 = Clock::now();
      const data::Batch batch = loaders[j]->next();
      const auto d1 = Clock::now();
      wait_s += seconds_between(d0, d1);
      mark("wait for data", "data", d0, d1);
      if (raw_input) net.forward(batch, train_t.normalization, Mode::training);
      else net.forward(batch.pixels.data(), Mode::training);
      local_loss += net.loss(batch.labels.data(), static_cast<double>(batch_all), scaler.scale);
      step_images += batch.size;
      const auto f1 = Clock::now();
      mark("forward + loss", "compute", d1, f1);
      auto layer_start = f1;
      sync.backward(j, micros, [&](int backward_step) {
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
      mark("end of backward", "compute", layer_start, Clock::now());
    }
    const double comm_s = sync.wait(t0, tracing ? &spans : nullptr);
    // The global loss, which every rank needs to stop together when it diverges.
    std::vector<float> loss_sum{static_cast<float>(local_loss)};
    sync.sum(loss_sum);
    const double loss = loss_sum[0];
    // With dynamic loss scaling a non-finite loss is an overflow like a gradient's (an fp16
    // forward that overflowed into Inf activations): torch's GradScaler skips that step and backs
    // off the scale, and so does this loop (below). Skipped steps leave the weights as they were,
    // so a loss that stays non-finite for kMaxNonfiniteLosses batches in a row is these weights
    // overflowing on every batch, which no scale cures (it multiplies only the gradients): that,
    // or any non-finite loss without scaling, is divergence.
    constexpr long long kMaxNonfiniteLosses = 16;
    const bool loss_finite = std::isfinite(loss);
    nonfinite_losses = loss_finite ? 0 : nonfinite_losses + 1;
    if (!loss_finite && (!scaling.enabled || nonfinite_losses >= kMaxNonfiniteLosses)) {
      write_log({{"type", "diverged"}, {"step", step}, {"loss", loss_for_log(loss)}});
      throw Diverged("the loss is " + std::string(std::isnan(loss) ? "NaN" : "infinite") +
                     " at step " + std::to_string(step) + " (epoch " + std::to_string(step / per_epoch + 1) +
                     ", lr " + std::to_string(lr) +
                     (scaling.enabled ? ", " + std::to_string(nonfinite_losses) + " steps in a row" : "") +
                     "); stopped before applying it. " +
                     (std::filesystem::exists(checkpoint_path)
                          ? "The last good checkpoint is " + checkpoint_path.string() + "."
                          : "No checkpoint was written yet."));
    }
    const auto t3 = Clock::now();
    if (config.after_gradients) config.after_gradients(step, net);
    // Every rank unscales the same summed gradients, so all agree on skipping a step.
    const double step_scale = scaler.scale;
    bool apply = true;
    if (scaling.enabled) {
      const std::span<float> grads = net.grads();
      const bool finite = backend.unscale_gradients(grads.data(), static_cast<long long>(grads.size()),
                                                    static_cast<float>(1 / step_scale)) &&
                          loss_finite;
      apply = update_loss_scale(scaler, scaling, finite);
      if (!loss_finite)
        backend.copy_flat(net.buffers().data(), saved_buffers.get(), buffer_count);
      if (!apply) {
        char buf[160];
        std::snprintf(buf, sizeof buf,
                      "step %lld: %s overflowed at loss scale %g; step skipped, scale now %g",
                      step, loss_finite ? "a gradient" : "the loss", step_scale, scaler.scale);
        say(buf);
      }
    }
    if (apply) sgd_step(net, velocity, config.sgd, lr);
    const auto t4 = Clock::now();
    mark(apply ? "optimizer" : "optimizer (step skipped)", "compute", t3, t4);

    state.step = step + 1;
    state.position = loaders[0]->position();
    const double step_s = seconds_between(t0, t4);
    const double step_images_all = double(step_images) * ranks;
    run_seconds += step_s, ++run_steps;
    // A skipped step's non-finite loss is left out of the epoch's mean (it would make it NaN).
    if (loss_finite) epoch_loss += loss, ++epoch_steps;
    epoch_images += step_images_all, epoch_seconds += step_s;
    nlohmann::json record = {{"step", step}, {"epoch", epoch_f}, {"loss", loss_for_log(loss)}, {"lr", lr},
                             {"images_per_s", step_images_all / step_s}, {"step_s", step_s},
                             {"compute_s", step_s - wait_s - comm_s}, {"data_wait_s", wait_s},
                             {"comm_wait_s", comm_s}};
    if (scaling.enabled) {
      record["loss_scale"] = step_scale;  // the scale this step's backward ran with
      if (!apply) record["skipped"] = true;
    }
    write_log(record);
    if (tracing && lead)
      topo::write_file_atomically(
          (config.out / "trace.json").string(),
          detail::measured_trace(spans, {{"step", step}, {"batch", config.batch},
                                         {"ranks", ranks}, {"micro_batches", micros},
                                         {"model", net.network().name}, {"measured", true}}));

    const bool epoch_end = state.step % per_epoch == 0 || state.step == total;
    const auto now = Clock::now();
    if (epoch_end || seconds_between(last_say, now) >= config.progress_every_s) {
      last_say = now;
      const double eta = (stop - state.step) * run_seconds / run_steps;
      char buf[220];
      std::snprintf(buf, sizeof buf,
                    "epoch %lld/%lld step %lld/%lld loss %.4f lr %.4g %.1f img/s this epoch; last step: "
                    "data wait %.0f%%, comm wait %.0f%%; ETA %s",
                    step / per_epoch + 1, whole_epochs, state.step, total, loss, lr,
                    epoch_images / epoch_seconds, 100 * wait_s / step_s, 100 * comm_s / step_s,
                    detail::clock_text(eta).c_str());
      say(buf);
    }
    if (epoch_end) {
      // Written before the validation too, which on CPU ranks can outlast many steps, so an
      // interrupt during it costs no training: a resume from it validates first.
      if (config.validate) {
        state.validation_pending = true;
        checkpoint();
        state.validation_pending = false;
      }
      end_epoch();
      checkpoint();
    } else if ((config.checkpoint_every > 0 && state.step % config.checkpoint_every == 0) ||
               state.step == stop) {
      checkpoint();
    }
  }
  if (end_unvalidated) {
    end_epoch();
    checkpoint();
  }
  return finish();
}

}  // namespace basin::exec
