// NCCL for GPU gradients: the communicator (its unique id through the ranks' rendezvous store,
// the algorithm set per communicator, a timeout) and the gradient transports that allreduce
// buckets on a communication stream ordered after the GPU backend's compute stream: NCCL's own
// allreduce, or NCCL inside each server with Gloo between them.
// This header names no CUDA or NCCL type, so gradient_sync.cc includes it whenever
// BASIN_HAVE_NCCL is set; the rest is in nccl_comm.h (GPU code and GPU tests only).
#pragma once

#include <basin/train.h>

#include "../gradient_transport.h"

namespace basin::exec::gpu {
class CudnnBackend;
class NcclComm;
}

namespace basin::exec::detail {

// For a CudnnBackend (any other backend is refused naming it): a communicator of
// rendezvous.world_size() ranks whose rank 0's unique id is shared through `rendezvous`, and a
// transport that sums `grads` (device memory) in place, sending them as `wire`: fp32 as they
// are, or fp16/bf16 through a 16-bit copy on the GPU (the sum of the rounded values, rounded
// again by NCCL's 16-bit reduction, widened back into `grads`).
std::unique_ptr<GradientTransport> make_nccl_transport(Backend& backend,
                                                       comm::Communicator& rendezvous,
                                                       std::span<float> grads,
                                                       TrainConfig::NcclAlgorithm algorithm,
                                                       comm::WirePrecision wire);

// The same transport on a communicator made elsewhere (the GPU tests make a one-rank one without
// a rendezvous, since the GPU machines have no Gloo).
std::unique_ptr<GradientTransport> make_nccl_transport(Backend& backend,
                                                       std::unique_ptr<gpu::NcclComm> comm,
                                                       std::span<float> grads,
                                                       comm::WirePrecision wire);

// Goyal et al.'s three phases (nccl_hierarchical.cc): NCCL's reduce onto each server's first
// rank, Gloo's options.inter among those ranks through one copy in host memory per server (the
// leaders' phase of comm's hierarchical allreduce), NCCL's broadcast back. Servers are
// `world`'s torchrun numbering (local_world_size ranks each); one NCCL communicator per server,
// its unique id made by world rank 0 and shared through `world`'s rendezvous store.
std::unique_ptr<GradientTransport> make_hierarchical_nccl_transport(Backend& backend, comm::Communicator& world,
                                                                    std::span<float> grads,
                                                                    const comm::AllreduceOptions& options);

// `backend` as basin's GPU backend; any other is refused, naming it.
gpu::CudnnBackend& gpu_backend_of(Backend& backend);

}  // namespace basin::exec::detail
