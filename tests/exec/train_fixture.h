// What the data-parallel tests share (CPU, device double and GPU): a small synthetic run every
// test varies, ranks as threads meeting through an in-process store, and how far apart two
// sets of weights are.
#pragma once

#include <basin/train.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "../catch.h"
#include "../temp_dir.h"

namespace basin::exec::test {

// A synthetic dataset of 10 classes in a fresh directory and three steps of a small ResNet on
// it (400 images: more than three steps need, and quick to write).
struct SmallRun {
  basin::test::TempDir dir;
  TrainConfig c;
  explicit SmallRun(const std::string& name) : dir(name) {
    data::write_synth_dataset(dir.path / "data", {.classes = 10, .train_per_class = 40,
                                                  .val_per_class = 2, .seed = 3},
                              false);
    c.data = dir.path / "data";
    c.out = dir.path / "one";
    c.model = "resnet-custom";
    c.shape = {.blocks = {1, 1, 1}, .bottleneck = false, .width = 8, .image_size = 48};
    c.batch = 4;
    c.epochs = 1;
    c.stop_after = 3;
    c.validate = false;
    c.loader_threads = 1;
    c.schedule = {.base_lr = 0.2, .base_batch = 16, .warmup_epochs = 0};
    c.progress_every_s = 1e9;
  }
};

// The learning run of train_test.cc: three stages of one basic block each, width 16, on 48x48
// crops, the smallest ResNet whose every convolution runs on oneDNN's JIT kernels (at 1x1 and 2x2
// feature maps oneDNN 2.6 falls back to a slow reference weight-gradient kernel); six epochs of
// batch 32. Other tests take it and shorten it.
inline TrainConfig learning_run(const std::filesystem::path& data, const std::filesystem::path& out) {
  TrainConfig c;
  c.data = data;
  c.out = out;
  c.model = "resnet-custom";
  c.shape = {.blocks = {1, 1, 1}, .bottleneck = false, .width = 16, .image_size = 48};
  c.batch = 32;
  c.epochs = 6;
  c.schedule = {.base_lr = 0.1, .base_batch = 32, .warmup_epochs = 1, .milestones = {4, 5}};
  c.augment.min_scale = 0.35;
  c.loader_threads = 2;
  c.progress_every_s = 1e9;
  return c;
}

// `ranks` threads, each with its own mesh through one in-process store, run body(rank, mesh);
// every rank's exception is collected and none may have been thrown. The ranks form servers of
// `per_server` consecutive ranks (what the hierarchical allreduce reads).
template <class Body>
void on_ranks(int ranks, Body body, std::chrono::milliseconds timeout = std::chrono::seconds(30), int per_server = 1) {
  auto store = comm::make_in_process_store();
  std::vector<std::string> errors(ranks);
  std::vector<std::thread> threads;
  for (int r = 0; r < ranks; ++r)
    threads.emplace_back([&, r] {
      try {
        auto mesh = comm::connect({.rank = r, .world_size = ranks, .local_rank = r % per_server,
                                   .local_world_size = per_server, .store = comm::StoreKind::in_process,
                                   .in_process = store, .timeout = timeout});
        body(r, *mesh);
      } catch (const std::exception& e) {
        errors[r] = e.what();
      }
    });
  for (auto& t : threads) t.join();
  for (const auto& e : errors) REQUIRE(e == "");
}

// Trains c on `ranks` ranks (one process without a mesh when 1) of `micro` micro-batches, each
// rank on the backend make(rank) returns.
template <class MakeBackend>
void train_ranks(TrainConfig c, int ranks, int micro, MakeBackend make,
                 std::chrono::milliseconds timeout = std::chrono::seconds(30), int per_server = 1) {
  c.micro_batches = micro;
  c.world_size = ranks;
  if (ranks == 1) {
    auto backend = make(0);
    train(c, *backend);
    return;
  }
  on_ranks(ranks, [&](int rank, comm::Communicator& mesh) {
    auto backend = make(rank);
    TrainConfig mine = c;
    mine.comm = &mesh;
    train(mine, *backend);
  }, timeout, per_server);
}

// The weights of the checkpoint rank 0 wrote at c.stop_after, read through `backend`.
inline std::vector<float> checkpoint_weights(const TrainConfig& c, Backend& backend) {
  Net net(network_for(c, 10), backend, c.batch);
  const auto n = static_cast<long long>(net.params().size());
  const std::shared_ptr<float> velocity = backend.alloc_flat(n);
  REQUIRE(read_checkpoint(c.out / "checkpoint.basin", net, std::span<float>(velocity.get(), n)).step ==
          c.stop_after);
  return net.to_host(net.params());
}

// Worst element-wise difference relative to the weights' scale (RMS of a).
inline double weight_difference(const std::vector<float>& a, const std::vector<float>& b) {
  REQUIRE(a.size() == b.size());
  double rms = 0, worst = 0;
  for (float x : a) rms += double(x) * x;
  rms = std::sqrt(rms / a.size());
  for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::abs(double(a[i]) - b[i]));
  return worst / rms;
}

}  // namespace basin::exec::test
