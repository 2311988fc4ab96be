// The bucketed reducer: buckets of one flat gradient array submitted in backward order while the
// test thread goes on "computing" (writing the next bucket's gradients), reduced in FIFO order on
// the reducer's thread; results, per-bucket timings, reuse of Gloo's objects across iterations,
// that submit() does not wait for the network, a bucket's wait for its data (run on the reducer's
// thread before its allreduce), its signal once summed (after it), and bad buckets.
#include "comm_test_util.h"

#include <stdexcept>
#include <thread>

#include "../catch.h"

#if BASIN_HAVE_GLOO

using namespace basin::comm;
using namespace basin::comm::test;

namespace {

struct Bucket {
  long long offset, count;
};
// Backward finishes the front of the array first (exec's layout), in uneven pieces; 1 float and
// a piece that is no multiple of any chunking included.
const std::vector<Bucket> buckets{{0, 1200}, {1200, 2801}, {4001, 1}, {4002, 5998}};
constexpr long long total = 10000;

}  // namespace

TEST_CASE("comm reducer: buckets submitted during backward are summed in FIFO order", "[comm]") {
  const int world = 3;
  auto comms = connect_threads(world);
  std::vector<std::vector<float>> grads(world, std::vector<float>(total, -1.0f));
  std::vector<std::vector<std::vector<BucketTiming>>> timings(world);
  std::vector<std::size_t> cached(world);
  const auto errors = on_threads(world, [&](int r) {
    auto& g = grads[static_cast<std::size_t>(r)];
    BucketReducer reducer(*comms[static_cast<std::size_t>(r)], g);
    for (int iteration = 0; iteration < 2; ++iteration) {
      for (const Bucket& b : buckets) {
        // "Backward" writes this bucket's gradients while earlier buckets are on the wire.
        for (long long i = b.offset; i < b.offset + b.count; ++i) g[static_cast<std::size_t>(i)] = rank_value(r, i);
        reducer.submit(b.offset, b.count);
      }
      timings[static_cast<std::size_t>(r)].push_back(reducer.wait());
    }
    cached[static_cast<std::size_t>(r)] = comms[static_cast<std::size_t>(r)]->cached_algorithms();
  });
  REQUIRE(join_errors(errors) == "");
  for (int r = 0; r < world; ++r) {
    INFO("rank " << r);
    const auto& g = grads[static_cast<std::size_t>(r)];
    long long wrong = 0;
    for (long long i = 0; i < total; ++i) wrong += g[static_cast<std::size_t>(i)] != expected_sum(world, i);
    CHECK(wrong == 0);
    CHECK(cached[static_cast<std::size_t>(r)] == buckets.size());  // the second iteration built nothing
    REQUIRE(timings[static_cast<std::size_t>(r)].size() == 2);
    for (const auto& iteration : timings[static_cast<std::size_t>(r)]) {
      REQUIRE(iteration.size() == buckets.size());
      for (std::size_t k = 0; k < buckets.size(); ++k) {
        CHECK(iteration[k].offset == buckets[k].offset);
        CHECK(iteration[k].count == buckets[k].count);
        CHECK(iteration[k].submitted <= iteration[k].start);
        CHECK(iteration[k].start <= iteration[k].end);
        if (k > 0) CHECK(iteration[k - 1].end <= iteration[k].start);  // one at a time, in order
      }
    }
  }
}

TEST_CASE("comm reducer: submit returns before the other ranks have joined", "[comm]") {
  // Rank 0 submits everything at once; the others start 300 ms later. Had submit() waited for the
  // allreduce, rank 0 could not have finished submitting before they started.
  const int world = 2;
  auto comms = connect_threads(world);
  std::vector<std::vector<float>> grads(world);
  std::chrono::steady_clock::time_point rank0_submitted, others_started;
  std::vector<std::vector<BucketTiming>> timings(world);
  const auto errors = on_threads(world, [&](int r) {
    auto& g = grads[static_cast<std::size_t>(r)];
    g = rank_vector(r, total);
    BucketReducer reducer(*comms[static_cast<std::size_t>(r)], g, {.scale = 0.5f});
    if (r != 0) {
      std::this_thread::sleep_for(milliseconds(300));
      others_started = std::chrono::steady_clock::now();
    }
    for (const Bucket& b : buckets) reducer.submit(b.offset, b.count);
    if (r == 0) rank0_submitted = std::chrono::steady_clock::now();
    timings[static_cast<std::size_t>(r)] = reducer.wait();
  });
  REQUIRE(join_errors(errors) == "");
  CHECK(rank0_submitted < others_started);
  CHECK(timings[0].front().start < others_started);  // the thread was already waiting on the wire
  for (const auto& g : grads) {
    CHECK(g[0] == expected_sum(world, 0) * 0.5f);
    CHECK(g[total - 1] == expected_sum(world, total - 1) * 0.5f);
  }
}

TEST_CASE("comm reducer: a bucket outside the gradient array is refused", "[comm]") {
  auto comms = connect_threads(1);
  std::vector<float> g(100, 1.0f);
  BucketReducer reducer(*comms[0], g);
  using Catch::Matchers::Contains;
  CHECK_THROWS_WITH(reducer.submit(90, 11), Contains("offset 90, count 11") && Contains("<= 100"));
  CHECK_THROWS_WITH(reducer.submit(-1, 5), Contains("offset -1"));
  reducer.submit(0, 100);
  reducer.submit(100, 0);  // empty buckets are allowed (and talk to nobody)
  const auto timings = reducer.wait();
  CHECK(timings.size() == 2);
  CHECK(g[0] == 1.0f);  // one rank: the sum is the rank's own value
}

TEST_CASE("comm reducer: a bucket's wait for its data runs on the reducer thread, before its allreduce",
          "[comm]") {
  // The data arrives only when `before` runs (as a device-to-host copy does): the sums are right
  // only if every bucket's `before` ran ahead of its allreduce, and on the reducer's thread.
  const int world = 2;
  auto comms = connect_threads(world);
  std::vector<std::vector<float>> grads(world, std::vector<float>(total, -1.0f));
  std::vector<long long> off_thread(world, 0), ran(world, 0);
  const auto errors = on_threads(world, [&](int r) {
    auto& g = grads[static_cast<std::size_t>(r)];
    BucketReducer reducer(*comms[static_cast<std::size_t>(r)], g);
    const auto caller = std::this_thread::get_id();
    for (const Bucket& b : buckets)
      reducer.submit(b.offset, b.count, [&, b] {
        ++ran[static_cast<std::size_t>(r)];
        off_thread[static_cast<std::size_t>(r)] += std::this_thread::get_id() != caller;
        for (long long i = b.offset; i < b.offset + b.count; ++i) g[static_cast<std::size_t>(i)] = rank_value(r, i);
      });
    reducer.wait();
  });
  REQUIRE(join_errors(errors) == "");
  for (int r = 0; r < world; ++r) {
    long long wrong = 0;
    for (long long i = 0; i < total; ++i) wrong += grads[static_cast<std::size_t>(r)][static_cast<std::size_t>(i)] != expected_sum(world, i);
    CHECK(wrong == 0);
    CHECK(ran[static_cast<std::size_t>(r)] == static_cast<long long>(buckets.size()));
    CHECK(off_thread[static_cast<std::size_t>(r)] == static_cast<long long>(buckets.size()));
  }

  // A wait that fails fails its bucket, named, at wait(); later buckets are dropped, and no
  // `after` runs for them.
  auto alone = connect_threads(1);
  std::vector<float> g(100, 1.0f);
  BucketReducer reducer(*alone[0], g);
  int afters = 0;
  reducer.submit(0, 50, [] { throw std::runtime_error("copy to host failed"); }, [&] { ++afters; });
  reducer.submit(50, 50, {}, [&] { ++afters; });
  using Catch::Matchers::Contains;
  CHECK_THROWS_WITH(reducer.wait(), Contains("copy to host failed") && Contains("offset 0, count 50"));
  CHECK(afters == 0);
}

TEST_CASE("comm reducer: a bucket's `after` runs on the reducer thread once its sum is in place", "[comm]") {
  // What exec's GPU ranks wait on before copying a bucket back: each `after` must see its own
  // bucket summed, run once per bucket in submission order, off the caller's thread.
  const int world = 2;
  auto comms = connect_threads(world);
  std::vector<std::vector<float>> grads(world);
  std::vector<std::string> wrong(world);
  std::vector<std::vector<long long>> order(world);
  const auto errors = on_threads(world, [&](int r) {
    auto& g = grads[static_cast<std::size_t>(r)];
    g = rank_vector(r, total);
    BucketReducer reducer(*comms[static_cast<std::size_t>(r)], g);
    const auto caller = std::this_thread::get_id();
    for (const Bucket& b : buckets)
      reducer.submit(b.offset, b.count, {}, [&, b] {
        order[static_cast<std::size_t>(r)].push_back(b.offset);
        std::string& bad = wrong[static_cast<std::size_t>(r)];
        if (std::this_thread::get_id() == caller && bad.empty()) bad = "after ran on the caller's thread";
        for (long long i = b.offset; i < b.offset + b.count && bad.empty(); ++i)
          if (g[static_cast<std::size_t>(i)] != expected_sum(world, i))
            bad = "bucket at " + std::to_string(b.offset) + " not summed when its after ran";
      });
    reducer.wait();
  });
  REQUIRE(join_errors(errors) == "");
  CHECK(join_errors(wrong) == "");
  std::vector<long long> submitted;
  for (const Bucket& b : buckets) submitted.push_back(b.offset);
  for (const auto& o : order) CHECK(o == submitted);
}

#endif
