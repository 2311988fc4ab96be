// Goyal et al.'s three phases on GPU ranks, as basin's simulator prices them and as Gloo's CUDA
// allreduce ran them for the paper: NCCL's reduce onto each server's first rank, one copy of that
// sum to host memory, Gloo's allreduce among the servers' first ranks (comm's leaders' phase), one
// copy back and NCCL's broadcast inside the server. Each server moves its gradients through host
// memory once, where the Gloo path on GPUs (gradient_transport.cc, staged) copies every rank's.
//
// Ordering, per bucket, on one communication stream (the same on every rank of a server, as NCCL
// requires of one communicator: reduce i, broadcast i, reduce i + 1, ...):
//   wait for backward's event -> [narrow to 16 bits] -> ncclReduce to local rank 0
//   leader only: [widen] -> copy to pinned host memory (event `copied`) -> a host function that
//     blocks the stream until the Gloo reducer thread has summed the bucket -> copy back [narrow]
//   -> ncclBroadcast from local rank 0 -> [widen]
// The Gloo reducer thread waits for `copied` before sending and signals when the sum is in place;
// the host function is what lets the host go on queueing backward's kernels while the stream
// waits for the network. Buckets follow one another, as the simulator's overlap model has them.
//
// Servers are torchrun's numbering (comm::RendezvousConfig::local_world_size), each with its own
// NCCL communicator; world rank 0 makes every server's unique id and shares them through the
// rendezvous store. After a failure the host functions are released (abandon()), so that the
// stream drains and NCCL's finalize or abort can end the communicator.
#include <basin/cuda_check.h>
#include <basin/kernels.h>

#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <thread>

#include "bucket_events.h"
#include "gpu_backend.h"
#include "nccl_check.h"
#include "nccl_comm.h"
#include "nccl_transport.h"

namespace basin::exec::detail {
namespace {

using gpu::BucketEvents;

// How far the leaders' Gloo phase has got, shared with the host functions on the stream.
struct LeadersProgress {
  std::mutex mutex;
  std::condition_variable changed;
  long long summed = 0;    // buckets whose Gloo sum is in host memory, since the transport began
  bool abandoned = false;  // after a failure or at teardown: every host function returns
};

struct Ticket {
  std::shared_ptr<LeadersProgress> progress;
  long long bucket;  // its number among all the leader's buckets
};

void CUDART_CB wait_for_leaders(void* data) {
  const std::unique_ptr<Ticket> ticket(static_cast<Ticket*>(data));
  LeadersProgress& p = *ticket->progress;
  std::unique_lock lock(p.mutex);
  p.changed.wait(lock, [&] { return p.summed > ticket->bucket || p.abandoned; });
}

class HierarchicalTransport final : public GradientTransport {
 public:
  HierarchicalTransport(gpu::CudnnBackend& backend, comm::Communicator& world,
                        std::unique_ptr<gpu::NcclComm> server, std::span<float> grads,
                        const comm::AllreduceOptions& options)
      : compute_(backend.stream()), device_(backend.device()), server_(std::move(server)), grads_(grads),
        wire_(options.precision), leader_(world.local_rank() == 0),
        between_servers_(world.world_size() > world.local_world_size()),
        timeout_(world.timeout()), stream_(gpu::make_communication_stream()),
        finished_(gpu::make_event(cudaEventDefault)), progress_(std::make_shared<LeadersProgress>()) {
    if (wire_ != comm::WirePrecision::fp32)
      narrow_ = gpu::DeviceMemory(sizeof(std::uint16_t) * std::max<size_t>(grads_.size(), 1));
    if (leader_ && between_servers_) {
      host_memory_ = backend.alloc_host_staging(static_cast<long long>(grads_.size()));
      host_ = std::span<float>(host_memory_.get(), grads_.size());
      comm::AllreduceOptions leaders = options;
      leaders.algorithm = comm::Algorithm::hierarchical;
      leaders.leaders_only = true;
      reducer_ = std::make_unique<comm::BucketReducer>(world, host_, leaders);
    }
  }

  // Host functions released first, then the Gloo thread stopped, then the communicator finalized
  // (or aborted) while the stream, the copies and the host memory are still there.
  ~HierarchicalTransport() override {
    abandon();
    reducer_.reset();
    server_.reset();
  }

  void submit(long long offset, long long count) override {
    if (offset < 0 || count < 0 || offset + count > static_cast<long long>(grads_.size()))
      throw std::invalid_argument("bucket [" + std::to_string(offset) + ", " + std::to_string(offset + count) +
                                  ") outside the " + std::to_string(grads_.size()) + " gradients");
    BucketEvents& b = gpu::next_bucket(buckets_, used_);
    b.offset = offset, b.count = count, b.submitted = std::chrono::steady_clock::now();
    cudaStream_t s = stream_.get();
    CUDA_CHECK(cudaEventRecord(b.ready.get(), compute_));
    CUDA_CHECK(cudaStreamWaitEvent(s, b.ready.get(), 0));
    CUDA_CHECK(cudaEventRecord(b.start.get(), s));
    float* data = grads_.data() + offset;
    const auto n = static_cast<size_t>(count);
    const bool narrow = wire_ != comm::WirePrecision::fp32;
    const auto format = wire_ == comm::WirePrecision::fp16 ? kernels::Precision::fp16 : kernels::Precision::bf16;
    const ncclDataType_t type =
        !narrow ? ncclFloat32 : wire_ == comm::WirePrecision::fp16 ? ncclFloat16 : ncclBfloat16;
    void* wire = data;
    if (narrow) {
      wire = narrow_.as<std::uint16_t>() + offset;
      kernels::cast_gpu(data, kernels::Precision::fp32, wire, format, n, s);
    }
    const int rank = server_->options().rank;
    // Non-blocking communicator: nothing else may be queued on the stream until NCCL has its
    // kernel there (settle), as in nccl_transport.cc.
    NCCL_CHECK_RANK(rank, ncclReduce(wire, wire, n, type, ncclSum, 0, server_->get(), s));
    server_->settle(text(b, "NCCL's reduce onto the server's first rank"));
    if (leader_ && between_servers_) {
      // The host holds fp32: a 16-bit sum widens exactly, and Gloo's wire rounds it back exactly.
      if (narrow) kernels::cast_gpu(wire, format, data, kernels::Precision::fp32, n, s);
      CUDA_CHECK(cudaMemcpyAsync(host_.data() + offset, data, n * sizeof(float), cudaMemcpyDeviceToHost, s));
      CUDA_CHECK(cudaEventRecord(b.copied.get(), s));
      try {
        reducer_->submit(offset, count, copied_wait(b.copied.get()), [p = progress_] {
          { const std::lock_guard lock(p->mutex); ++p->summed; }
          p->changed.notify_all();
        });
      } catch (...) {
        abandon();
        throw;
      }
      CUDA_CHECK(cudaLaunchHostFunc(s, wait_for_leaders, new Ticket{progress_, tickets_++}));
      CUDA_CHECK(cudaMemcpyAsync(data, host_.data() + offset, n * sizeof(float), cudaMemcpyHostToDevice, s));
      if (narrow) kernels::cast_gpu(data, kernels::Precision::fp32, wire, format, n, s);
    }
    NCCL_CHECK_RANK(rank, ncclBroadcast(wire, wire, n, type, 0, server_->get(), s));
    server_->settle(text(b, "NCCL's broadcast from the server's first rank"));
    if (narrow) kernels::cast_gpu(wire, format, data, kernels::Precision::fp32, n, s);
    CUDA_CHECK(cudaEventRecord(b.end.get(), s));
  }

  std::vector<comm::BucketTiming> wait() override {
    if (used_ == 0) return {};
    if (reducer_) {
      try {
        reducer_->wait();  // its own timings are the Gloo phase's; the events time all three
      } catch (...) {
        abandon();
        throw;
      }
    }
    CUDA_CHECK(cudaEventRecord(finished_.get(), stream_.get()));
    server_->wait_for(finished_.get(), "waiting for " + std::to_string(used_) + " gradient buckets' three phases");
    const auto seen = std::chrono::steady_clock::now();
    CUDA_CHECK(cudaStreamWaitEvent(compute_, finished_.get(), 0));
    return gpu::bucket_timings(buckets_, std::exchange(used_, 0), finished_.get(), seen);
  }

 private:
  // Runs on the Gloo reducer's thread before the bucket is sent: the copy to host waits for this
  // server's reduce, so for its other ranks, and a dead one would leave it waiting; polled, and
  // given up after the run's timeout.
  std::function<void()> copied_wait(cudaEvent_t copied) const {
    return [copied, device = device_, timeout = timeout_, p = progress_] {
      CUDA_CHECK(cudaSetDevice(device));  // else this thread's first call makes a context on GPU 0
      const auto deadline = std::chrono::steady_clock::now() + timeout;
      while (true) {
        const cudaError_t q = cudaEventQuery(copied);
        if (q == cudaSuccess) return;
        if (q != cudaErrorNotReady) CUDA_CHECK(q);
        {
          const std::lock_guard lock(p->mutex);
          if (p->abandoned) throw comm::CommError("the transport was torn down before the copy to host finished");
        }
        if (std::chrono::steady_clock::now() >= deadline)
          throw comm::CommError("NCCL's reduce inside this server did not finish within " +
                                    std::to_string(timeout.count()) + " ms (a rank of this server is dead, hung or "
                                    "stopped calling the collective)",
                                -1, -1, true);
        std::this_thread::sleep_for(std::chrono::microseconds(20));
      }
    };
  }

  void abandon() {
    {
      const std::lock_guard lock(progress_->mutex);
      progress_->abandoned = true;
    }
    progress_->changed.notify_all();
  }

  std::string text(const BucketEvents& b, const char* phase) const {
    return std::string(phase) + " for bucket (offset " + std::to_string(b.offset) + ", " + std::to_string(b.count) +
           " floats, " + comm::name(wire_) + " on the wire)";
  }

  cudaStream_t compute_;
  int device_;
  std::unique_ptr<gpu::NcclComm> server_;  // this server's ranks, by local rank
  std::span<float> grads_;
  comm::WirePrecision wire_;
  bool leader_, between_servers_;
  std::chrono::milliseconds timeout_;
  gpu::DeviceMemory narrow_;          // the 16-bit wire's copy of the gradients; empty for fp32
  std::shared_ptr<float> host_memory_;  // the leader's pinned copy; Gloo caches by its address
  std::span<float> host_;
  gpu::OwnedStream stream_;
  gpu::Event finished_;
  std::shared_ptr<LeadersProgress> progress_;
  std::unique_ptr<comm::BucketReducer> reducer_;  // the leaders' Gloo phase; null elsewhere
  std::vector<BucketEvents> buckets_;
  size_t used_ = 0;
  long long tickets_ = 0;
};

// World rank 0 makes one NCCL unique id per server (its host runs NCCL's bootstrap root for
// each); every rank takes its own server's from the rendezvous store.
ncclUniqueId server_unique_id(comm::Communicator& world, int servers, int server) {
  std::vector<char> bytes;
  ncclUniqueId id{};
  if (world.rank() == 0)
    for (int s = 0; s < servers; ++s) {
      NCCL_CHECK_RANK(0, ncclGetUniqueId(&id));
      bytes.insert(bytes.end(), id.internal, id.internal + sizeof id.internal);
    }
  bytes = world.share("nccl-server-unique-ids", std::move(bytes));
  if (bytes.size() != static_cast<size_t>(servers) * sizeof id.internal)
    throw comm::CommError("rank " + std::to_string(world.rank()) + ": the servers' NCCL unique ids in the rendezvous "
                              "store have " + std::to_string(bytes.size()) + " bytes, expected " +
                              std::to_string(servers) + " x " + std::to_string(sizeof id.internal) +
                              " (ranks built with different NCCL versions, or a different LOCAL_WORLD_SIZE?)",
                          world.rank());
  std::memcpy(id.internal, bytes.data() + static_cast<size_t>(server) * sizeof id.internal, sizeof id.internal);
  return id;
}

}  // namespace

std::unique_ptr<GradientTransport> make_hierarchical_nccl_transport(Backend& backend, comm::Communicator& world,
                                                                    std::span<float> grads,
                                                                    const comm::AllreduceOptions& options) {
  gpu::CudnnBackend& gpu_backend = gpu_backend_of(backend);
  comm::RendezvousConfig layout;
  layout.rank = world.rank();
  layout.world_size = world.world_size();
  layout.local_rank = world.local_rank();
  layout.local_world_size = world.local_world_size();
  if (const std::string why = comm::hierarchy_reason(layout, options.inter); !why.empty())
    throw comm::CommError("rank " + std::to_string(world.rank()) + ": NCCL inside servers, Gloo between: " + why,
                          world.rank());
  const int k = layout.local_world_size, server = world.rank() / k;
  const ncclUniqueId id = server_unique_id(world, world.world_size() / k, server);
  auto server_comm = std::make_unique<gpu::NcclComm>(
      id, gpu::NcclCommOptions{.rank = world.local_rank(), .ranks = k, .device = gpu_backend.device(),
                               .timeout = world.timeout(),
                               .roll_call = [&world](const std::string& what, std::vector<int>& silent) {
                                 return world.roll_call("NCCL inside a server: " + what, &silent);
                               }});
  return std::make_unique<HierarchicalTransport>(gpu_backend, world, std::move(server_comm), grads, options);
}

}  // namespace basin::exec::detail
