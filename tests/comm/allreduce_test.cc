// Allreduce on meshes of 1 to 8 ranks (threads, in-process store): every algorithm Gloo allows
// for that world size, counts 0, 1, 257 (one past ring_chunked's 256-float minimum chunk), 1000
// and 4099 (no multiple of any chunking: 2p chunks of 256), fp32 exactly and fp16 and bf16 within
// their stated bounds; the combinations Gloo cannot do throw; repeated buckets reuse Gloo's objects.
#include "comm_test_util.h"

#include <cmath>
#include <cstdint>
#include <random>


#include "../catch.h"

#if BASIN_HAVE_GLOO

using namespace basin::comm;
using namespace basin::comm::test;

namespace {

constexpr Algorithm all_algorithms[] = {Algorithm::ring, Algorithm::ring_chunked, Algorithm::halving_doubling,
                                        Algorithm::bcube};
constexpr long long counts[] = {0, 1, 257, 1000, 4099};


}  // namespace

TEST_CASE("comm allreduce: every algorithm on 1 to 8 ranks sums exactly", "[comm]") {
  for (int world = 1; world <= 8; ++world) {
    auto comms = connect_threads(world);
    std::vector<std::string> mismatches(static_cast<std::size_t>(world));
    const auto errors = on_threads(world, [&](int r) {
      Communicator& comm = *comms[static_cast<std::size_t>(r)];
      for (Algorithm algorithm : all_algorithms) {
        if (!unsupported_reason(algorithm, world).empty()) continue;
        for (WirePrecision precision : {WirePrecision::fp32, WirePrecision::fp16, WirePrecision::bf16})
          for (long long count : counts) {
            auto data = rank_vector(r, count);
            comm.allreduce(data, {.algorithm = algorithm, .precision = precision});
            // The sums are integers up to 7 * 36 = 252, exact in half and in bfloat16 (8
            // significant bits: every integer up to 256) as well as in float.
            const auto bad = check_sum(data, world,
                                       std::string(name(algorithm)) + " " + name(precision) + " count " +
                                           std::to_string(count));
            if (!bad.empty() && mismatches[static_cast<std::size_t>(r)].empty())
              mismatches[static_cast<std::size_t>(r)] = bad;
          }
      }
    });
    INFO("world size " << world);
    CHECK(join_errors(errors) == "");
    CHECK(join_errors(mismatches) == "");
  }
}

TEST_CASE("comm allreduce: bcube on more than 2 ranks throws before communicating", "[comm]") {
  auto comms = connect_threads(3);
  std::vector<float> data(10, 1.0f);
  // Checked before any communication, so one rank alone sees the error and nobody waits.
  CHECK_THROWS_WITH(comms[0]->allreduce(data, {.algorithm = Algorithm::bcube}),
                    Catch::Matchers::Contains("rank 0") && Catch::Matchers::Contains("bcube on 3 ranks") &&
                        Catch::Matchers::Contains("halving_doubling"));
  CHECK_THROWS_WITH(BucketReducer(*comms[1], data, {.algorithm = Algorithm::bcube}),
                    Catch::Matchers::Contains("bcube on 3 ranks"));
  // The mesh is still usable: the refusal happened before any Gloo call.
  std::vector<std::vector<float>> results(3);
  const auto errors = on_threads(3, [&](int r) {
    results[static_cast<std::size_t>(r)] = rank_vector(r, 1000);
    comms[static_cast<std::size_t>(r)]->allreduce(results[static_cast<std::size_t>(r)]);
  });
  REQUIRE(join_errors(errors) == "");
  for (const auto& got : results) CHECK(check_sum(got, 3, "ring_chunked after the refusal") == "");
}

TEST_CASE("comm allreduce: fp16 and bf16 of non-integers stay within p * u of the sum", "[comm]") {
  // Rank r holds (r + 1) * (1 + (i % 13) / 13): every value and partial sum is positive, so each
  // of the p roundings to 16 bits (one per rank's input and one per partial sum; the allgather
  // only copies) errs by at most u of the final sum S, u being the unit roundoff: 2^-11 for IEEE
  // half (11 significant bits), 2^-8 for bfloat16 (8). Bound: p * u * S.
  const auto [precision, unit_roundoff] =
      GENERATE(std::pair{WirePrecision::fp16, 0x1p-11}, std::pair{WirePrecision::bf16, 0x1p-8});
  const int world = 5;
  auto comms = connect_threads(world);
  const long long count = 3001;
  auto value = [](int r, long long i) { return static_cast<float>((r + 1) * (1.0 + (i % 13) / 13.0)); };
  std::vector<std::vector<float>> results(world);
  for (Algorithm algorithm : {Algorithm::ring_chunked, Algorithm::halving_doubling}) {
    const auto errors = on_threads(world, [&](int r) {
      auto& data = results[static_cast<std::size_t>(r)];
      data.resize(count);
      for (long long i = 0; i < count; ++i) data[static_cast<std::size_t>(i)] = value(r, i);
      comms[static_cast<std::size_t>(r)]->allreduce(data, {.algorithm = algorithm, .precision = precision});
    });
    REQUIRE(join_errors(errors) == "");
    double worst = 0;
    for (long long i = 0; i < count; ++i) {
      const double exact = (1.0 + (i % 13) / 13.0) * world * (world + 1) / 2;
      for (const auto& got : results)
        worst = std::max(worst, std::abs(got[static_cast<std::size_t>(i)] - exact) / exact);
    }
    INFO(name(algorithm) << " " << name(precision) << " worst relative error " << worst);
    CHECK(worst <= world * unit_roundoff);
    CHECK(worst > 0);  // the values are not all representable: 16 bits really were on the wire
    // and the last rounding was to the format asked for: every result is one of its values.
    CHECK(off_wire_format(results[0], precision) == 0);
    // Every rank ends with the same bits.
    for (const auto& got : results) CHECK(got == results[0]);
  }
}

TEST_CASE("comm allreduce: scale multiplies the sum and repeated buckets reuse Gloo's objects", "[comm]") {
  const int world = 4;
  auto comms = connect_threads(world);
  std::vector<std::vector<float>> buffers(world);
  std::vector<std::size_t> cached(world);
  const auto errors = on_threads(world, [&](int r) {
    auto& data = buffers[static_cast<std::size_t>(r)];
    data = rank_vector(r, 500);
    Communicator& comm = *comms[static_cast<std::size_t>(r)];
    for (int round = 0; round < 3; ++round) {
      const auto fresh = rank_vector(r, 500);
      data.assign(fresh.begin(), fresh.end());  // same size and capacity: the same buffer address
      comm.allreduce(data, {.scale = 1.0f / world});
    }
    auto half = std::span<float>(data).subspan(0, 250);
    for (int round = 0; round < 2; ++round) comm.allreduce(half, {.algorithm = Algorithm::ring, .scale = 1.0f / world});
    cached[static_cast<std::size_t>(r)] = comm.cached_algorithms();
  });
  REQUIRE(join_errors(errors) == "");
  for (int r = 0; r < world; ++r) {
    CHECK(cached[static_cast<std::size_t>(r)] == 2);  // (buffer, 500, ring_chunked) and (buffer, 250, ring)
    const auto& got = buffers[static_cast<std::size_t>(r)];
    // First 250: the mean, then the mean of equal means again.
    CHECK(got[0] == expected_sum(world, 0) / world);
    CHECK(got[6] == expected_sum(world, 6) / world);
    CHECK(got[499] == expected_sum(world, 499) / world);
  }
}

TEST_CASE("comm allreduce: larger buckets repeated on 4 ranks", "[comm]") {
  // Sizes the benchmark uses (64 KB, 1 MB) and one past them, each run 10 times on the cached
  // algorithm, so buffer reuse across runs is exercised as in training.
  const int world = 4;
  auto comms = connect_threads(world);
  std::vector<std::string> mismatches(world);
  const auto errors = on_threads(world, [&](int r) {
    for (Algorithm algorithm : all_algorithms)
      for (long long count : {16384LL, 262144LL, 262147LL}) {
        if (!unsupported_reason(algorithm, world).empty()) continue;
        std::vector<float> data(static_cast<std::size_t>(count));
        for (int run = 0; run < 10; ++run) {
          const auto fresh = rank_vector(r, count);
          data.assign(fresh.begin(), fresh.end());
          comms[static_cast<std::size_t>(r)]->allreduce(data, {.algorithm = algorithm});
          const auto bad = check_sum(data, world, std::string(name(algorithm)) + " count " + std::to_string(count));
          if (!bad.empty() && mismatches[static_cast<std::size_t>(r)].empty()) mismatches[static_cast<std::size_t>(r)] = bad;
        }
      }
  });
  CHECK(join_errors(errors) == "");
  CHECK(join_errors(mismatches) == "");
}

TEST_CASE("comm allreduce: the algorithms training uses leave every rank the same bits", "[comm]") {
  // Data parallelism keeps replicas equal only if every rank gets the same sum. Values with full
  // mantissas make any difference in summation order show in the last bits. ring_chunked and
  // halving-doubling reduce each element once and copy the result to every rank; Gloo's plain
  // ring adds in each rank's own order, which is why training refuses it from 3 ranks on
  // (exec/src/train_setup.cc) and why this test also checks that its ranks do differ.
  const long long count = 5000;
  for (int world = 3; world <= 6; ++world) {
    auto comms = connect_threads(world);
    for (Algorithm algorithm : {Algorithm::ring_chunked, Algorithm::halving_doubling, Algorithm::ring}) {
      std::vector<std::vector<float>> results(static_cast<std::size_t>(world));
      const auto errors = on_threads(world, [&](int r) {
        auto& data = results[static_cast<std::size_t>(r)];
        std::mt19937 rng(static_cast<std::uint32_t>(17 + r));
        std::normal_distribution<float> normal;
        data.resize(count);
        for (float& x : data) x = normal(rng);
        comms[static_cast<std::size_t>(r)]->allreduce(data, {.algorithm = algorithm});
      });
      REQUIRE(join_errors(errors) == "");
      long long differing = 0;
      for (const auto& got : results)
        for (long long i = 0; i < count; ++i)
          differing += got[static_cast<std::size_t>(i)] != results[0][static_cast<std::size_t>(i)];
      INFO(world << " ranks, " << name(algorithm) << ": " << differing << " elements differ from rank 0's");
      if (algorithm == Algorithm::ring)
        CHECK(differing > 0);
      else
        CHECK(differing == 0);
    }
  }
}

#endif
