// Data-parallel training: k ranks (threads meeting through an in-process store) with batch B/k
// each, and one process summing k micro-batches of B/k, reach the same weights: the ranks'
// batches are the micro-batches' shards and batch norm normalizes per rank as per micro-batch, so
// the two compute the same step in theory and differ only by the order of float additions. For
// every Gloo algorithm, bucket sizes and with overlap off.
#include <basin/train.h>


#include <cmath>
#include <memory>
#include <thread>

#include "../catch.h"
#include "../temp_dir.h"

#if BASIN_HAVE_DNNL && BASIN_HAVE_GLOO

using namespace basin;
using namespace basin::exec;
namespace fs = std::filesystem;

namespace {

// A synthetic dataset in a fresh directory and the run every test varies: 1,000 images would
// be more than 3 steps need, 400 keep it quick.
struct Setup {
  test::TempDir dir{"data-parallel"};
  TrainConfig c;
  Setup();
};

Setup::Setup() {
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

// Runs `ranks` threads of train() with `micro` micro-batches each; returns rank 0's weights
// from the checkpoint it wrote at stop_after.
std::vector<float> run(TrainConfig c, int ranks, int micro) {
  c.micro_batches = micro;
  c.world_size = ranks;
  std::vector<std::string> errors(ranks);
  if (ranks == 1) {
    auto backend = make_cpu_backend(1);
    train(c, *backend);
  } else {
    auto store = comm::make_in_process_store();
    std::vector<std::thread> threads;
    for (int r = 0; r < ranks; ++r)
      threads.emplace_back([&, r] {
        try {
          auto backend = make_cpu_backend(1);
          auto mesh = comm::connect({.rank = r, .world_size = ranks,
                                     .store = comm::StoreKind::in_process, .in_process = store,
                                     .timeout = std::chrono::milliseconds(30000)});
          TrainConfig mine = c;
          mine.comm = mesh.get();
          train(mine, *backend);
        } catch (const std::exception& e) {
          errors[r] = e.what();
        }
      });
    for (auto& t : threads) t.join();
  }
  for (const auto& e : errors) REQUIRE(e.empty());
  auto backend = make_cpu_backend(1);
  Net net(network_for(c, 10), *backend, c.batch);
  std::vector<float> velocity(net.params().size());
  const RunState st = read_checkpoint(c.out / "checkpoint.basin", net, velocity);
  REQUIRE(st.step == 3);
  return {net.params().begin(), net.params().end()};
}

// Worst element-wise difference relative to the weights' scale (RMS of the reference).
double difference(const std::vector<float>& a, const std::vector<float>& b) {
  REQUIRE(a.size() == b.size());
  double rms = 0, worst = 0;
  for (float x : a) rms += double(x) * x;
  rms = std::sqrt(rms / a.size());
  for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::abs(double(a[i]) - b[i]));
  return worst / rms;
}

}  // namespace

TEST_CASE("Ranks and micro-batches of one global batch reach the same weights", "[exec][train][comm]") {
  const Setup setup;
  const TrainConfig& c = setup.c;
  const auto& dir = setup.dir;
  const std::vector<float> one = run(c, 1, 4);  // global batch 16 as 4 micro-batches

  // Float reordering is ~1e-7 relative per addition, carried through three steps: 1e-5 of the
  // weights' scale leaves room, while normalizing over the whole batch instead moves them by
  // more than 1e-3 (the next test).
  const double bound = 1e-5;
  const auto algorithm = GENERATE(comm::Algorithm::ring, comm::Algorithm::ring_chunked,
                                  comm::Algorithm::halving_doubling);
  CAPTURE(comm::name(algorithm));
  TrainConfig four = c;
  four.out = dir.path / (std::string("four-") + comm::name(algorithm));
  four.allreduce.algorithm = algorithm;
  const double d4 = difference(one, run(four, 4, 1));
  INFO("4 ranks: " << d4);
  CHECK(d4 < bound);

  TrainConfig two = four;  // 2 ranks x 2 micro-batches, buckets of 40 kB, no overlap
  two.out = dir.path / (std::string("two-") + comm::name(algorithm));
  two.bucket_mb = 0.04;
  two.overlap = false;
  CHECK(difference(one, run(two, 2, 2)) < bound);
}

TEST_CASE("The comparison can fail: batch norm over the whole batch is another step", "[exec][train][comm]") {
  const Setup setup;
  const TrainConfig& c = setup.c;
  const auto& dir = setup.dir;
  const std::vector<float> micro = run(c, 1, 4);
  TrainConfig whole = c;  // one batch of 16: the same images, statistics over all 16
  whole.out = dir.path / "whole";
  whole.batch = 16;
  const double d = difference(micro, run(whole, 1, 1));
  INFO("difference " << d);
  CHECK(d > 1e-3);
}

TEST_CASE("bcube on two ranks reaches the single-process weights", "[exec][train][comm]") {
  const Setup setup;
  const TrainConfig& c = setup.c;
  const auto& dir = setup.dir;
  const std::vector<float> one = run(c, 1, 2);
  TrainConfig two = c;
  two.out = dir.path / "bcube";
  two.allreduce.algorithm = comm::Algorithm::bcube;
  two.bucket_mb = 0.01;
  CHECK(difference(one, run(two, 2, 1)) < 1e-5);
}

#endif
