// An NCCL communicator for data-parallel gradients, as an RAII type: created from a unique id
// (rank 0's, shared through the ranks' rendezvous store), with NCCL's algorithm chosen for this
// communicator, non-blocking so that every wait can poll ncclCommGetAsyncError and give up after
// the run's communication timeout; aborted after a failure, finalized and destroyed otherwise.
//
// Non-blocking (ncclConfig_t::blocking = 0) rather than NCCL's default because a blocking
// communicator hangs inside ncclCommInitRankConfig or ncclAllReduce when a peer dies, with no
// way for the caller to stop; PyTorch's NCCL watchdog exists for the same reason.
#pragma once

#include <basin/comm.h>
#include <basin/train.h>

#include <cuda_runtime.h>
#include <nccl.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#if NCCL_VERSION_CODE < NCCL_VERSION(2, 14, 0)
#error "basin's NCCL path needs NCCL 2.14 or later (ncclCommInitRankConfig, non-blocking communicators)"
#endif

namespace basin::exec::gpu {

struct EventDeleter {
  void operator()(cudaEvent_t e) const { cudaEventDestroy(e); }
};
using Event = std::unique_ptr<std::remove_pointer_t<cudaEvent_t>, EventDeleter>;
// flags: cudaEventDefault (timed) or cudaEventDisableTiming (ordering only, cheaper).
Event make_event(unsigned flags);

struct StreamOwnerDeleter {
  void operator()(cudaStream_t s) const { cudaStreamDestroy(s); }
};
using OwnedStream = std::unique_ptr<std::remove_pointer_t<cudaStream_t>, StreamOwnerDeleter>;


struct NcclCommOptions {
  int rank = 0, ranks = 1;
  int device = 0;  // the CUDA device this rank's buffers and streams are on
  TrainConfig::NcclAlgorithm algorithm = TrainConfig::NcclAlgorithm::automatic;
  std::chrono::milliseconds timeout{30000};  // for init, every enqueue and every wait
  // Called once after a failure, with the communicator aborted: names the rank at fault (the
  // rendezvous communicator's roll call) and returns the sentence saying so, filling `silent`.
  // When set, waits give up after the timeout less comm::roll_call_window, so that the roll call
  // fits inside the timeout the user chose, as on the Gloo path.
  std::function<std::string(const std::string& what, std::vector<int>& silent)> roll_call;
};

class NcclComm {
 public:
  // Every rank calls it with the same id at about the same time (NCCL's bootstrap connects
  // them); a rank that does not come within the timeout makes the others throw CommError.
  NcclComm(const ncclUniqueId& id, const NcclCommOptions& options);
  ~NcclComm();
  NcclComm(const NcclComm&) = delete;
  NcclComm& operator=(const NcclComm&) = delete;

  ncclComm_t get() const { return comm_; }
  const NcclCommOptions& options() const { return options_; }
  // "rank 1 of 2 on GPU 1", for messages.
  std::string where() const;

  // After a call on the communicator returned ncclInProgress: waits until it is enqueued.
  // Aborts the communicator and throws CommError (naming this rank and `what`) on an
  // asynchronous error or after the timeout.
  void settle(const std::string& what);
  // Waits until `done` (recorded after this communicator's work on its stream) has completed,
  // polling NCCL's asynchronous error; aborts and throws as settle does.
  void wait_for(cudaEvent_t done, const std::string& what);
  // Aborts the communicator (its kernels and threads stop; a peer's collective then waits until
  // its own timeout), after another part of the transport failed. Later calls throw CommError.
  void abort();

 private:
  // `deadline`: when this wait would have timed out. After an early error the roll call waits
  // for it, so that peers still blocked in NCCL (which notice nothing within one machine) reach
  // their own timeout and answer, instead of being named as silent.
  [[noreturn]] void fail(const std::string& what, const std::string& why, bool timed_out,
                         std::chrono::steady_clock::time_point deadline);
  // How long a wait may last before it fails (the timeout, less the roll call's window).
  std::chrono::milliseconds wait_limit() const;

  ncclComm_t comm_ = nullptr;
  NcclCommOptions options_;
};

// Rank 0 creates the unique id (ncclGetUniqueId); all ranks return it, passed through the
// rendezvous store under "<run_id>/shared/nccl-unique-id".
ncclUniqueId share_unique_id(comm::Communicator& rendezvous);

}  // namespace basin::exec::gpu
