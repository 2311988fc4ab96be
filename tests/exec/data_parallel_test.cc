// Data-parallel training: k ranks (threads meeting through an in-process store) with batch B/k
// each, and one process summing k micro-batches of B/k, reach the same weights: the ranks'
// batches are the micro-batches' shards and batch norm normalizes per rank as per micro-batch, so
// the two compute the same step in theory and differ only by the order of float additions. For
// every Gloo algorithm, bucket sizes and with overlap off; and with the gradients sent as fp16
// or bf16, within what that rounding allows.
#include <basin/train.h>


#include <map>
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

// Runs `ranks` threads of train() with `micro` micro-batches each on the CPU backend, as servers
// of `per_server` ranks; returns rank 0's weights from the checkpoint it wrote at stop_after.
std::vector<float> run(TrainConfig c, int ranks, int micro, int per_server = 1) {
  fixture::train_ranks(c, ranks, micro, [](int) { return make_cpu_backend(1); }, std::chrono::seconds(30),
                       per_server);
  auto backend = make_cpu_backend(1);
  return fixture::checkpoint_weights(c, *backend);
}

// What each of `ranks` threads' train() refused with (std::invalid_argument), servers of
// `per_server` ranks.
std::vector<std::string> refusals(const TrainConfig& c, int ranks, int per_server = 1) {
  std::vector<std::string> errors(static_cast<std::size_t>(ranks));
  fixture::on_ranks(ranks, [&](int rank, comm::Communicator& mesh) {
    TrainConfig mine = c;
    mine.comm = &mesh;
    auto backend = make_cpu_backend(1);
    try {
      train(mine, *backend);
    } catch (const std::invalid_argument& e) {
      errors[static_cast<std::size_t>(rank)] = e.what();
    }
  }, std::chrono::seconds(30), per_server);
  return errors;
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
  // Gloo's plain ring trains on 2 ranks only (the next test); on 4 its refusal is checked there.
  if (algorithm != comm::Algorithm::ring) {
    const double d4 = weight_difference(one, run(four, 4, 1));
    INFO("4 ranks: " << d4);
    CHECK(d4 < bound);
  }

  TrainConfig two = four;  // 2 ranks x 2 micro-batches, buckets of 40 kB, no overlap
  two.out = dir.path / (std::string("two-") + comm::name(algorithm));
  two.bucket_mb = 0.04;
  two.overlap = false;
  CHECK(weight_difference(one, run(two, 2, 2)) < bound);
}

TEST_CASE("Training refuses Gloo's plain ring on 3 or more ranks, whose sums differ between ranks",
          "[exec][train][comm]") {
  const Setup setup;
  TrainConfig c = setup.c;
  c.out = setup.dir.path / "ring-three";
  c.allreduce.algorithm = comm::Algorithm::ring;
  c.world_size = 3;
  const std::vector<std::string> errors = refusals(c, 3);
  // Every rank refuses before its first step, naming the field and what to use instead.
  for (const auto& e : errors) {
    CHECK_THAT(e, Catch::Matchers::Contains("algorithm: expected ring_chunked or halving_doubling on 3 ranks, got ring"));
  }
  CHECK_FALSE(fs::exists(c.out / "checkpoint.basin"));
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

TEST_CASE("The hierarchical allreduce over servers of 2 ranks reaches the single-process weights",
          "[exec][train][comm]") {
  // 4 ranks as 2 servers of 2 (reduce, the leaders' allreduce, broadcast) and as 1 server of 4
  // (no network phase): the same step as 4 micro-batches, as for the flat algorithms above.
  const Setup setup;
  const TrainConfig& c = setup.c;
  const std::vector<float> one = run(c, 1, 4);
  for (auto [per_server, inter] : {std::pair{2, comm::Algorithm::halving_doubling},
                                   std::pair{2, comm::Algorithm::ring_chunked},
                                   std::pair{4, comm::Algorithm::halving_doubling}}) {
    TrainConfig four = c;
    four.out = setup.dir.path / ("hierarchical-" + std::to_string(per_server) + "-" + comm::name(inter));
    four.allreduce.algorithm = comm::Algorithm::hierarchical;
    four.allreduce.inter = inter;
    four.bucket_mb = 0.02;
    const double d = weight_difference(one, run(four, 4, 1, per_server));
    INFO(per_server << " ranks per server, " << comm::name(inter) << " between: " << d);
    CHECK(d < 1e-5);
  }
}

TEST_CASE("Training refuses a hierarchical allreduce its ranks are not laid out for", "[exec][train][comm]") {
  const Setup setup;
  for (auto [ranks, per_server, inter, expected] :
       {std::tuple{3, 1, comm::Algorithm::ring, "inter: expected ring_chunked or halving_doubling between 3 servers"},
        std::tuple{2, 1, comm::Algorithm::bcube, "got bcube"}}) {
    TrainConfig c = setup.c;
    c.out = setup.dir.path / ("refused-" + std::string(comm::name(inter)));
    c.allreduce.algorithm = comm::Algorithm::hierarchical;
    c.allreduce.inter = inter;
    c.world_size = ranks;
    for (const auto& e : refusals(c, ranks, per_server)) CHECK_THAT(e, Catch::Matchers::Contains(expected));
    CHECK_FALSE(fs::exists(c.out / "checkpoint.basin"));
  }
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

TEST_CASE("Gradients sent as fp16 or bf16 move the weights by about the wire's rounding", "[exec][train][comm]") {
  // Each allreduced element is the two ranks' gradients rounded to 16 bits and their sum rounded
  // again: off by at most 2u (|g1| + |g2|), u the unit roundoff (2^-11 fp16, 2^-8 bf16), with
  // |g1| + |g2| = |g1 + g2| where the ranks agree in sign. Through three SGD steps the weights
  // then differ from the fp32 wire's by about 2u of how far those steps moved them (U below).
  // The bound allows twice that, for ranks that disagree and for the changed gradients'
  // effect on the next steps' forward, and the difference must be there: nonzero, and larger
  // for bf16's 8 significant bits than for fp16's 11.
  const Setup setup;
  const TrainConfig& c = setup.c;
  const auto& dir = setup.dir;
  const std::vector<float> fp32 = run(c, 2, 1);
  auto backend = make_cpu_backend(1);  // the initial weights, initialized as train() does
  Net initial(network_for(c, 10), *backend, c.batch);
  initial.init({.seed = c.seed, .zero_init_residual = c.zero_init_residual});
  const double moved = weight_difference(fp32, initial.to_host(initial.params()));
  REQUIRE(moved > 1e-3);
  std::map<comm::WirePrecision, double> off;
  for (auto [wire, unit_roundoff] : {std::pair{comm::WirePrecision::fp16, 0x1p-11}, std::pair{comm::WirePrecision::bf16, 0x1p-8}}) {
    TrainConfig narrow = c;
    narrow.out = dir.path / comm::name(wire);
    narrow.allreduce.precision = wire;
    off[wire] = weight_difference(fp32, run(narrow, 2, 1));
    INFO(comm::name(wire) << ": weights off by " << off[wire] << " of their rms; the steps moved them by " << moved);
    CHECK(off[wire] > 0);
    CHECK(off[wire] < 4 * unit_roundoff * moved);
  }
  CHECK(off[comm::WirePrecision::fp16] < off[comm::WirePrecision::bf16]);
}

#endif
