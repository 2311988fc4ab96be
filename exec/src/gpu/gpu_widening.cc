// A cuDNN call on 16-bit tensors with a way out: should this cuDNN refuse the data type, the
// layer runs the same call on fp32 copies from then on.
//
// cuDNN documents 16-bit data for the calls basin makes, but its legacy batch norm and pooling
// in bf16 NHWC had not run on a GPU when they were written (docs/decisions.md, mixed
// precision). A refusal there would stop every bf16 network. fp32 copies cost memory and
// traffic, not correctness: a scratch buffer per tensor the call reads or writes, each growing to
// the largest such tensor in fp32 and held for the run (about 3.3 GB for ResNet-50 at batch 256,
// whose stem's outputs are the largest); the inputs widen exactly, cuDNN computes in fp32 either
// way, and the outputs are rounded once into the 16-bit tensors, as cuDNN itself rounds them.
// The switch is said once per layer on stderr, with the memory, so a benchmark shows what ran.
#include <basin/kernels.h>

#include <atomic>
#include <cstdio>
#include <string>

#include "gpu_backend.h"

namespace basin::exec {
namespace {
std::atomic<long long> widened_calls{0};
}  // namespace

long long fp32_copy_calls() { return widened_calls.load(); }

namespace gpu {

std::string LayerCall::text() const {
  return std::string(call) + " (" + kind + " layer " + std::to_string(op) + ", " + std::to_string(desc.n) + "x" +
         std::to_string(desc.c) + "x" + std::to_string(desc.h) + "x" + std::to_string(desc.w) + ")";
}

void CudnnBackend::start_widening(bool& widened, cudnnStatus_t status, const LayerCall& what, Precision precision,
                                  std::initializer_list<WideningBuffer<const void>> in,
                                  std::initializer_list<WideningBuffer<void>> out) {
  if (precision == Precision::fp32 || !detail::cudnn_refused(status))
    detail::cudnn_fail(status, what.text().c_str(), __FILE__, __LINE__);
  size_t floats = 0;
  for (const auto& b : in) floats += b.elements;
  for (const auto& b : out) floats += b.elements;
  std::fprintf(stderr,
               "basin: %s: cuDNN refused %s data (%s); the layer runs on fp32 copies from now on, in "
               "scratch held for the run (this call's: %.2f GB of device memory, not in the plan's budget)\n",
               what.text().c_str(), precision_name(precision), cudnnGetErrorString(status),
               4e-9 * static_cast<double>(floats));
  widened = true;
}

void CudnnBackend::widen_inputs(Precision precision, std::initializer_list<WideningBuffer<const void>> in,
                                WideningIns& ins, WideningOuts& outs, std::initializer_list<WideningBuffer<void>> out) {
  const kernels::Precision from = kernel_precision(precision);
  int slot = kFirstWideningSlot;
  size_t i = 0;
  for (const auto& b : in) {
    float* wide = scratch(slot++, b.elements);
    kernels::cast_gpu(b.ptr, from, wide, kernels::Precision::fp32, b.elements, stream_);
    ins[i++] = wide;
  }
  i = 0;
  for (const auto& b : out) outs[i++] = scratch(slot++, b.elements);
}

void CudnnBackend::narrow_outputs(Precision precision, std::initializer_list<WideningBuffer<void>> out,
                                  const WideningOuts& outs) {
  size_t i = 0;
  for (const auto& b : out)
    kernels::cast_gpu(outs[i++], kernels::Precision::fp32, b.ptr, kernel_precision(precision), b.elements, stream_);
  ++widened_calls;
}

}  // namespace gpu
}  // namespace basin::exec
