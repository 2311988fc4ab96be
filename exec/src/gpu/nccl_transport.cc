// The NCCL gradient transport (nccl_transport.h): buckets allreduced on a communication stream
// while the compute stream goes on with backward.
//
// Ordering, per bucket: an event recorded on the compute stream when backward has enqueued the
// bucket's last gradient; the communication stream waits on it, then runs ncclAllReduce in
// place. At wait(), an event recorded on the communication stream after the last bucket is
// polled from the host (with NCCL's asynchronous error and the timeout, nccl_comm.cc), and the
// compute stream is made to wait on it, so the optimizer's kernels follow the sums on the GPU as
// well as on the host. The host-side wait is what turns a dead peer into an error; it costs the
// host its run-ahead at the step's end only, where it reads the loss anyway.
//
// Timings: each bucket's start and end are timed events on the communication stream, placed on
// the steady clock by their distance from the final event, whose time is when the host saw it
// complete (polling every 20 us).
#include "nccl_transport.h"

#include <basin/cuda_check.h>

#include <chrono>
#include <stdexcept>
#include <typeinfo>

#include "gpu_backend.h"
#include "nccl_check.h"
#include "nccl_comm.h"

namespace basin::exec::detail {
namespace {

using gpu::Event;

struct BucketEvents {
  Event ready, start, end;
  long long offset = 0, count = 0;
  std::chrono::steady_clock::time_point submitted;
};

class NcclTransport final : public GradientTransport {
 public:
  NcclTransport(gpu::CudnnBackend& backend, std::unique_ptr<gpu::NcclComm> comm,
                std::span<float> grads)
      : compute_(backend.stream()), comm_(std::move(comm)), grads_(grads),
        finished_(gpu::make_event(cudaEventDefault)) {
    cudaStream_t s = nullptr;
    int least = 0, greatest = 0;
    CUDA_CHECK(cudaDeviceGetStreamPriorityRange(&least, &greatest));
    // The highest priority: a bucket's allreduce kernels are scheduled ahead of the backward
    // kernels queued behind them, so communication starts as soon as its input is ready.
    CUDA_CHECK(cudaStreamCreateWithPriority(&s, cudaStreamNonBlocking, greatest));
    stream_.reset(s);
  }

  void submit(long long offset, long long count) override {
    if (offset < 0 || count < 0 || offset + count > static_cast<long long>(grads_.size()))
      throw std::invalid_argument("NCCL bucket [" + std::to_string(offset) + ", " +
                                  std::to_string(offset + count) + ") outside the " +
                                  std::to_string(grads_.size()) + " gradients");
    if (used_ == buckets_.size())
      buckets_.push_back({gpu::make_event(cudaEventDisableTiming), gpu::make_event(cudaEventDefault),
                          gpu::make_event(cudaEventDefault)});
    BucketEvents& b = buckets_[used_++];
    b.offset = offset, b.count = count, b.submitted = std::chrono::steady_clock::now();
    CUDA_CHECK(cudaEventRecord(b.ready.get(), compute_));
    CUDA_CHECK(cudaStreamWaitEvent(stream_.get(), b.ready.get(), 0));
    CUDA_CHECK(cudaEventRecord(b.start.get(), stream_.get()));
    float* data = grads_.data() + offset;
    NCCL_CHECK_RANK(comm_->options().rank,
                    ncclAllReduce(data, data, static_cast<size_t>(count), ncclFloat32, ncclSum,
                                  comm_->get(), stream_.get()));
    comm_->settle(bucket_text(b));
    CUDA_CHECK(cudaEventRecord(b.end.get(), stream_.get()));
  }

  std::vector<comm::BucketTiming> wait() override {
    std::vector<comm::BucketTiming> timings;
    if (used_ == 0) return timings;
    CUDA_CHECK(cudaEventRecord(finished_.get(), stream_.get()));
    comm_->wait_for(finished_.get(), "waiting for " + std::to_string(used_) + " gradient buckets");
    const auto seen = std::chrono::steady_clock::now();
    CUDA_CHECK(cudaStreamWaitEvent(compute_, finished_.get(), 0));
    auto before_seen = [&](cudaEvent_t e) {
      float ms = 0;
      CUDA_CHECK(cudaEventElapsedTime(&ms, e, finished_.get()));
      return seen - std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                        std::chrono::duration<double, std::milli>(ms));
    };
    for (size_t i = 0; i < used_; ++i) {
      const BucketEvents& b = buckets_[i];
      timings.push_back({.offset = b.offset, .count = b.count, .submitted = b.submitted,
                         .start = before_seen(b.start.get()), .end = before_seen(b.end.get())});
    }
    used_ = 0;
    return timings;
  }

 private:
  std::string bucket_text(const BucketEvents& b) const {
    return "allreduce of bucket (offset " + std::to_string(b.offset) + ", " +
           std::to_string(b.count) + " floats)";
  }

  cudaStream_t compute_;
  std::unique_ptr<gpu::NcclComm> comm_;
  std::span<float> grads_;
  gpu::OwnedStream stream_;
  Event finished_;
  std::vector<BucketEvents> buckets_;  // reused step after step; the first used_ are this step's
  size_t used_ = 0;
};

}  // namespace

std::unique_ptr<GradientTransport> make_nccl_transport(Backend& backend,
                                                       comm::Communicator& rendezvous,
                                                       std::span<float> grads,
                                                       TrainConfig::NcclAlgorithm algorithm) {
  auto* gpu_backend = dynamic_cast<gpu::CudnnBackend*>(&backend);
  if (!gpu_backend)
    throw std::invalid_argument("gpu_collective: nccl needs basin's GPU backend, not " + backend.name());
  const int device = gpu_backend->device();
  const ncclUniqueId id = gpu::share_unique_id(rendezvous);
  auto comm = std::make_unique<gpu::NcclComm>(
      id, gpu::NcclCommOptions{.rank = rendezvous.rank(), .ranks = rendezvous.world_size(),
                               .device = device, .algorithm = algorithm,
                               .timeout = rendezvous.timeout(),
                               .roll_call = [&rendezvous](const std::string& what, std::vector<int>& silent) {
                                 return rendezvous.roll_call("NCCL: " + what, &silent);
                               }});
  return std::make_unique<NcclTransport>(*gpu_backend, std::move(comm), grads);
}

}  // namespace basin::exec::detail
