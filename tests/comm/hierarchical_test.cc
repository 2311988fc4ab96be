// The hierarchical allreduce (Goyal et al.'s three phases from Gloo's reduce, a flat allreduce
// among the servers' first ranks, and Gloo's broadcast) on meshes of threads laid out as servers:
// exact sums against the closed form for every layout from one server to one rank per server,
// 16-bit wires within p * u of the sum, every rank the same bits, reuse of the leaders' cached
// algorithm, flat and hierarchical calls interleaved on one mesh, the leaders' phase alone (what
// GPU ranks run between NCCL's phases), and the layouts and inner algorithms it refuses, named
// before anything is sent.
#include "comm_test_util.h"


#include <cmath>
#include <random>

#include "../catch.h"

#if BASIN_HAVE_GLOO

using namespace basin::comm;
using namespace basin::comm::test;

namespace {

AllreduceOptions hierarchical(Algorithm inter, WirePrecision precision = WirePrecision::fp32, float scale = 1.0f) {
  return {.algorithm = Algorithm::hierarchical, .precision = precision, .scale = scale, .inter = inter};
}

}  // namespace

TEST_CASE("comm hierarchical: exact sums on every server layout", "[comm]") {
  // (world, ranks per server): several servers of 2, 3 and 4; one server of all ranks (no
  // network phase); one rank per server (no local phases); 5 ranks on one server (Gloo's
  // broadcast tree with a missing branch).
  const std::pair<int, int> layouts[] = {{4, 2}, {6, 2}, {6, 3}, {8, 4}, {4, 4}, {5, 5}, {3, 1}, {8, 2}};
  for (auto [world, per_server] : layouts) {
    auto comms = connect_threads(world, milliseconds(10000), per_server);
    std::vector<std::string> mismatches(static_cast<std::size_t>(world));
    const auto errors = on_threads(world, [&](int r) {
      for (Algorithm inter : {Algorithm::halving_doubling, Algorithm::ring_chunked, Algorithm::ring})
        for (WirePrecision precision : {WirePrecision::fp32, WirePrecision::fp16, WirePrecision::bf16})
          for (long long count : {0LL, 1LL, 257LL, 1000LL, 4099LL}) {
            auto data = rank_vector(r, count);
            comms[static_cast<std::size_t>(r)]->allreduce(data, hierarchical(inter, precision));
            // Integer sums up to 36 * 7 = 252: exact in half and bfloat16 too.
            const auto bad = check_sum(data, world, std::string(name(inter)) + " " + name(precision) + " count " +
                                                        std::to_string(count));
            if (!bad.empty() && mismatches[static_cast<std::size_t>(r)].empty())
              mismatches[static_cast<std::size_t>(r)] = bad;
          }
    });
    INFO("world " << world << ", " << per_server << " ranks per server");
    CHECK(join_errors(errors) == "");
    CHECK(join_errors(mismatches) == "");
  }
}

TEST_CASE("comm hierarchical: 16-bit wires within p * u of the sum, the same bits everywhere", "[comm]") {
  // As for the flat algorithms (allreduce_test.cc): positive values, so each of the p input
  // roundings and p - 1 partial-sum roundings errs by at most u of the final sum S, whatever the
  // order the three phases add in; broadcasts only copy.
  const auto [precision, unit_roundoff] =
      GENERATE(std::pair{WirePrecision::fp16, 0x1p-11}, std::pair{WirePrecision::bf16, 0x1p-8});
  const int world = 6, per_server = 3;
  auto comms = connect_threads(world, milliseconds(10000), per_server);
  const long long count = 3001;
  auto value = [](int r, long long i) { return static_cast<float>((r + 1) * (1.0 + (i % 13) / 13.0)); };
  std::vector<std::vector<float>> results(world);
  const auto errors = on_threads(world, [&](int r) {
    auto& data = results[static_cast<std::size_t>(r)];
    data.resize(count);
    for (long long i = 0; i < count; ++i) data[static_cast<std::size_t>(i)] = value(r, i);
    comms[static_cast<std::size_t>(r)]->allreduce(data, hierarchical(Algorithm::halving_doubling, precision));
  });
  REQUIRE(join_errors(errors) == "");
  double worst = 0;
  for (long long i = 0; i < count; ++i) {
    const double exact = (1.0 + (i % 13) / 13.0) * world * (world + 1) / 2;
    for (const auto& got : results) worst = std::max(worst, std::abs(got[static_cast<std::size_t>(i)] - exact) / exact);
  }
  INFO(name(precision) << " worst relative error " << worst);
  CHECK(worst <= world * unit_roundoff);
  CHECK(worst > 0);  // 16 bits really travelled
  CHECK(off_wire_format(results[0], precision) == 0);
  for (const auto& got : results) CHECK(got == results[0]);
}

TEST_CASE("comm hierarchical: replicas stay equal and the mean matches a double-precision sum", "[comm]") {
  // Full-mantissa values: the sum is formed once (reduce, then halving-doubling or the chunked
  // ring among leaders, each element reduced in one place) and copied, so every rank holds the
  // same bits; the fp32 result is within (p - 1) * 2^-24 of the double sum of |x| per element.
  const int world = 8, per_server = 4;
  const long long count = 5000;
  auto comms = connect_threads(world, milliseconds(10000), per_server);
  for (Algorithm inter : {Algorithm::halving_doubling, Algorithm::ring_chunked}) {
    std::vector<std::vector<float>> inputs(world), results(world);
    for (int r = 0; r < world; ++r) {
      std::mt19937 rng(static_cast<std::uint32_t>(101 + r));
      std::normal_distribution<float> normal;
      inputs[static_cast<std::size_t>(r)].resize(count);
      for (float& x : inputs[static_cast<std::size_t>(r)]) x = normal(rng);
    }
    const auto errors = on_threads(world, [&](int r) {
      results[static_cast<std::size_t>(r)] = inputs[static_cast<std::size_t>(r)];
      comms[static_cast<std::size_t>(r)]->allreduce(results[static_cast<std::size_t>(r)],
                                                    hierarchical(inter, WirePrecision::fp32, 1.0f / world));
    });
    REQUIRE(join_errors(errors) == "");
    for (const auto& got : results) CHECK(got == results[0]);
    long long outside = 0;
    for (long long i = 0; i < count; ++i) {
      double exact = 0, magnitude = 0;
      for (const auto& in : inputs) {
        exact += in[static_cast<std::size_t>(i)];
        magnitude += std::abs(in[static_cast<std::size_t>(i)]);
      }
      // The sum's p - 1 roundings err by at most (p - 1) u sum|x| (u = 2^-24); divided by p (a
      // power of two: exact), at most u sum|x| with room to spare.
      const double bound = 0x1p-24 * magnitude;
      outside += std::abs(results[0][static_cast<std::size_t>(i)] - exact / world) > bound;
    }
    INFO(name(inter));
    CHECK(outside == 0);
  }
}

TEST_CASE("comm hierarchical: repeated buckets reuse the leaders' algorithm; flat calls interleave", "[comm]") {
  // (4, 4): the server is the whole mesh, so reduce and broadcast share the world's context with
  // the flat algorithms; (4, 1): the leaders are the whole mesh. (4, 2): two extra meshes.
  for (int per_server : {4, 1, 2}) {
    const int world = 4;
    auto comms = connect_threads(world, milliseconds(10000), per_server);
    std::vector<std::string> mismatches(world);
    std::vector<std::size_t> cached(world);
    const auto errors = on_threads(world, [&](int r) {
      Communicator& comm = *comms[static_cast<std::size_t>(r)];
      std::vector<float> bucket(70000), other(3000);
      for (int round = 0; round < 4; ++round) {
        const auto fresh = rank_vector(r, 70000);
        bucket.assign(fresh.begin(), fresh.end());
        comm.allreduce(bucket, hierarchical(Algorithm::halving_doubling));
        auto bad = check_sum(bucket, world, "hierarchical round " + std::to_string(round));
        const auto fresh_other = rank_vector(r, 3000);
        other.assign(fresh_other.begin(), fresh_other.end());
        comm.allreduce(other, {.algorithm = Algorithm::halving_doubling});
        if (bad.empty()) bad = check_sum(other, world, "flat halving_doubling round " + std::to_string(round));
        if (!bad.empty() && mismatches[static_cast<std::size_t>(r)].empty()) mismatches[static_cast<std::size_t>(r)] = bad;
      }
      cached[static_cast<std::size_t>(r)] = comm.cached_algorithms();
    });
    INFO(per_server << " ranks per server");
    REQUIRE(join_errors(errors) == "");
    CHECK(join_errors(mismatches) == "");
    for (std::size_t c : cached) CHECK(c == 2);  // one cache entry per (buffer, options), however often run
  }
}

TEST_CASE("comm hierarchical: the leaders' phase alone sums the leaders and leaves the other ranks alone",
          "[comm]") {
  // exec's GPU ranks sum each server with NCCL and broadcast with NCCL: comm runs only the phase
  // among the servers' first ranks, which alone connect. 6 ranks as 3 servers of 2: each leader
  // ends with the sum of the leaders' vectors (ranks 0, 2, 4), the other ranks' vectors stay as
  // they were. Run twice, then one full hierarchical call on the same mesh (its server meshes
  // connect then) gives the sum of all six.
  const int world = 6, per_server = 2;
  auto comms = connect_threads(world, milliseconds(10000), per_server);
  std::vector<std::string> mismatches(world);
  const auto errors = on_threads(world, [&](int r) {
    Communicator& comm = *comms[static_cast<std::size_t>(r)];
    std::string& bad = mismatches[static_cast<std::size_t>(r)];
    for (int round = 0; round < 2; ++round) {
      std::vector<float> data = rank_vector(r, 4099);
      AllreduceOptions leaders = hierarchical(Algorithm::halving_doubling);
      leaders.leaders_only = true;
      comm.allreduce(data, leaders);
      for (std::size_t i = 0; i < data.size() && bad.empty(); ++i) {
        const auto n = static_cast<long long>(i);
        // rank_value is (r + 1) * (i % 7 + 1): the leaders 0, 2, 4 sum to (1 + 3 + 5) * (i % 7 + 1).
        const float want = r % per_server == 0 ? 9.0f * static_cast<float>(n % 7 + 1) : rank_value(r, n);
        if (data[i] != want)
          bad = "leaders' phase, round " + std::to_string(round) + ", element " + std::to_string(i) + ": " +
                std::to_string(data[i]) + ", expected " + std::to_string(want);
      }
    }
    std::vector<float> all = rank_vector(r, 1000);
    comm.allreduce(all, hierarchical(Algorithm::halving_doubling));
    if (bad.empty()) bad = check_sum(all, world, "the full call after the leaders' phase");
  });
  REQUIRE(join_errors(errors) == "");
  CHECK(join_errors(mismatches) == "");

  std::vector<float> data(10, 1.0f);
  CHECK_THROWS_WITH(comms[0]->allreduce(data, {.algorithm = Algorithm::ring_chunked, .leaders_only = true}),
                    Catch::Matchers::Contains("leaders_only is a phase of the hierarchical allreduce"));
}

TEST_CASE("comm hierarchical: the leaders' phase alone in 16 bits, after a full call, and past the cache's size",
          "[comm]") {
  // 4 ranks as 2 servers of 2. (1) A full hierarchical call first (the server meshes connect),
  // then the leaders' phase alone in fp16 and bf16: the leaders' vectors (ranks 0 and 2: 1 + 3
  // times i % 7 + 1, exact in 16 bits) summed, the others untouched. (2) More leaders-only
  // buffers than comm caches (1,024) between two flat calls on one buffer: the flat algorithm
  // cached on every rank must still match on every rank, which it would not if the leaders alone
  // had cleared the cache.
  const int world = 4, per_server = 2;
  auto comms = connect_threads(world, milliseconds(10000), per_server);
  std::vector<std::string> mismatches(world);
  const auto errors = on_threads(world, [&](int r) {
    Communicator& comm = *comms[static_cast<std::size_t>(r)];
    std::string& bad = mismatches[static_cast<std::size_t>(r)];
    std::vector<float> all = rank_vector(r, 700);
    comm.allreduce(all, hierarchical(Algorithm::halving_doubling));
    bad = check_sum(all, world, "the full call");
    for (WirePrecision wire : {WirePrecision::fp16, WirePrecision::bf16}) {
      std::vector<float> data = rank_vector(r, 1001);
      AllreduceOptions leaders = hierarchical(Algorithm::ring_chunked, wire);
      leaders.leaders_only = true;
      comm.allreduce(data, leaders);
      for (std::size_t i = 0; i < data.size() && bad.empty(); ++i) {
        const auto n = static_cast<long long>(i);
        const float want = r % per_server == 0 ? 4.0f * static_cast<float>(n % 7 + 1) : rank_value(r, n);
        if (data[i] != want)
          bad = std::string(name(wire)) + " leaders' phase, element " + std::to_string(i) + ": " +
                std::to_string(data[i]) + ", expected " + std::to_string(want);
      }
    }
    std::vector<float> flat = rank_vector(r, 300);
    comm.allreduce(flat, {.algorithm = Algorithm::ring_chunked});
    if (bad.empty()) bad = check_sum(flat, world, "the flat call before the leaders' buffers");
    std::vector<std::vector<float>> buffers(1030, std::vector<float>(1, 1.0f));
    AllreduceOptions leaders = hierarchical(Algorithm::halving_doubling);
    leaders.leaders_only = true;
    for (auto& b : buffers) comm.allreduce(b, leaders);
    const std::vector<float> fresh = rank_vector(r, 300);
    flat.assign(fresh.begin(), fresh.end());  // the same buffer: its cached algorithm runs again
    comm.allreduce(flat, {.algorithm = Algorithm::ring_chunked});
    if (bad.empty()) bad = check_sum(flat, world, "the flat call after 1,030 leaders' buffers");
  });
  REQUIRE(join_errors(errors) == "");
  CHECK(join_errors(mismatches) == "");
}

TEST_CASE("comm hierarchical: layouts and inner algorithms it cannot run are refused before sending", "[comm]") {
  SECTION("the rules, without a network") {
    RendezvousConfig c;
    c.world_size = 6;
    c.rank = 3;
    c.local_rank = 1;
    c.local_world_size = 2;
    CHECK(hierarchy_reason(c, Algorithm::halving_doubling) == "");
    c.local_world_size = 4;  // 6 ranks do not make servers of 4
    CHECK_THAT(hierarchy_reason(c, Algorithm::halving_doubling),
               Catch::Matchers::Contains("LOCAL_WORLD_SIZE") && Catch::Matchers::Contains("world_size 6"));
    c.local_world_size = 3;
    c.local_rank = 1;  // rank 3 of servers of 3 is local rank 0
    CHECK_THAT(hierarchy_reason(c, Algorithm::halving_doubling),
               Catch::Matchers::Contains("local_rank = rank % local_world_size") &&
                   Catch::Matchers::Contains("local_rank 1"));
    c.local_rank = 0;
    CHECK_THAT(hierarchy_reason(c, Algorithm::bcube), Catch::Matchers::Contains("got bcube"));
    CHECK_THAT(hierarchy_reason(c, Algorithm::hierarchical), Catch::Matchers::Contains("got hierarchical"));
    CHECK(parse_algorithm("hierarchical") == Algorithm::hierarchical);
  }
  SECTION("on a mesh, which stays usable") {
    const int world = 4;
    auto comms = connect_threads(world, milliseconds(10000), 2);
    std::vector<float> data(10, 1.0f);
    CHECK_THROWS_WITH(comms[1]->allreduce(data, hierarchical(Algorithm::bcube)),
                      Catch::Matchers::Contains("rank 1") && Catch::Matchers::Contains("got bcube"));
    std::vector<std::vector<float>> results(world);
    const auto errors = on_threads(world, [&](int r) {
      results[static_cast<std::size_t>(r)] = rank_vector(r, 1000);
      comms[static_cast<std::size_t>(r)]->allreduce(results[static_cast<std::size_t>(r)],
                                                    hierarchical(Algorithm::ring_chunked));
    });
    REQUIRE(join_errors(errors) == "");
    for (const auto& got : results) CHECK(check_sum(got, world, "after the refusal") == "");
  }
  SECTION("a mesh whose local ranks do not follow its ranks (local_world_size 1, local_rank = rank)") {
    auto comms = connect_threads(4, milliseconds(10000), 0);  // local_rank = rank, local_world_size 1
    std::vector<float> data(10, 1.0f);
    CHECK_THROWS_WITH(comms[2]->allreduce(data, hierarchical(Algorithm::halving_doubling)),
                      Catch::Matchers::Contains("local_rank 2") && Catch::Matchers::Contains("local_world_size 1"));
  }
}

#else

TEST_CASE("comm hierarchical: skipped: built without Gloo (libgloo-dev)", "[comm]") { SUCCEED("no Gloo"); }

#endif
