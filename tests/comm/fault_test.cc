// Faults: a rank that hangs (a thread that stops participating) and a rank that dies (a forked
// child that _exit()s mid-run). The others must fail within the timeout (1 s here: Gloo's wait of
// 0.8 s, then the roll call's 0.2 s) with an error naming this rank, what it was doing and, from
// the roll call through the rendezvous store, the rank that never answered.
#include "comm_test_util.h"

#include "../catch.h"

#if BASIN_HAVE_GLOO

using namespace basin::comm;
using namespace basin::comm::test;
using Catch::Matchers::Contains;

TEST_CASE("comm faults: a hung rank makes the reducer of the others fail within the timeout", "[comm]") {
  const int world = 3, hung = 2;
  const auto timeout = milliseconds(1000);
  auto comms = connect_threads(world, timeout);
  struct Seen {
    std::string message;
    bool timed_out = false;
    int peer = -1;
    double seconds = 0;
  };
  std::vector<Seen> seen(world);
  std::atomic<int> failed{0};
  const auto errors = on_threads(world, [&](int r) {
    std::vector<float> g = rank_vector(r, 5000);
    BucketReducer reducer(*comms[static_cast<std::size_t>(r)], g);
    reducer.submit(0, 5000);  // one healthy iteration first
    reducer.wait();
    if (r == hung) {
      // Stops participating until the others have given up, then leaves quietly.
      while (failed.load() < world - 1) std::this_thread::sleep_for(milliseconds(10));
      return;
    }
    const auto t0 = std::chrono::steady_clock::now();
    reducer.submit(0, 2000);
    reducer.submit(2000, 3000);
    try {
      reducer.wait();
    } catch (const CommError& e) {
      auto& s = seen[static_cast<std::size_t>(r)];
      s.message = e.what();
      s.timed_out = e.timed_out;
      s.peer = e.peer;
      s.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    }
    ++failed;
  });
  REQUIRE(join_errors(errors) == "");
  for (int r = 0; r < world; ++r) {
    if (r == hung) continue;
    const auto& s = seen[static_cast<std::size_t>(r)];
    INFO("rank " << r << ": " << s.message);
    CHECK_THAT(s.message, Contains("rank " + std::to_string(r) + ":") && Contains("bucket (offset 0, count 2000)") &&
                              Contains("allreduce ring_chunked fp32 of 2000 floats") && Contains("Gloo said"));
    CHECK_THAT(s.message, Contains("rank 2 did not answer the roll call through the in-process store"));
    CHECK(s.peer == hung);
    CHECK(s.seconds < 8.0);  // the 1 s timeout, with room for a loaded machine
  }
}

TEST_CASE("comm faults: a hung rank inside a server stops the hierarchical allreduce of every server", "[comm]") {
  // Servers {0, 1} and {2, 3}; rank 3 hangs. Its leader waits for it in the server's reduce, rank
  // 0 for that leader in the leaders' allreduce, rank 1 for rank 0 in the broadcast: each must fail
  // within the timeout (a failing rank closes all three of its meshes) and name rank 3.
  const int world = 4, hung = 3;
  const auto timeout = milliseconds(1000);
  auto comms = connect_threads(world, timeout, 2);
  std::vector<std::string> messages(world);
  std::vector<int> peers(world, -1);
  std::vector<double> seconds(world, 0);
  std::atomic<int> failed{0};
  const AllreduceOptions options{.algorithm = Algorithm::hierarchical};
  const auto errors = on_threads(world, [&](int r) {
    std::vector<float> g = rank_vector(r, 5000);
    BucketReducer reducer(*comms[static_cast<std::size_t>(r)], g, options);
    reducer.submit(0, 5000);  // one healthy iteration first: every mesh connected
    reducer.wait();
    if (r == hung) {
      while (failed.load() < world - 1) std::this_thread::sleep_for(milliseconds(10));
      return;
    }
    const auto t0 = std::chrono::steady_clock::now();
    reducer.submit(0, 5000);
    try {
      reducer.wait();
    } catch (const CommError& e) {
      messages[static_cast<std::size_t>(r)] = e.what();
      peers[static_cast<std::size_t>(r)] = e.peer;
    }
    seconds[static_cast<std::size_t>(r)] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    ++failed;
  });
  REQUIRE(join_errors(errors) == "");
  for (int r = 0; r < world; ++r) {
    if (r == hung) continue;
    INFO("rank " << r << ": " << messages[static_cast<std::size_t>(r)]);
    CHECK_THAT(messages[static_cast<std::size_t>(r)],
               Contains("allreduce hierarchical(halving_doubling) fp32 of 5000 floats") &&
                   Contains("rank 3 did not answer the roll call"));
    CHECK(peers[static_cast<std::size_t>(r)] == hung);
    CHECK(seconds[static_cast<std::size_t>(r)] < 8.0);
  }
}

TEST_CASE("comm faults: a rank that dies is named by the ranks still running", "[comm]") {
  // The test process is rank 0; ranks 1 and 2 are forked before it opens any socket. Rank 2
  // leaves after the first allreduce. Rank 1 reports through its exit status: 0 when it failed
  // too, with an error naming itself and the operation.
  TempDir dir;
  const int world = 3;
  const auto timeout = milliseconds(1000);
  auto config = [&](int r) {
    RendezvousConfig c;
    c.rank = r;
    c.world_size = world;
    c.file_dir = dir.path.string();
    c.timeout = timeout;
    return c;
  };
  const auto pids = fork_ranks({1, 2}, [&](int r) {
    auto comm = connect(config(r));
    auto data = rank_vector(r, 4000);
    comm->allreduce(data);
    if (r == 2) {
      std::this_thread::sleep_for(milliseconds(200));  // let the others finish the first allreduce
      _exit(0);                                        // dies: sockets close, nothing is flushed
    }
    try {
      for (int i = 0; i < 3; ++i) comm->allreduce(data);
    } catch (const CommError& e) {
      std::fprintf(stderr, "rank 1 saw: %s\n", e.what());
      // Rank 1 may see rank 2's death directly or through rank 0's broken ring, so any
      // failure naming itself and the operation counts.
      return std::string(e.what()).find("rank 1: allreduce ring_chunked") == 0 ? 0 : 2;
    }
    return 1;  // no error at all
  });
  auto comm = connect(config(0));
  auto data = rank_vector(0, 4000);
  comm->allreduce(data);
  CHECK(data[3] == expected_sum(world, 3));
  std::string message;
  int peer = -1;
  const auto t0 = std::chrono::steady_clock::now();
  try {
    for (int i = 0; i < 3; ++i) comm->allreduce(data);
  } catch (const CommError& e) {
    message = e.what();
    peer = e.peer;
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  INFO(message);
  CHECK_THAT(message, Contains("rank 0:") && Contains("allreduce ring_chunked fp32 of 4000 floats"));
  // Gloo alone names rank 2 only when rank 0 happened to open the connection to it; the roll
  // call names it either way: rank 1 answers (it failed too), rank 2 cannot.
  CHECK(peer == 2);
  CHECK_THAT(message, Contains("rank 2 did not answer the roll call through the file store") &&
                          Contains("rank 1 answered"));
  CHECK(seconds < 8.0);
  // The communicator refuses further work and says why.
  CHECK_THROWS_WITH(comm->allreduce(data), Contains("unusable after an earlier failure"));
  CHECK(wait_children(pids, milliseconds(10000)) == std::vector<int>{0, 0});
}

TEST_CASE("comm faults: a failure outside Gloo names the silent rank through the same roll call", "[comm]") {
  // What the NCCL path does when a collective never finishes: each failing rank calls the roll
  // call itself. Ranks 0 and 1 fail; rank 2 stays silent (hung), and the mesh is unusable after.
  const int world = 3, hung = 2;
  const auto timeout = milliseconds(1000);
  auto comms = connect_threads(world, timeout);
  std::vector<std::string> text(world), after(world);
  std::vector<std::vector<int>> silent(world);
  std::atomic<int> done{0};
  const auto errors = on_threads(world, [&](int r) {
    auto& comm = *comms[static_cast<std::size_t>(r)];
    if (r == hung) {
      while (done.load() < world - 1) std::this_thread::sleep_for(milliseconds(10));
      return;
    }
    text[static_cast<std::size_t>(r)] = comm.roll_call("NCCL allreduce of bucket 3", &silent[static_cast<std::size_t>(r)]);
    // A second call runs no second roll call (its keys are written once per run).
    after[static_cast<std::size_t>(r)] = comm.roll_call("again") + "|";
    try {
      comm.barrier();
    } catch (const CommError& e) {
      after[static_cast<std::size_t>(r)] += e.what();
    }
    ++done;
  });
  REQUIRE(join_errors(errors) == "");
  for (int r = 0; r < world - 1; ++r) {
    INFO("rank " << r << ": " << text[static_cast<std::size_t>(r)]);
    CHECK_THAT(text[static_cast<std::size_t>(r)], Contains("rank 2 did not answer the roll call"));
    CHECK_THAT(text[static_cast<std::size_t>(r)], Contains("rank " + std::to_string(1 - r) + " answered"));
    CHECK(silent[static_cast<std::size_t>(r)] == std::vector<int>{hung});
    CHECK_THAT(after[static_cast<std::size_t>(r)], Contains("|") && Contains("unusable after an earlier failure") &&
                                                       Contains("NCCL allreduce of bucket 3 failed outside Gloo"));
    CHECK(after[static_cast<std::size_t>(r)].rfind("|", 0) == 0);
  }
  CHECK(roll_call_window(milliseconds(1000)) == milliseconds(200));
  CHECK(roll_call_window(milliseconds(100)) == milliseconds(100));
  CHECK(roll_call_window(milliseconds(60000)) == milliseconds(5000));
}

TEST_CASE("comm faults: a failing rank leaves without the teardown barrier, so its failure is not delayed",
          "[comm]") {
  // Rank 0 is inside a gradient allreduce that rank 1, failing, never joins. Rank 1's
  // communicator goes while its exception unwinds (and, in the second round, after
  // leave_on_failure): the barrier would pair with nothing and wait out the 10 s timeout.
  for (const bool unwinding : {true, false}) {
    CAPTURE(unwinding);
    auto comms = connect_threads(2, milliseconds(10000));
    double leave_s = -1;
    const auto errors = on_threads(2, [&](int r) {
      if (r == 0) {
        std::vector<float> data(1 << 16, 1.0f);
        try {
          comms[0]->allreduce(data, {.algorithm = Algorithm::ring_chunked});
        } catch (const CommError&) {  // rank 1 left: expected
        }
        return;
      }
      std::this_thread::sleep_for(milliseconds(200));  // rank 0 is waiting in its allreduce
      const auto start = std::chrono::steady_clock::now();
      struct Failure {};
      try {
        std::unique_ptr<Communicator> failing = std::move(comms[1]);
        if (!unwinding) {
          failing->leave_on_failure();
          failing.reset();
        }
        throw Failure{};
      } catch (const Failure&) {
      }
      leave_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    });
    CHECK(join_errors(errors) == "");
    CHECK(leave_s >= 0);
    CHECK(leave_s < 2.0);
  }
}

#endif
