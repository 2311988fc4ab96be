// The two Gloo transports of gradient_transport.h: in place on host gradients, and staged
// through host memory for device gradients. The NCCL one is gpu/nccl_transport.cc.
//
// The staged copy to host is synchronous (flat_to_host waits for the backend's stream), so the
// host thread stops at each bucket until the GPU has caught up with backward; the allreduce of
// that bucket then runs on the reducer thread while the host enqueues the next layers. An
// asynchronous copy (an event per bucket and a copy stream) would keep the host ahead of the GPU;
// it needs stream hooks in the Backend interface, which only the NCCL path has so far.
#include "gradient_transport.h"

#include <algorithm>
#include <utility>

namespace basin::exec::detail {
namespace {

class HostTransport final : public GradientTransport {
 public:
  HostTransport(comm::Communicator& comm, std::span<float> grads, const comm::AllreduceOptions& o)
      : reducer_(comm, grads, o) {}
  void submit(long long offset, long long count) override { reducer_.submit(offset, count); }
  std::vector<comm::BucketTiming> wait() override { return reducer_.wait(); }

 private:
  comm::BucketReducer reducer_;
};

class StagedTransport final : public GradientTransport {
 public:
  StagedTransport(Backend& backend, comm::Communicator& comm, std::span<float> grads,
                  const comm::AllreduceOptions& o)
      : backend_(backend),
        device_(grads),
        host_memory_(backend.alloc_host_staging(static_cast<long long>(grads.size()))),
        // One long-lived host array: Gloo caches its algorithms per buffer address.
        host_(host_memory_.get(), grads.size()),
        reducer_(comm, host_, o) {}

  void submit(long long offset, long long count) override {
    backend_.flat_to_host(device_.data() + offset, host_.data() + offset, count);
    if (!pending_.empty() && pending_.back().second == offset) pending_.back().second += count;
    else pending_.emplace_back(offset, offset + count);
    reducer_.submit(offset, count);
  }

  std::vector<comm::BucketTiming> wait() override {
    std::vector<comm::BucketTiming> timings = reducer_.wait();
    for (const auto& [begin, end] : std::exchange(pending_, {}))
      backend_.flat_from_host(host_.data() + begin, device_.data() + begin, end - begin);
    return timings;
  }

 private:
  Backend& backend_;
  std::span<float> device_;
  std::shared_ptr<float> host_memory_;
  std::span<float> host_;
  comm::BucketReducer reducer_;
  std::vector<std::pair<long long, long long>> pending_;  // [begin, end) runs to copy back
};

}  // namespace

std::unique_ptr<GradientTransport> make_host_transport(comm::Communicator& comm,
                                                       std::span<float> grads,
                                                       const comm::AllreduceOptions& options) {
  return std::make_unique<HostTransport>(comm, grads, options);
}

std::unique_ptr<GradientTransport> make_staged_transport(Backend& backend, comm::Communicator& comm,
                                                         std::span<float> grads,
                                                         const comm::AllreduceOptions& options) {
  return std::make_unique<StagedTransport>(backend, comm, grads, options);
}

}  // namespace basin::exec::detail
