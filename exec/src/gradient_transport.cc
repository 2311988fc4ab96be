// The two Gloo transports of gradient_transport.h: in place on host gradients, and staged
// through host memory for device gradients. The NCCL one is gpu/nccl_transport.cc.
//
// The staged copy to host is asynchronous (Backend::flat_to_host_async): submit only queues it,
// so the host goes on queueing backward's next layers, and the reducer thread waits for the copy
// just before it sends the bucket. The copies back run at wait(), one per contiguous run, ahead
// of the optimizer on the backend's stream.
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
    auto copied = backend_.flat_to_host_async(device_.data() + offset, host_.data() + offset, count);
    if (!pending_.empty() && pending_.back().second == offset) pending_.back().second += count;
    else pending_.emplace_back(offset, offset + count);
    reducer_.submit(offset, count, std::move(copied));
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
