// How a finished gradient bucket travels to the other ranks and comes back summed: internal to
// exec, chosen by GradientSync from where the gradients live and which library sums them.
//
//   host    CPU backend: Gloo (comm::BucketReducer) reduces the flat array in place.
//   staged  device backend, Gloo: each bucket is copied to host staging memory, reduced there by
//           the same BucketReducer, and copied back before the optimizer (Goyal et al.'s Caffe2
//           ran Gloo on host copies of GPU gradients the same way).
//   nccl    device backend, NCCL: ncclAllReduce on a communication stream, ordered after the
//           compute stream with events (gpu/nccl_transport.cc, when NCCL is found).
//
// A two-method interface because the three differ in everything but the promise: submit says
// "this stretch is final", wait says "all of it is summed and back where the optimizer reads".
#pragma once

#include <basin/backend.h>
#include <basin/comm.h>

#include <memory>
#include <span>
#include <vector>

namespace basin::exec::detail {

class GradientTransport {
 public:
  virtual ~GradientTransport() = default;
  // [offset, offset + count) of the flat gradient array is final (in the backend's order of
  // work: a device backend may not have computed it yet). Every rank submits the same buckets
  // in the same order.
  virtual void submit(long long offset, long long count) = 0;
  // Blocks until every submitted bucket is summed over the ranks and back in the gradient
  // array, ahead of the backend's next operation; one timing per bucket, in submission order.
  virtual std::vector<comm::BucketTiming> wait() = 0;
};

std::unique_ptr<GradientTransport> make_host_transport(comm::Communicator& comm,
                                                       std::span<float> grads,
                                                       const comm::AllreduceOptions& options);

// Copies to host once per bucket, queued at submit (flat_to_host_async: after the backward that
// produced the bucket; the reducer thread waits for it before sending), and back once per
// contiguous run of buckets at wait (flat_from_host): the buckets of a step tile the array, so
// normally one copy back.
std::unique_ptr<GradientTransport> make_staged_transport(Backend& backend, comm::Communicator& comm,
                                                         std::span<float> grads,
                                                         const comm::AllreduceOptions& options);

}  // namespace basin::exec::detail
