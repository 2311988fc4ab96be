// The NCCL gradient transport (nccl_transport.h): buckets allreduced on a communication stream
// while the compute stream goes on with backward.
//
// Ordering, per bucket: an event recorded on the compute stream when backward has enqueued the
// bucket's last gradient; the communication stream waits on it, then runs ncclAllReduce in
// place. With a 16-bit wire the communication stream also narrows the bucket into its stretch of
// one 16-bit copy of the gradients (kernels' cast, bit-identical to the CPU rounding), sums that
// in NCCL's fp16 or bf16, and widens it back: half the bytes on the links, two memory passes on
// the GPU, and the same format and rounding as the Gloo path's 16-bit wire. The widen is
// queued only once NCCL has its kernel on the stream (the communicator is non-blocking). At
// wait(), an event recorded on the communication stream after the last bucket is polled from
// the host (with NCCL's asynchronous error and the timeout, nccl_comm.cc), and the compute
// stream is made to wait on it, so the optimizer's kernels follow the sums on the GPU as
// well as on the host. The host-side wait is what turns a dead peer into an error; it costs the
// host its run-ahead at the step's end only, where it reads the loss anyway.
//
// Timings: each bucket's start and end are timed events on the communication stream, placed on
// the steady clock by their distance from the final event, whose time is when the host saw it
// complete (polling every 20 us).
#include "nccl_transport.h"

#include <basin/cuda_check.h>
#include <basin/kernels.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <typeinfo>
#include <utility>

#include "bucket_events.h"
#include "gpu_backend.h"
#include "nccl_check.h"
#include "nccl_comm.h"

namespace basin::exec::detail {
namespace {

using gpu::BucketEvents;
using gpu::Event;

class NcclTransport final : public GradientTransport {
 public:
  NcclTransport(gpu::CudnnBackend& backend, std::unique_ptr<gpu::NcclComm> comm,
                std::span<float> grads, comm::WirePrecision wire)
      : compute_(backend.stream()), comm_(std::move(comm)), grads_(grads), wire_(wire),
        finished_(gpu::make_event(cudaEventDefault)) {
    if (wire_ != comm::WirePrecision::fp32)
      narrow_ = gpu::DeviceMemory(sizeof(std::uint16_t) * std::max<size_t>(grads_.size(), 1));
    stream_ = gpu::make_communication_stream();
  }
  // The communicator goes first (finalized, or aborted after a failure), so no collective of
  // it can still be reading the 16-bit copy or running on the stream when they are freed.
  ~NcclTransport() override { comm_.reset(); }

  void submit(long long offset, long long count) override {
    if (offset < 0 || count < 0 || offset + count > static_cast<long long>(grads_.size()))
      throw std::invalid_argument("NCCL bucket [" + std::to_string(offset) + ", " +
                                  std::to_string(offset + count) + ") outside the " +
                                  std::to_string(grads_.size()) + " gradients");
    BucketEvents& b = gpu::begin_bucket(buckets_, used_, offset, count, compute_, stream_.get());
    float* data = grads_.data() + offset;
    const auto n = static_cast<size_t>(count);
    // The communicator is non-blocking: ncclAllReduce may return before NCCL has put its kernel
    // on the stream, and until settle() sees it there nothing else may be queued on that stream
    // (NCCL's rule for ncclInProgress), or the widen below could run before the sum.
    if (wire_ == comm::WirePrecision::fp32) {
      NCCL_CHECK_RANK(comm_->options().rank,
                      ncclAllReduce(data, data, n, ncclFloat32, ncclSum, comm_->get(), stream_.get()));
      comm_->settle(bucket_text(b));
    } else {
      const bool half = wire_ == comm::WirePrecision::fp16;
      const auto format = half ? kernels::Precision::fp16 : kernels::Precision::bf16;
      std::uint16_t* low = narrow_.as<std::uint16_t>() + offset;
      kernels::cast_gpu(data, kernels::Precision::fp32, low, format, n, stream_.get());
      NCCL_CHECK_RANK(comm_->options().rank,
                      ncclAllReduce(low, low, n, half ? ncclFloat16 : ncclBfloat16, ncclSum,
                                    comm_->get(), stream_.get()));
      comm_->settle(bucket_text(b));
      kernels::cast_gpu(low, format, data, kernels::Precision::fp32, n, stream_.get());
    }
    CUDA_CHECK(cudaEventRecord(b.end.get(), stream_.get()));
  }

  std::vector<comm::BucketTiming> wait() override {
    if (used_ == 0) return {};
    return gpu::finish_buckets(buckets_, used_, finished_.get(), stream_.get(), compute_, *comm_,
                               "waiting for " + std::to_string(used_) + " gradient buckets");
  }

 private:
  std::string bucket_text(const BucketEvents& b) const {
    return std::string("allreduce of bucket (offset ") + std::to_string(b.offset) + ", " +
           std::to_string(b.count) + " floats, " + comm::name(wire_) + " on the wire)";
  }

  cudaStream_t compute_;
  std::unique_ptr<gpu::NcclComm> comm_;
  std::span<float> grads_;
  comm::WirePrecision wire_;
  gpu::DeviceMemory narrow_;  // the 16-bit wire's copy of the gradients; empty for fp32
  gpu::OwnedStream stream_;
  Event finished_;
  std::vector<BucketEvents> buckets_;  // reused step after step; the first used_ are this step's
  size_t used_ = 0;
};

}  // namespace

gpu::CudnnBackend& gpu_backend_of(Backend& backend) {
  auto* gpu_backend = dynamic_cast<gpu::CudnnBackend*>(&backend);
  if (!gpu_backend)
    throw std::invalid_argument("gpu_collective: NCCL needs basin's GPU backend, not " + backend.name());
  return *gpu_backend;
}

std::unique_ptr<GradientTransport> make_nccl_transport(Backend& backend,
                                                       std::unique_ptr<gpu::NcclComm> comm,
                                                       std::span<float> grads,
                                                       comm::WirePrecision wire) {
  return std::make_unique<NcclTransport>(gpu_backend_of(backend), std::move(comm), grads, wire);
}

std::unique_ptr<GradientTransport> make_nccl_transport(Backend& backend,
                                                       comm::Communicator& rendezvous,
                                                       std::span<float> grads,
                                                       TrainConfig::NcclAlgorithm algorithm,
                                                       comm::WirePrecision wire) {
  const int device = gpu_backend_of(backend).device();
  const ncclUniqueId id = gpu::share_unique_id(rendezvous);
  auto comm = std::make_unique<gpu::NcclComm>(
      id, gpu::NcclCommOptions{.rank = rendezvous.rank(), .ranks = rendezvous.world_size(),
                               .device = device, .algorithm = algorithm,
                               .timeout = rendezvous.timeout(),
                               .roll_call = [&rendezvous](const std::string& what, std::vector<int>& silent) {
                                 return rendezvous.roll_call("NCCL: " + what, &silent);
                               }});
  return make_nccl_transport(backend, std::move(comm), grads, wire);
}

}  // namespace basin::exec::detail
