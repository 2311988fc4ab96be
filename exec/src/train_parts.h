// The pieces of train() that are not the loop itself: checking and fingerprinting a config,
// validation, and the gradient path between backward and the optimizer. Internal to exec.
#pragma once

#include <basin/train.h>

#include "gradient_transport.h"
#include "train_log.h"

#include <nlohmann/json.hpp>

#include <memory>
#include <optional>

namespace basin::exec::detail {

// Throws std::invalid_argument naming the field and what was expected.
void check_config(const TrainConfig& config);
// What defines the sequence of steps; a resumed run must agree on all of it.
nlohmann::json recipe_of(const TrainConfig& config, const model::Network& net, size_t train_images);
// What the schedule does within `epochs` that its numbers alone hide: a warmup longer than the
// run never reaches the peak, and step decay whose milestones all lie past the run never decays.
std::string schedule_caveats(const LrSchedule& s, long long global_batch, double epochs);
// The schedule's first line, e.g. "peak lr 3.2 after 5 epochs of warmup from 0.1", or, where
// the peak is at or below the start, "peak lr 0.0125 from the first step (no warmup: ...)".
std::string describe_warmup(const LrSchedule& s, long long global_batch);
// Throws std::invalid_argument naming the first field that differs.
void check_same_recipe(const std::string& saved, const nlohmann::json& wanted,
                       const std::filesystem::path& checkpoint);

struct Accuracy {
  double loss = 0, top1 = 0, top5 = 0;
  long long images = 0;  // validated, over every rank: readable files, each once
};

// From backward to the optimizer: sums micro-batch gradients in one process (with the backend's
// flat operations, so on the device for a GPU backend), and across ranks allreduces buckets of
// the flat gradient array, starting each as soon as backward has finished it (overlap) or after
// backward, through the transport that fits the backend (gradient_transport.h).
class GradientSync {
 public:
  GradientSync(Net& net, const TrainConfig& config);
  ~GradientSync();
  // Runs backward for micro-batch `micro` of `micros`, then communicates what is due.
  // `on_layer` is called after each layer's backward (for the trace).
  void backward(int micro, int micros, const std::function<void(int step)>& on_layer);
  // Blocks until every bucket is reduced; returns the seconds spent blocked (exposed
  // communication) and appends one span per bucket, relative to `t0`, to `spans` if given.
  double wait(Clock::time_point t0, std::vector<MeasuredSpan>* spans);
  // The sum over ranks of up to 4 numbers (losses, counts); identity with one rank. Always
  // through the same buffer: the comm layer caches Gloo's algorithm per buffer address, and a
  // fresh vector could reuse an old address on one rank and not on another, making the ranks
  // disagree on which collective runs.
  void sum(std::vector<float>& values, const char* what = "summing the loss");
  comm::Communicator* comm() const { return config_.comm; }
  // How the gradients travel between ranks, for the run's first lines ("Gloo's hierarchical
  // allreduce (2 servers of 2 ranks, halving_doubling between), fp32 on the wire"); empty
  // with one rank.
  const std::string& describe() const { return path_; }
  // Where the training loop is, for communication errors: "step 12 (epoch 2)".
  void set_place(std::string place) { place_ = std::move(place); }

 private:
  void backward_and_submit(int micro, int micros, const std::function<void(int step)>& on_layer);
  // Runs `f`, adding the loop's place and `doing` to a communication error's message.
  template <class F>
  decltype(auto) saying(const char* doing, F&& f);

  std::string place_ = "before the first step";
  std::string path_;
  Net& net_;
  const TrainConfig& config_;
  long long bucket_floats_ = 0, submitted_ = 0, summed_ = 0;
  // The micro-batches' running sum, in the backend's memory (device memory on a GPU).
  std::shared_ptr<float> accumulated_;
  std::vector<float> scalars_ = std::vector<float>(4);
  std::unique_ptr<GradientTransport> transport_;
};

// Eval-mode pass over a split, sharded across the ranks (when there are several) and summed
// through `sync`: mean cross-entropy, top-1 and top-k (k = min(5, classes)). raw_input: the
// loader only decodes and the backend stages the input (TrainConfig::input_stage).
Accuracy evaluate(Net& net, const std::vector<data::Sample>& samples, const data::Transform& t,
                  int threads, std::uint64_t seed, GradientSync& sync, bool raw_input = false);

}  // namespace basin::exec::detail
