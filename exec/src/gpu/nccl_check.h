// Checked NCCL calls, in the style of CUDA_CHECK (basin/cuda_check.h): a failing call throws
// comm::CommError with file:line, the call's text, NCCL's error string and NCCL's last error
// message (ncclGetLastError, which says what went wrong where the code alone does not), and the
// rank when the caller knows it. ncclInProgress is not a failure: a non-blocking communicator
// returns it while an operation is still being set up (nccl_comm.cc waits for it to settle).
#pragma once

#include <basin/comm.h>

#include <nccl.h>

#include <string>

namespace basin::exec::gpu::detail {

[[noreturn]] inline void nccl_fail(ncclResult_t result, const char* call, const char* file,
                                   int line, int rank) {
  const char* last = ncclGetLastError(nullptr);
  throw comm::CommError((rank >= 0 ? "rank " + std::to_string(rank) + ": " : std::string()) +
                            file + ":" + std::to_string(line) + ": " + call + " failed: " +
                            ncclGetErrorString(result) +
                            (last && *last ? std::string(" (") + last + ")" : std::string()),
                        rank, -1, false);
}

}  // namespace basin::exec::gpu::detail

// NCCL_CHECK(call) for calls that know no rank; NCCL_CHECK_RANK(rank, call) names it.
#define NCCL_CHECK_RANK(rank, call)                                                   \
  do {                                                                                \
    ncclResult_t basin_nccl_ = (call);                                                \
    if (basin_nccl_ != ncclSuccess && basin_nccl_ != ncclInProgress)                  \
      ::basin::exec::gpu::detail::nccl_fail(basin_nccl_, #call, __FILE__, __LINE__, rank); \
  } while (0)
#define NCCL_CHECK(call) NCCL_CHECK_RANK(-1, call)
