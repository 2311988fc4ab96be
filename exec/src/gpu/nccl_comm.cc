// NcclComm (nccl_comm.h): creation with the algorithm set through NCCL_ALGO, the polling waits
// that turn a dead or hung peer into an error instead of a hang, and teardown.
//
// NCCL 2.28's ncclConfig_t has no algorithm field; NCCL reads the NCCL_ALGO environment variable
// while it tunes a new communicator (src/graph/tuning.cc, ncclTopoTuneModel, during init). So the
// variable is set for the duration of the init and restored afterwards (AlgoEnvLease); a
// non-blocking init runs on NCCL's own thread, so the variable is restored only after the init
// has settled. setenv is not safe against a concurrent getenv in another thread: basin
// creates communicators before training starts, when only loader threads run (they read none).
#include "nccl_comm.h"

#include <basin/cuda_check.h>

#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "nccl_check.h"

namespace basin::exec::gpu {
namespace {

// NCCL_ALGO as one communicator's creation needs it, held until that creation has settled.
// Creations that want the same value share the lease (the ranks of one process, threads in tests,
// must initialize concurrently or NCCL's bootstrap never completes); one that wants another value
// waits until the variable is back to the user's. nullptr wants the user's own setting.
class AlgoEnvLease {
 public:
  explicit AlgoEnvLease(const char* value) : wanted_(value ? value : "") {
    std::unique_lock lock(mutex());
    State& st = state();
    cv().wait(lock, [&] { return st.holders == 0 || st.value == wanted_; });
    if (st.holders++ == 0) {
      st.value = wanted_;
      st.saved.reset();
      if (const char* old = std::getenv("NCCL_ALGO")) st.saved = old;
      if (!wanted_.empty()) setenv("NCCL_ALGO", wanted_.c_str(), 1);
    }
  }
  ~AlgoEnvLease() {
    std::lock_guard lock(mutex());
    State& st = state();
    if (--st.holders > 0) return;
    if (!wanted_.empty()) {
      if (st.saved) setenv("NCCL_ALGO", st.saved->c_str(), 1);
      else unsetenv("NCCL_ALGO");
    }
    cv().notify_all();
  }
  AlgoEnvLease(const AlgoEnvLease&) = delete;
  AlgoEnvLease& operator=(const AlgoEnvLease&) = delete;

 private:
  struct State {
    int holders = 0;
    std::string value;                 // "" : the user's own NCCL_ALGO, untouched
    std::optional<std::string> saved;  // the user's NCCL_ALGO before the first holder set it
  };
  static std::mutex& mutex() {
    static std::mutex m;
    return m;
  }
  static std::condition_variable& cv() {
    static std::condition_variable c;
    return c;
  }
  static State& state() {
    static State s;
    return s;
  }
  std::string wanted_;
};

void pause() { std::this_thread::sleep_for(std::chrono::microseconds(20)); }

}  // namespace

Event make_event(unsigned flags) {
  cudaEvent_t e = nullptr;
  CUDA_CHECK(cudaEventCreateWithFlags(&e, flags));
  return Event(e);
}

NcclComm::NcclComm(const ncclUniqueId& id, const NcclCommOptions& options) : options_(options) {
  if (options.ranks < 1 || options.rank < 0 || options.rank >= options.ranks)
    throw std::invalid_argument("NCCL communicator: rank " + std::to_string(options.rank) +
                                " of " + std::to_string(options.ranks) + ": expected 0 <= rank < ranks");
  CUDA_CHECK(cudaSetDevice(options.device));
  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = 0;
  config.commName = "basin gradients";
  // CollNet (IB SHARP) is off unless asked for; NCCL runs NVLS across servers only through it.
#if NCCL_MAJOR > 2 || (NCCL_MAJOR == 2 && NCCL_MINOR >= 27)
  if (options.algorithm == TrainConfig::NcclAlgorithm::collnet_chain ||
      options.algorithm == TrainConfig::NcclAlgorithm::nvls)
    config.collnetEnable = 1;
#else
  // Before 2.27 only the environment turns it on (process-wide; a user's own setting is kept).
  if (options.algorithm == TrainConfig::NcclAlgorithm::collnet_chain ||
      options.algorithm == TrainConfig::NcclAlgorithm::nvls)
    setenv("NCCL_COLLNET_ENABLE", "1", 0);
#endif
  const AlgoEnvLease algo(nccl_algo_name(options.algorithm));
  const ncclResult_t init = ncclCommInitRankConfig(&comm_, options.ranks, id, options.rank, &config);
  // A constructor that throws runs no destructor: a communicator NCCL already made (its
  // threads running) is aborted here before the error leaves.
  if (init != ncclSuccess && init != ncclInProgress && comm_) {
    ncclCommAbort(comm_);
    comm_ = nullptr;
  }
  NCCL_CHECK_RANK(options.rank, init);
  settle("creating the NCCL communicator (the other ranks must join NCCL's bootstrap)");
}

NcclComm::~NcclComm() {
  if (!comm_) return;  // aborted by fail()
  // Finalize flushes outstanding work; bounded like every other wait, else aborted instead.
  const ncclResult_t finalize = ncclCommFinalize(comm_);
  if (finalize == ncclSuccess || finalize == ncclInProgress) {
    ncclResult_t state = ncclInProgress;
    const auto deadline = std::chrono::steady_clock::now() + options_.timeout;
    while (ncclCommGetAsyncError(comm_, &state) == ncclSuccess && state == ncclInProgress &&
           std::chrono::steady_clock::now() < deadline)
      pause();
    if (state == ncclSuccess) {
      ncclCommDestroy(comm_);
      return;
    }
  }
  ncclCommAbort(comm_);
}

void NcclComm::abort() {
  if (!comm_) return;
  ncclCommAbort(comm_);
  comm_ = nullptr;
}

std::string NcclComm::where() const {
  return "rank " + std::to_string(options_.rank) + " of " + std::to_string(options_.ranks) +
         " on GPU " + std::to_string(options_.device);
}

std::chrono::milliseconds NcclComm::wait_limit() const {
  return options_.roll_call ? options_.timeout - comm::roll_call_window(options_.timeout) : options_.timeout;
}

void NcclComm::fail(const std::string& what, const std::string& why, bool timed_out,
                    std::chrono::steady_clock::time_point deadline) {
  ncclCommAbort(comm_);  // stops NCCL's kernels and threads; peers then see their own errors
  comm_ = nullptr;
  // NCCL's error names no rank; the roll call through the rendezvous store names the silent one.
  std::vector<int> silent;
  std::string call;
  if (options_.roll_call) {
    if (!timed_out) std::this_thread::sleep_until(deadline);
    try {
      call = options_.roll_call(what, silent);
    } catch (const std::exception& e) {
      call = std::string("; the roll call failed too (") + e.what() + ")";
    }
  }
  throw comm::CommError("NCCL, " + where() + ", " + what + ": " + why + call, options_.rank,
                        silent.size() == 1 ? silent.front() : -1, timed_out);
}

void NcclComm::settle(const std::string& what) {
  if (!comm_) throw comm::CommError("NCCL, " + where() + ": the communicator was aborted after an earlier failure",
                                    options_.rank);
  const auto deadline = std::chrono::steady_clock::now() + wait_limit();
  while (true) {
    ncclResult_t state = ncclSuccess;
    const ncclResult_t asked = ncclCommGetAsyncError(comm_, &state);
    if (asked != ncclSuccess) state = asked;
    if (state == ncclSuccess) return;
    if (state != ncclInProgress) {
      const char* last = ncclGetLastError(comm_);
      fail(what, std::string(ncclGetErrorString(state)) + (last && *last ? std::string(" (") + last + ")" : ""),
           false, deadline);
    }
    if (std::chrono::steady_clock::now() >= deadline)
      fail(what, "no progress within " + std::to_string(wait_limit().count()) +
                     " ms (a rank is dead, hung or never joined); communicator aborted", true, deadline);
    pause();
  }
}

void NcclComm::wait_for(cudaEvent_t done, const std::string& what) {
  if (!comm_) throw comm::CommError("NCCL, " + where() + ": the communicator was aborted after an earlier failure",
                                    options_.rank);
  const auto deadline = std::chrono::steady_clock::now() + wait_limit();
  while (true) {
    const cudaError_t q = cudaEventQuery(done);
    if (q == cudaSuccess) return;
    if (q != cudaErrorNotReady) CUDA_CHECK(q);
    ncclResult_t state = ncclSuccess;
    const ncclResult_t asked = ncclCommGetAsyncError(comm_, &state);
    if (asked != ncclSuccess) state = asked;
    if (state != ncclSuccess && state != ncclInProgress) {
      const char* last = ncclGetLastError(comm_);
      fail(what, std::string(ncclGetErrorString(state)) + (last && *last ? std::string(" (") + last + ")" : ""),
           false, deadline);
    }
    if (std::chrono::steady_clock::now() >= deadline)
      fail(what, "not done within " + std::to_string(wait_limit().count()) +
                     " ms (a rank is dead, hung or stopped calling the collective); communicator aborted",
           true, deadline);
    pause();
  }
}

ncclUniqueId share_unique_id(comm::Communicator& rendezvous) {
  ncclUniqueId id{};
  std::vector<char> bytes;
  if (rendezvous.rank() == 0) {
    NCCL_CHECK_RANK(0, ncclGetUniqueId(&id));
    bytes.assign(id.internal, id.internal + sizeof id.internal);
  }
  bytes = rendezvous.share("nccl-unique-id", std::move(bytes));
  if (bytes.size() != sizeof id.internal)
    throw comm::CommError("rank " + std::to_string(rendezvous.rank()) + ": the NCCL unique id in the rendezvous store has " +
                              std::to_string(bytes.size()) + " bytes, expected " + std::to_string(sizeof id.internal) +
                              " (ranks built with different NCCL versions?)",
                          rendezvous.rank());
  std::memcpy(id.internal, bytes.data(), sizeof id.internal);
  return id;
}

}  // namespace basin::exec::gpu
