// Helpers for the comm tests: meshes of ranks on threads (one in-process store) or on forked
// processes (a file store in a temporary directory), and the closed-form test vectors.
//
// Catch2's assertions are not thread-safe, so rank threads only record what they saw (an error
// text, numbers) and the test thread asserts afterwards. Forked ranks check their own results and
// report through the exit status; they _exit() so the child never runs Catch's teardown.
#pragma once

#include <basin/comm.h>
#include <basin/kernels.h>

#include "../temp_dir.h"

#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace basin::comm::test {

using std::chrono::milliseconds;

// Rank r's element i: (r + 1) * (i % 7 + 1). Across p ranks the sum is (i % 7 + 1) * p(p+1)/2.
inline float rank_value(int rank, long long i) { return static_cast<float>((rank + 1) * (i % 7 + 1)); }
inline float expected_sum(int world, long long i) { return static_cast<float>((i % 7 + 1) * world * (world + 1) / 2); }

inline std::vector<float> rank_vector(int rank, long long count, long long first_index = 0) {
  std::vector<float> v(static_cast<std::size_t>(count));
  for (long long i = 0; i < count; ++i) v[static_cast<std::size_t>(i)] = rank_value(rank, first_index + i);
  return v;
}

// What one rank found wrong against expected_sum, as text (empty when every element matched).
inline std::string check_sum(const std::vector<float>& got, int world, const std::string& what) {
  for (std::size_t i = 0; i < got.size(); ++i)
    if (got[i] != expected_sum(world, static_cast<long long>(i)))
      return what + ": element " + std::to_string(i) + " is " + std::to_string(got[i]) + ", expected " +
             std::to_string(expected_sum(world, static_cast<long long>(i)));
  return "";
}

// How many of `values` are not values of the 16-bit wire format (fp16 or bf16): after an
// allreduce whose last rounding was to that format, none should be.
inline long long off_wire_format(const std::vector<float>& values, WirePrecision precision) {
  namespace kn = basin::kernels;
  long long off = 0;
  for (float x : values)
    off += (precision == WirePrecision::bf16 ? kn::bf16_bits_to_float(kn::float_to_bf16_bits(x))
                                             : kn::fp16_bits_to_float(kn::float_to_fp16_bits(x))) != x;
  return off;
}

// A fresh directory under the system's temp dir, removed with the object.
using TempDir = basin::test::TempDir;

// A run id no earlier test used, so keys never collide inside a shared store.
inline std::string unique_run_id(const std::string& what) {
  static std::atomic<int> counter{0};
  return what + "-" + std::to_string(getpid()) + "-" + std::to_string(counter++);
}

// ranks_per_server 0: every rank on one machine as far as local_rank says, and no server layout
// (local_world_size 1); else servers of that many consecutive ranks, as torchrun numbers them.
inline RendezvousConfig thread_config(int rank, int world, const std::shared_ptr<InProcessStore>& store,
                                      const std::string& run_id, milliseconds timeout, int ranks_per_server = 0) {
  RendezvousConfig c;
  c.rank = rank;
  c.world_size = world;
  c.local_rank = ranks_per_server > 0 ? rank % ranks_per_server : rank;
  c.local_world_size = ranks_per_server > 0 ? ranks_per_server : 1;
  c.store = StoreKind::in_process;
  c.in_process = store;
  c.run_id = run_id;
  c.timeout = timeout;
  return c;
}

// Runs fn(rank) on `world` threads at once; returns each rank's exception text ("" when none).
inline std::vector<std::string> on_threads(int world, const std::function<void(int)>& fn) {
  std::vector<std::string> errors(static_cast<std::size_t>(world));
  std::vector<std::thread> threads;
  for (int r = 0; r < world; ++r)
    threads.emplace_back([&, r] {
      try {
        fn(r);
      } catch (const std::exception& e) {
        errors[static_cast<std::size_t>(r)] = e.what();
        if (errors[static_cast<std::size_t>(r)].empty()) errors[static_cast<std::size_t>(r)] = "(empty message)";
      }
    });
  for (auto& t : threads) t.join();
  return errors;
}

// The communicators of a mesh of threads. They are destroyed on one thread each, all at once:
// a Communicator's destructor waits (a barrier, up to the timeout) for every rank to finish, so
// destroying them one after another on a single thread would wait out the timeout.
class ThreadMesh {
 public:
  explicit ThreadMesh(std::vector<std::unique_ptr<Communicator>> comms) : comms_(std::move(comms)) {}
  ThreadMesh(ThreadMesh&&) = default;
  ~ThreadMesh() {
    const int world = static_cast<int>(comms_.size());
    on_threads(world, [&](int r) { comms_[static_cast<std::size_t>(r)].reset(); });
  }
  std::unique_ptr<Communicator>& operator[](std::size_t r) { return comms_[r]; }
  std::size_t size() const { return comms_.size(); }

 private:
  std::vector<std::unique_ptr<Communicator>> comms_;
};

// Connects `world` ranks on threads through one in-process store.
inline ThreadMesh connect_threads(int world, milliseconds timeout = milliseconds(10000), int ranks_per_server = 0) {
  auto store = make_in_process_store();
  const std::string run_id = unique_run_id("threads");
  std::vector<std::unique_ptr<Communicator>> comms(static_cast<std::size_t>(world));
  const auto errors = on_threads(world, [&](int r) {
    comms[static_cast<std::size_t>(r)] = connect(thread_config(r, world, store, run_id, timeout, ranks_per_server));
  });
  for (const auto& e : errors)
    if (!e.empty()) throw std::runtime_error("connecting the test mesh: " + e);
  return ThreadMesh(std::move(comms));
}

inline std::string join_errors(const std::vector<std::string>& errors) {
  std::string all;
  for (std::size_t r = 0; r < errors.size(); ++r)
    if (!errors[r].empty()) all += "[rank " + std::to_string(r) + "] " + errors[r] + "\n";
  return all;
}

// Forks one child per rank in `ranks`; each runs fn(rank) and _exit()s with its return value
// (an exception becomes 99 with the message on stderr).
inline std::vector<pid_t> fork_ranks(const std::vector<int>& ranks, const std::function<int(int)>& fn) {
  std::vector<pid_t> pids;
  std::fflush(nullptr);
  for (int r : ranks) {
    const pid_t pid = fork();
    if (pid == 0) {
      int code = 98;
      try {
        code = fn(r);
      } catch (const std::exception& e) {
        std::fprintf(stderr, "forked rank %d: %s\n", r, e.what());
        code = 99;
      }
      std::fflush(nullptr);
      _exit(code);
    }
    pids.push_back(pid);
  }
  return pids;
}

// Waits for the children; one still running at the deadline is killed and reported as -9.
inline std::vector<int> wait_children(const std::vector<pid_t>& pids, milliseconds deadline_after) {
  std::vector<int> codes(pids.size(), -1);
  const auto deadline = std::chrono::steady_clock::now() + deadline_after;
  std::size_t left = pids.size();
  while (left > 0) {
    for (std::size_t i = 0; i < pids.size(); ++i) {
      if (codes[i] != -1) continue;
      int status = 0;
      if (waitpid(pids[i], &status, WNOHANG) == pids[i]) {
        codes[i] = WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
        --left;
      }
    }
    if (left == 0) break;
    if (std::chrono::steady_clock::now() > deadline) {
      for (std::size_t i = 0; i < pids.size(); ++i)
        if (codes[i] == -1) {
          kill(pids[i], SIGKILL);
          waitpid(pids[i], nullptr, 0);
          codes[i] = -9;
        }
      break;
    }
    std::this_thread::sleep_for(milliseconds(5));
  }
  return codes;
}

}  // namespace basin::comm::test
