// Goyal et al.'s three phases on GPU ranks, as basin's simulator prices them and as Gloo's CUDA
// allreduce ran them for the paper: NCCL's reduce onto each server's first rank, one copy of that
// sum to host memory, Gloo's allreduce among the servers' first ranks (comm's leaders' phase), one
// copy back and NCCL's broadcast inside the server. Each server moves its gradients through host
// memory once, where the Gloo path on GPUs (gradient_transport.cc, staged) copies every rank's.
//
// Ordering, per bucket, on one communication stream (the same on every rank of a server, as NCCL
// requires of one communicator: reduce i, broadcast i, reduce i + 1, ...):
//   wait for backward's event -> [narrow to 16 bits] -> ncclReduce to local rank 0
//   leader only: [widen] -> copy to pinned host memory (event `copied`) -> a wait, on the
//     stream, for a counter in pinned host memory to reach the bucket's number -> copy back
//     [narrow]
//   -> ncclBroadcast from local rank 0 -> [widen]
// The Gloo reducer thread waits for `copied` before sending and raises the counter when the sum
// is in place. The stream's wait (cuStreamWaitValue32, the GPU's front end polling host memory)
// is what lets the host go on queueing backward's kernels while the stream waits for the network;
// a host function blocking the stream instead would hold CUDA's callback thread, which ranks
// sharing a process (the tests) share. Buckets follow one another, as the simulator's overlap
// model has them.
//
// Servers are torchrun's numbering (comm::RendezvousConfig::local_world_size), each with its own
// NCCL communicator; world rank 0 makes every server's unique id and shares them through the
// rendezvous store. After any failure the counter is raised past every wait (abandon()) and the
// server's communicator aborted, so that the stream drains, no rank of the server takes an
// unsummed bucket for a sum, and teardown does not wait out another timeout.
#include <basin/cuda_check.h>
#include <basin/kernels.h>

#include <cuda.h>  // the driver API's types only: its functions are found through the runtime

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
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

// A counter in pinned host memory that a stream can wait on: the host raises it, the GPU's front
// end polls it (cuStreamWaitValue32, taken through cudaGetDriverEntryPointByVersion so that basin
// does not link the driver library, which machines without a GPU lack). Waits compare
// cyclically, (int32_t)(counter - value) >= 0, so the count may wrap.
class HostSignal {
 public:
  HostSignal() {
    cudaDriverEntryPointQueryResult found{};
    void* fn = driver_function("cuStreamWaitValue32", found);
    CUDA_CHECK(found == cudaDriverEntryPointSuccess ? cudaSuccess : cudaErrorSymbolNotFound);
    wait_ = reinterpret_cast<WaitValue>(fn);
    if (void* text = driver_function("cuGetErrorString", found); found == cudaDriverEntryPointSuccess)
      error_string_ = reinterpret_cast<ErrorString>(text);
    CUDA_CHECK(cudaHostAlloc(reinterpret_cast<void**>(&host_), sizeof(std::uint32_t), cudaHostAllocMapped));
    __atomic_store_n(host_, 0u, __ATOMIC_RELEASE);
    void* device = nullptr;
    CUDA_CHECK(cudaHostGetDevicePointer(&device, host_, 0));
    device_ = reinterpret_cast<CUdeviceptr>(device);
  }
  ~HostSignal() { cudaFreeHost(host_); }  // after the streams waiting on it are done (the owner's)
  HostSignal(const HostSignal&) = delete;
  HostSignal& operator=(const HostSignal&) = delete;

  // Work queued on `stream` after this runs once the counter has reached `value`.
  void wait_on(cudaStream_t stream, std::uint32_t value) const {
    const CUresult r = wait_(reinterpret_cast<CUstream>(stream), device_, value, CU_STREAM_WAIT_VALUE_GEQ);
    if (r == CUDA_SUCCESS) return;
    const char* text = nullptr;
    if (error_string_) error_string_(r, &text);
    throw std::runtime_error(std::string(__FILE__) + ":" + std::to_string(__LINE__) +
                             ": cuStreamWaitValue32 failed: " + (text ? text : "CUresult " + std::to_string(r)));
  }
  // Raises the counter by `by`, after every write this thread made before (the summed bucket).
  void raise(std::uint32_t by) { __atomic_add_fetch(host_, by, __ATOMIC_RELEASE); }

 private:
  // The driver's function of CUDA 12's signature (cuStreamWaitValue32 is its _v2 there).
  static void* driver_function(const char* name, cudaDriverEntryPointQueryResult& found) {
    void* fn = nullptr;
#if CUDART_VERSION >= 12050
    CUDA_CHECK(cudaGetDriverEntryPointByVersion(name, &fn, 12000, cudaEnableDefault, &found));
#else
    CUDA_CHECK(cudaGetDriverEntryPoint(name, &fn, cudaEnableDefault, &found));
#endif
    if (!fn) found = cudaDriverEntryPointSymbolNotFound;
    return fn;
  }
  using WaitValue = CUresult (*)(CUstream, CUdeviceptr, cuuint32_t, unsigned int);
  using ErrorString = CUresult (*)(CUresult, const char**);
  WaitValue wait_ = nullptr;
  ErrorString error_string_ = nullptr;
  std::uint32_t* host_ = nullptr;
  CUdeviceptr device_ = 0;
};

// What the Gloo reducer thread shares with the transport.
struct LeadersProgress {
  HostSignal summed;                   // buckets whose Gloo sum is in host memory
  std::atomic<bool> abandoned{false};  // after a failure or at teardown
};

class HierarchicalTransport final : public GradientTransport {
 public:
  HierarchicalTransport(gpu::CudnnBackend& backend, comm::Communicator& world,
                        std::unique_ptr<gpu::NcclComm> server, std::span<float> grads,
                        const comm::AllreduceOptions& options)
      : compute_(backend.stream()), device_(backend.device()), server_(std::move(server)), grads_(grads),
        wire_(options.precision), world_rank_(world.rank()), leader_(world.local_rank() == 0),
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

  // Waits released first, then the Gloo thread stopped, then the communicator finalized (or
  // aborted), and the stream drained before the counter and the host memory it reads go.
  ~HierarchicalTransport() override {
    abandon();
    reducer_.reset();
    server_.reset();
    cudaStreamSynchronize(stream_.get());  // a destructor's CUDA error is moot
  }

  void submit(long long offset, long long count) override {
    if (offset < 0 || count < 0 || offset + count > static_cast<long long>(grads_.size()))
      throw std::invalid_argument("bucket [" + std::to_string(offset) + ", " + std::to_string(offset + count) +
                                  ") outside the " + std::to_string(grads_.size()) + " gradients");
    on_failure_abandon([&] { enqueue(offset, count); });
  }

  std::vector<comm::BucketTiming> wait() override {
    if (used_ == 0) return {};
    return on_failure_abandon([&] {
      // The Gloo phase's own timings are left out: the events time all three phases.
      if (reducer_) reducer_->wait();
      return gpu::finish_buckets(buckets_, used_, finished_.get(), stream_.get(), compute_, *server_,
                                 "waiting for " + std::to_string(used_) + " gradient buckets' three phases");
    });
  }

 private:
  void enqueue(long long offset, long long count) {
    cudaStream_t s = stream_.get();
    BucketEvents& b = gpu::begin_bucket(buckets_, used_, offset, count, compute_, s);
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
      reducer_->submit(offset, count, copied_wait(b.copied.get()), [p = progress_] { p->summed.raise(1); });
      progress_->summed.wait_on(s, static_cast<std::uint32_t>(++tickets_));
      CUDA_CHECK(cudaMemcpyAsync(data, host_.data() + offset, n * sizeof(float), cudaMemcpyHostToDevice, s));
      if (narrow) kernels::cast_gpu(data, kernels::Precision::fp32, wire, format, n, s);
    }
    NCCL_CHECK_RANK(rank, ncclBroadcast(wire, wire, n, type, 0, server_->get(), s));
    server_->settle(text(b, "NCCL's broadcast from the server's first rank"));
    // The leader between servers already holds the sum in fp32 (copied back from the host,
    // exactly what its 16-bit copy widens to): only the others widen.
    if (narrow && !(leader_ && between_servers_)) kernels::cast_gpu(wire, format, data, kernels::Precision::fp32, n, s);
    CUDA_CHECK(cudaEventRecord(b.end.get(), s));
  }

  // Runs `f`; should it throw, the stream's waits are released and the server's communicator
  // aborted (its other ranks then fail at their own wait instead of taking the leader's unsummed
  // bucket for a sum) before the error goes on.
  template <class F>
  auto on_failure_abandon(F&& f) -> decltype(f()) {
    try {
      return f();
    } catch (...) {
      abandon();
      if (server_) server_->abort();
      throw;
    }
  }

  // Runs on the Gloo reducer's thread before the bucket is sent: the copy to host waits for this
  // server's reduce, so for its other ranks, and a dead one would leave it waiting; polled, and
  // given up within the run's timeout, leaving the roll call its window.
  std::function<void()> copied_wait(cudaEvent_t copied) const {
    const auto limit = timeout_ - comm::roll_call_window(timeout_);
    return [copied, device = device_, limit, rank = world_rank_, p = progress_] {
      CUDA_CHECK(cudaSetDevice(device));  // else this thread's first call makes a context on GPU 0
      const auto deadline = std::chrono::steady_clock::now() + limit;
      while (true) {
        const cudaError_t q = cudaEventQuery(copied);
        if (q == cudaSuccess) return;
        if (q != cudaErrorNotReady) CUDA_CHECK(q);
        if (p->abandoned) throw comm::CommError("the transport was torn down before the copy to host finished", rank);
        if (std::chrono::steady_clock::now() >= deadline)
          throw comm::CommError("NCCL's reduce inside this server did not finish within " +
                                    std::to_string(limit.count()) + " ms (a rank of this server is dead, hung or "
                                    "stopped calling the collective)",
                                rank, -1, true);
        std::this_thread::sleep_for(std::chrono::microseconds(20));
      }
    };
  }

  // Every wait on the stream passes from now on (the counter jumps 2^30 ahead of the buckets
  // queued), and the Gloo thread's waits give up.
  void abandon() {
    if (progress_->abandoned.exchange(true)) return;
    progress_->summed.raise(1u << 30);
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
  int world_rank_;
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
  long long tickets_ = 0;  // the leader's buckets so far: the counter's value each one waits for
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
  const int k = layout.local_world_size, server = world.rank() / k, servers = world.world_size() / k;
  // With NCCL_COMM_ID set, every unique id NCCL makes is that one address: every server's
  // communicator would meet in one bootstrap.
  if (const char* fixed = std::getenv("NCCL_COMM_ID"); fixed && *fixed && servers > 1)
    throw comm::CommError("rank " + std::to_string(world.rank()) + ": NCCL inside servers, Gloo between: NCCL_COMM_ID "
                              "is set (" + fixed + "), which gives every server's NCCL communicator the same "
                              "bootstrap; unset it (basin shares each server's id through its rendezvous store)",
                          world.rank());
  const ncclUniqueId id = server_unique_id(world, servers, server);
  auto server_comm = std::make_unique<gpu::NcclComm>(
      id, gpu::NcclCommOptions{.rank = world.local_rank(), .ranks = k, .device = gpu_backend.device(),
                               .timeout = world.timeout(),
                               .roll_call = [&world](const std::string& what, std::vector<int>& silent) {
                                 return world.roll_call("NCCL inside a server: " + what, &silent);
                               }});
  return std::make_unique<HierarchicalTransport>(gpu_backend, world, std::move(server_comm), grads, options);
}

}  // namespace basin::exec::detail
