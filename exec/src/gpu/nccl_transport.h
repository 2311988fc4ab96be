// NCCL for GPU gradients: the communicator (its unique id through the ranks' rendezvous store,
// the algorithm set per communicator, a timeout) and the gradient transport that allreduces
// buckets on a communication stream ordered after the GPU backend's compute stream.
// This header names no CUDA or NCCL type, so gradient_sync.cc includes it whenever
// BASIN_HAVE_NCCL is set; the rest is in nccl_comm.h (GPU code and GPU tests only).
#pragma once

#include <basin/train.h>

#include "../gradient_transport.h"

namespace basin::exec::detail {

// For a CudnnBackend (any other backend is refused naming it): a communicator of
// rendezvous.world_size() ranks whose rank 0's unique id is shared through `rendezvous`, and a
// transport that sums `grads` (device memory) in place.
std::unique_ptr<GradientTransport> make_nccl_transport(Backend& backend,
                                                       comm::Communicator& rendezvous,
                                                       std::span<float> grads,
                                                       TrainConfig::NcclAlgorithm algorithm);

}  // namespace basin::exec::detail
