// Data-parallel training: k ranks (threads meeting through an in-process store) with batch B/k
// each, and one process summing k micro-batches of B/k, reach the same weights: the ranks'
// batches are the micro-batches' shards and batch norm normalizes per rank as per micro-batch, so
// the two compute the same step in theory and differ only by the order of float additions. For
// every Gloo algorithm, bucket sizes and with overlap off.
#include <basin/train.h>


#include <memory>

#include "../catch.h"
#include "train_fixture.h"

#if BASIN_HAVE_DNNL && BASIN_HAVE_GLOO

using namespace basin;
using namespace basin::exec;
namespace fs = std::filesystem;

namespace {

namespace fixture = basin::exec::test;
using fixture::weight_difference;

struct Setup : fixture::SmallRun {
  Setup() : SmallRun("data-parallel") {}
};

// Runs `ranks` threads of train() with `micro` micro-batches each on the CPU backend; returns
// rank 0's weights from the checkpoint it wrote at stop_after.
std::vector<float> run(TrainConfig c, int ranks, int micro) {
  fixture::train_ranks(c, ranks, micro, [](int) { return make_cpu_backend(1); });
  auto backend = make_cpu_backend(1);
  return fixture::checkpoint_weights(c, *backend);
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
  const double d4 = weight_difference(one, run(four, 4, 1));
  INFO("4 ranks: " << d4);
  CHECK(d4 < bound);

  TrainConfig two = four;  // 2 ranks x 2 micro-batches, buckets of 40 kB, no overlap
  two.out = dir.path / (std::string("two-") + comm::name(algorithm));
  two.bucket_mb = 0.04;
  two.overlap = false;
  CHECK(weight_difference(one, run(two, 2, 2)) < bound);
}

TEST_CASE("The comparison can fail: batch norm over the whole batch is another step", "[exec][train][comm]") {
  const Setup setup;
  const TrainConfig& c = setup.c;
  const auto& dir = setup.dir;
  const std::vector<float> micro = run(c, 1, 4);
  TrainConfig whole = c;  // one batch of 16: the same images, statistics over all 16
  whole.out = dir.path / "whole";
  whole.batch = 16;
  const double d = weight_difference(micro, run(whole, 1, 1));
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
  CHECK(weight_difference(one, run(two, 2, 1)) < 1e-5);
}

#endif
