// The CUDA events each gradient bucket of a GPU transport is ordered and timed by, reused step
// after step, the conversion of their times to the steady clock the trainer's trace uses, and the
// communication stream they are recorded on.
// Shared by NCCL's flat transport and the three phases (nccl_transport.cc, nccl_hierarchical.cc).
#pragma once

#include <basin/comm.h>
#include <basin/cuda_check.h>

#include <chrono>
#include <string>
#include <utility>
#include <vector>

#include "nccl_comm.h"

namespace basin::exec::gpu {

struct BucketEvents {
  Event ready;   // compute stream: backward has enqueued the bucket's last gradient
  Event start;   // communication stream: the bucket's first operation (timed)
  Event end;     // communication stream: the sum is back in the gradients (timed)
  Event copied;  // communication stream: a leader's copy to host memory is done (three phases)
  long long offset = 0, count = 0;
  std::chrono::steady_clock::time_point submitted;
};

// The highest priority: a bucket's collective kernels are scheduled ahead of the backward kernels
// queued behind them, so communication starts as soon as its input is ready.
inline OwnedStream make_communication_stream() {
  int least = 0, greatest = 0;
  CUDA_CHECK(cudaDeviceGetStreamPriorityRange(&least, &greatest));
  cudaStream_t s = nullptr;
  CUDA_CHECK(cudaStreamCreateWithPriority(&s, cudaStreamNonBlocking, greatest));
  return OwnedStream(s);
}

// This step's next bucket, its events made on first use and kept.
inline BucketEvents& next_bucket(std::vector<BucketEvents>& buckets, size_t& used) {
  if (used == buckets.size())
    buckets.push_back({make_event(cudaEventDisableTiming), make_event(cudaEventDefault),
                       make_event(cudaEventDefault), make_event(cudaEventDisableTiming)});
  return buckets[used++];
}

// This step's next bucket, begun: its events made on first use, the communication stream made
// to wait for what the compute stream has queued so far (backward up to the bucket's last
// gradient), and its start timed there.
inline BucketEvents& begin_bucket(std::vector<BucketEvents>& buckets, size_t& used, long long offset,
                                  long long count, cudaStream_t compute, cudaStream_t comm_stream) {
  BucketEvents& b = next_bucket(buckets, used);
  b.offset = offset, b.count = count, b.submitted = std::chrono::steady_clock::now();
  CUDA_CHECK(cudaEventRecord(b.ready.get(), compute));
  CUDA_CHECK(cudaStreamWaitEvent(comm_stream, b.ready.get(), 0));
  CUDA_CHECK(cudaEventRecord(b.start.get(), comm_stream));
  return b;
}

// The first `used` buckets' timings: each event placed on the steady clock by its distance from
// `finished` (recorded after them on the same stream), which the host saw complete at `seen`.
inline std::vector<comm::BucketTiming> bucket_timings(const std::vector<BucketEvents>& buckets, size_t used,
                                                      cudaEvent_t finished,
                                                      std::chrono::steady_clock::time_point seen) {
  auto before_seen = [&](cudaEvent_t e) {
    float ms = 0;
    CUDA_CHECK(cudaEventElapsedTime(&ms, e, finished));
    return seen - std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                      std::chrono::duration<double, std::milli>(ms));
  };
  std::vector<comm::BucketTiming> timings;
  for (size_t i = 0; i < used; ++i) {
    const BucketEvents& b = buckets[i];
    timings.push_back({.offset = b.offset, .count = b.count, .submitted = b.submitted,
                       .start = before_seen(b.start.get()), .end = before_seen(b.end.get())});
  }
  return timings;
}

// The step's buckets, done: `finished` recorded after them, waited for on the host (with the
// communicator's error and timeout), the compute stream ordered after it, and their timings.
inline std::vector<comm::BucketTiming> finish_buckets(const std::vector<BucketEvents>& buckets, size_t& used,
                                                      cudaEvent_t finished, cudaStream_t comm_stream,
                                                      cudaStream_t compute, NcclComm& comm,
                                                      const std::string& what) {
  CUDA_CHECK(cudaEventRecord(finished, comm_stream));
  comm.wait_for(finished, what);
  const auto seen = std::chrono::steady_clock::now();
  CUDA_CHECK(cudaStreamWaitEvent(compute, finished, 0));
  return bucket_timings(buckets, std::exchange(used, 0), finished, seen);
}

}  // namespace basin::exec::gpu
