// The GPU backend's batch normalization (cuDNN): training with batch statistics, eval with
// running statistics, optionally followed by the fused ReLU.
//
// Batch statistics: the interface wants the batch mean and the biased variance; cuDNN hands out
// the mean and 1/sqrt(var + eps) for backward, and the variance only through its running
// average, which it keeps unbiased (N*H*W / (N*H*W - 1), as torch). So the training forward runs
// with an averaging factor of 1 into the caller's batch_mean / batch_var (running = batch), and
// the variance is scaled back by (count - 1) / count: one rounding, not the cancellation of
// 1/invstd^2 - eps.
//
// Two ways through cuDNN for training:
// - legacy spatial mode (the default): cudnnBatchNormalizationForwardTraining / Backward. The
//   ReLU is a second in-place pass over y (cuDNN in fp32, basin's kernel in bf16/fp16), and
//   backward masks dy with the saved output (y > 0) first, as the CPU backend's workspace does.
// - persistent mode (GpuOptions::persistent_batchnorm): the NHWC "Ex" functions in
//   CUDNN_BATCHNORM_SPATIAL_PERSISTENT, the path PyTorch takes for channels_last training. cuDNN
//   fuses the ReLU into them only for fp16 NHWC (CUDNN_BATCHNORM_OPS_BN_ACTIVATION; backward
//   gets the ReLU's output and beta to mask dy itself, and the forward's reserve space);
//   elsewhere the ReLU is the same second pass. cuDNN documents that this mode may overflow
//   (NaN/Inf) on some inputs, which is why it is asked for, not assumed. A layer whose shape
//   or type cuDNN turns down (a NOT_SUPPORTED or BAD_PARAM status) falls back to the legacy
//   mode for good, and says so on stderr.
//
// Should cuDNN refuse the legacy calls' 16-bit type (bf16 had not run on a GPU when this was
// written), the layer runs them on fp32 copies (call_widening, gpu_widening.cc).
//
// bf16/fp16: x, y, dy and dx in the compute precision, everything per channel fp32 (stated as
// such; cudnnDeriveBNTensorDescriptor would derive float from a half or bf16 x too), so the
// statistics are accumulated and kept in fp32.
#include <basin/kernels.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <stdexcept>
#include <string>

#include "gpu_backend.h"

namespace basin::exec::gpu {
namespace {

const float kOne = 1.f, kZero = 0.f;

bool aligned16(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % 16 == 0; }

size_t elements(const BatchNormDesc& d) { return static_cast<size_t>(d.io.elements()); }

LayerCall bn_call(const char* call, int op, const BatchNormDesc& d) { return {call, "batch norm", op, d.io}; }

}  // namespace

BatchNormState& CudnnBackend::bn_state(int op, const BatchNormDesc& d, const Tensor& x) {
  auto it = bns_.find(op);
  if (it != bns_.end() && it->second.desc.io == d.io && it->second.desc.epsilon == d.epsilon &&
      it->second.desc.fused_relu == d.fused_relu)
    return it->second;
  if (!(x.desc == d.io)) throw std::invalid_argument("batchnorm tensor does not match its layer");
  if (d.epsilon < CUDNN_BN_MIN_EPSILON)
    throw std::invalid_argument("batchnorm epsilon below cuDNN's minimum");
  BatchNormState s;
  s.desc = d;
  s.x = nhwc_descriptor(d.io, precision_of(x));
  // Stated, not derived: cuDNN derives float for half and bf16 data too, but the flat arrays
  // these vectors live in are fp32 whatever it would say.
  s.stats = nchw_descriptor({1, d.io.c, 1, 1}, Precision::fp32);
  if (precision_of(x) != Precision::fp32) {
    s.x32 = nhwc_descriptor(d.io, Precision::fp32);
    s.widened = options_.fp32_copies;
  }
  s.saved_mean = DeviceMemory(sizeof(float) * d.io.c);
  s.saved_inv_std = DeviceMemory(sizeof(float) * d.io.c);
  s.persistent = options_.persistent_batchnorm;
  // cuDNN fuses the ReLU only for fp16; asking elsewhere would only earn a NOT_SUPPORTED.
  if (s.persistent && d.fused_relu && precision_of(x) == Precision::fp16)
    s.ops = CUDNN_BATCHNORM_OPS_BN_ACTIVATION;
  return bns_.insert_or_assign(op, std::move(s)).first->second;
}

// `v` (C floats of a flat array), or its copy in aligned slot `slot` when `v` is off 16 bytes.
const float* CudnnBackend::bn_aligned_input(BatchNormState& s, const float* v, int slot) {
  if (aligned16(v)) return v;
  float* copy = bn_aligned_slot(s, slot);
  CUDA_CHECK(cudaMemcpyAsync(copy, v, sizeof(float) * s.desc.io.c, cudaMemcpyDeviceToDevice,
                             stream_));
  return copy;
}

float* CudnnBackend::bn_aligned_slot(BatchNormState& s, int slot) {
  if (!s.aligned.bytes()) {
    s.padded_c = (s.desc.io.c + 3) / 4 * 4;
    s.aligned = DeviceMemory(4 * sizeof(float) * static_cast<size_t>(s.padded_c));
  }
  return s.aligned.as<float>() + slot * s.padded_c;
}

// Never null: cuDNN's documentation has an Ex call with no workspace act as the plain function,
// which would drop a fused ReLU that bn_relu_fused() reports as done.
void* CudnnBackend::bn_workspace(size_t bytes) { return scratch_bytes(5, std::max<size_t>(bytes, 256)); }

// The Ex forward; returns cuDNN's status so that NOT_SUPPORTED can fall back.
cudnnStatus_t CudnnBackend::bn_forward_persistent(BatchNormState& s, const Tensor& x,
                                                  const float* gamma, const float* beta,
                                                  Tensor& y, float* batch_mean, float* batch_var) {
  cudnnActivationDescriptor_t act = s.ops == CUDNN_BATCHNORM_OPS_BN ? nullptr : static_cast<cudnnActivationDescriptor_t>(relu_);
  size_t workspace_bytes = 0, reserve_bytes = 0;
  cudnnStatus_t status = cudnnGetBatchNormalizationForwardTrainingExWorkspaceSize(
      cudnn_, CUDNN_BATCHNORM_SPATIAL_PERSISTENT, s.ops, s.x, nullptr, s.x, s.stats, act,
      &workspace_bytes);
  if (status != CUDNN_STATUS_SUCCESS) return status;
  status = cudnnGetBatchNormalizationTrainingExReserveSpaceSize(
      cudnn_, CUDNN_BATCHNORM_SPATIAL_PERSISTENT, s.ops, act, s.x, &reserve_bytes);
  if (status != CUDNN_STATUS_SUCCESS) return status;
  // Backward's query too, here: a shape backward would turn down falls back before the layer
  // has committed to the mode.
  status = cudnnGetBatchNormalizationBackwardExWorkspaceSize(
      cudnn_, CUDNN_BATCHNORM_SPATIAL_PERSISTENT, s.ops, s.x, s.x, s.x, nullptr, s.x, s.stats, act,
      &s.backward_workspace_bytes);
  if (status != CUDNN_STATUS_SUCCESS) return status;
  if (s.reserve.bytes() != reserve_bytes) {
    s.reserve = DeviceMemory();
    if (reserve_bytes) s.reserve = DeviceMemory(reserve_bytes);
  }
  // The per-channel vectors (batch_mean/var are the caller's; align those too when off).
  const float* g = bn_aligned_input(s, gamma, 0);
  const float* b = bn_aligned_input(s, beta, 1);
  float* mean = aligned16(batch_mean) ? batch_mean : bn_aligned_slot(s, 2);
  float* var = aligned16(batch_var) ? batch_var : bn_aligned_slot(s, 3);
  if (mean != batch_mean) CUDA_CHECK(cudaMemsetAsync(mean, 0, sizeof(float) * s.desc.io.c, stream_));
  if (var != batch_var) CUDA_CHECK(cudaMemsetAsync(var, 0, sizeof(float) * s.desc.io.c, stream_));
  status = cudnnBatchNormalizationForwardTrainingEx(
      cudnn_, CUDNN_BATCHNORM_SPATIAL_PERSISTENT, s.ops, &kOne, &kZero, s.x, x.ptr(), nullptr,
      nullptr, s.x, y.ptr(), s.stats, g, b, 1.0, mean, var, static_cast<double>(s.desc.epsilon),
      s.saved_mean.as<float>(), s.saved_inv_std.as<float>(), act,
      bn_workspace(workspace_bytes), workspace_bytes, reserve_bytes ? s.reserve.as<void>() : nullptr,
      reserve_bytes);
  if (status != CUDNN_STATUS_SUCCESS) return status;
  const size_t stat_bytes = sizeof(float) * s.desc.io.c;
  if (mean != batch_mean)
    CUDA_CHECK(cudaMemcpyAsync(batch_mean, mean, stat_bytes, cudaMemcpyDeviceToDevice, stream_));
  if (var != batch_var)
    CUDA_CHECK(cudaMemcpyAsync(batch_var, var, stat_bytes, cudaMemcpyDeviceToDevice, stream_));
  s.beta_used = b;
  return status;
}

void CudnnBackend::batchnorm_forward_training(int op, const BatchNormDesc& d, const Tensor& x,
                                              const float* gamma, const float* beta, Tensor& y,
                                              float* batch_mean, float* batch_var) {
  BatchNormState& s = bn_state(op, d, x);
  const size_t stat_bytes = sizeof(float) * d.io.c;
  // Factor 1 gives running = batch + 0 * old: zero the old so a NaN there cannot leak through.
  CUDA_CHECK(cudaMemsetAsync(batch_mean, 0, stat_bytes, stream_));
  CUDA_CHECK(cudaMemsetAsync(batch_var, 0, stat_bytes, stream_));
  while (s.persistent) {
    const cudnnStatus_t status = bn_forward_persistent(s, x, gamma, beta, y, batch_mean, batch_var);
    if (status == CUDNN_STATUS_SUCCESS) break;
    // cuDNN 9 details NOT_SUPPORTED (3001 shape, 3003 data type, ...): the category decides.
    if (!detail::cudnn_refused(status)) CUDNN_CHECK(status);
    // Without the fused ReLU first, then the legacy mode (which clears `persistent`), said
    // once per layer so that a benchmark of the persistent mode shows what it really ran.
    std::fprintf(stderr, "basin: batch norm layer %d (%dx%dx%dx%d %s%s): cuDNN's persistent mode: %s; %s\n",
                 op, d.io.n, d.io.c, d.io.h, d.io.w, precision_name(precision_of(x)),
                 s.ops != CUDNN_BATCHNORM_OPS_BN ? ", ReLU fused" : "", cudnnGetErrorString(status),
                 s.ops != CUDNN_BATCHNORM_OPS_BN ? "trying it without the ReLU" : "plain spatial mode instead");
    if (s.ops != CUDNN_BATCHNORM_OPS_BN)
      s.ops = CUDNN_BATCHNORM_OPS_BN;
    else
      s.persistent = false;
  }
  if (!s.persistent)
    call_widening(s.widened, bn_call("cudnnBatchNormalizationForwardTraining", op, d), precision_of(x),
                  {{x.ptr(), elements(d)}}, {{y.ptr(), elements(d)}},
                  [&](bool fp32, const auto& in, const auto& out) {
                    const cudnnTensorDescriptor_t io = fp32 ? s.x32 : s.x;
                    return cudnnBatchNormalizationForwardTraining(
                        cudnn_, CUDNN_BATCHNORM_SPATIAL, &kOne, &kZero, io, in[0], io, out[0], s.stats,
                        gamma, beta, 1.0, batch_mean, batch_var, static_cast<double>(d.epsilon),
                        s.saved_mean.as<float>(), s.saved_inv_std.as<float>());
                  });
  const double count = 1.0 * d.io.n * d.io.h * d.io.w;
  if (count > 1) {
    const auto biased = static_cast<float>((count - 1) / count);
    CUDNN_CHECK(cudnnScaleTensor(cudnn_, s.stats, batch_var, &biased));
  } else {
    CUDA_CHECK(cudaMemsetAsync(batch_var, 0, stat_bytes, stream_));  // one value: no spread
  }
  if (d.fused_relu && !bn_relu_fused(s)) relu_in_place(y);
  s.output = y;
}

bool CudnnBackend::bn_relu_fused(const BatchNormState& s) const {
  return s.persistent && s.ops == CUDNN_BATCHNORM_OPS_BN_ACTIVATION;
}

void CudnnBackend::batchnorm_forward_eval(int op, const BatchNormDesc& d, const Tensor& x,
                                          const float* gamma, const float* beta,
                                          const float* running_mean, const float* running_var,
                                          Tensor& y) {
  BatchNormState& s = bn_state(op, d, x);
  call_widening(s.widened, bn_call("cudnnBatchNormalizationForwardInference", op, d), precision_of(x),
                {{x.ptr(), elements(d)}}, {{y.ptr(), elements(d)}},
                [&](bool fp32, const auto& in, const auto& out) {
                  const cudnnTensorDescriptor_t io = fp32 ? s.x32 : s.x;
                  return cudnnBatchNormalizationForwardInference(
                      cudnn_, CUDNN_BATCHNORM_SPATIAL, &kOne, &kZero, io, in[0], io, out[0], s.stats, gamma,
                      beta, running_mean, running_var, static_cast<double>(d.epsilon));
                });
  if (d.fused_relu) relu_in_place(y);
}

void CudnnBackend::relu_in_place(Tensor& y) {
  // relu_forward is that (no per-layer state); it picks cuDNN in fp32 and the kernel otherwise.
  relu_forward(-1, y, y);
}

void CudnnBackend::batchnorm_backward(int op, const BatchNormDesc& d, const Tensor& x,
                                      const float* gamma, Tensor& dy, Tensor& dx, float* dgamma,
                                      float* dbeta) {
  BatchNormState& s = bn_state(op, d, x);
  if (!s.output.data)
    throw std::logic_error("batchnorm backward of layer " + std::to_string(op) +
                           " before its training forward");
  const void* grad = dy.ptr();
  if (d.fused_relu && !bn_relu_fused(s)) {
    // The gradient of the ReLU's output, masked in place to the gradient of the batch norm's
    // output (the interface lets it: no scratch as large as the layer's output).
    kernels::residual_add_relu_backward_gpu(s.output.ptr(), dy.ptr(), dy.ptr(),
                                            static_cast<size_t>(d.io.elements()),
                                            kernel_precision(precision_of(dy)), stream_);
  }
  if (!s.persistent) {
    call_widening(s.widened, bn_call("cudnnBatchNormalizationBackward", op, d), precision_of(x),
                  {{x.ptr(), elements(d)}, {grad, elements(d)}}, {{dx.ptr(), elements(d)}},
                  [&](bool fp32, const auto& in, const auto& out) {
                    const cudnnTensorDescriptor_t io = fp32 ? s.x32 : s.x;
                    return cudnnBatchNormalizationBackward(
                        cudnn_, CUDNN_BATCHNORM_SPATIAL, &kOne, &kZero, &kOne, &kZero, io, in[0], io, in[1],
                        io, out[0], s.stats, gamma, dgamma, dbeta, static_cast<double>(d.epsilon),
                        s.saved_mean.as<float>(), s.saved_inv_std.as<float>());
                  });
    return;
  }
  // y only with the fused ReLU (its mask): without it Net may have lent y's memory to a gradient.
  const bool fused = bn_relu_fused(s);
  cudnnActivationDescriptor_t act = fused ? static_cast<cudnnActivationDescriptor_t>(relu_) : nullptr;
  const size_t workspace_bytes = s.backward_workspace_bytes;
  const float* g = bn_aligned_input(s, gamma, 0);
  float* dg = aligned16(dgamma) ? dgamma : bn_aligned_slot(s, 2);
  float* db = aligned16(dbeta) ? dbeta : bn_aligned_slot(s, 3);
  const cudnnTensorDescriptor_t y_desc = fused ? static_cast<cudnnTensorDescriptor_t>(s.x) : nullptr;
  CUDNN_CHECK(cudnnBatchNormalizationBackwardEx(
      cudnn_, CUDNN_BATCHNORM_SPATIAL_PERSISTENT, s.ops, &kOne, &kZero, &kOne, &kZero, s.x,
      x.ptr(), y_desc, fused ? s.output.ptr() : nullptr, s.x, grad, nullptr, nullptr, s.x,
      dx.ptr(), s.stats, g, s.beta_used, dg, db, static_cast<double>(d.epsilon),
      s.saved_mean.as<float>(), s.saved_inv_std.as<float>(), act, bn_workspace(workspace_bytes),
      workspace_bytes, s.reserve.bytes() ? s.reserve.as<void>() : nullptr, s.reserve.bytes()));
  const size_t stat_bytes = sizeof(float) * d.io.c;
  if (dg != dgamma)
    CUDA_CHECK(cudaMemcpyAsync(dgamma, dg, stat_bytes, cudaMemcpyDeviceToDevice, stream_));
  if (db != dbeta)
    CUDA_CHECK(cudaMemcpyAsync(dbeta, db, stat_bytes, cudaMemcpyDeviceToDevice, stream_));
}

}  // namespace basin::exec::gpu
