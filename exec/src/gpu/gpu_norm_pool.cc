// The GPU backend's batch normalization (cuDNN; training with batch statistics, eval with
// running statistics, optionally followed by the fused ReLU) and pooling (cuDNN max, and the
// global average in front of the fc).
//
// Batch statistics: the interface wants the batch mean and the biased variance; cuDNN hands out
// the mean and 1/sqrt(var + eps) for backward, and the variance only through its running
// average, which it keeps unbiased (N*H*W / (N*H*W - 1), as torch). So the training forward runs
// with an averaging factor of 1 into the caller's batch_mean / batch_var (running = batch), and
// the variance is scaled back by (count - 1) / count: one rounding, not the cancellation of
// 1/invstd^2 - eps.
//
// The fused ReLU: cuDNN fuses BN + ReLU only for fp16 NHWC (cudnnBatchNormalizationForwardTrainingEx),
// so in fp32 the ReLU is a second in-place pass over y, and backward masks dy with the saved
// output (y > 0) before cuDNN's batch norm backward, as the CPU backend's workspace does.
// (bf16/fp16 do the same with basin's ReLU kernel; cuDNN's fused fp16 path needs the persistent
// mode, see BatchNormState, and is left for when the GPU tests have run.)
//
// bf16/fp16: x, y, dy and dx in the compute precision, everything per channel fp32 (the
// descriptor cudnnDeriveBNTensorDescriptor derives from a half or bf16 x is float), so the
// statistics are accumulated and kept in fp32. Pooling runs on the compute precision directly.
#include <basin/kernels.h>

#include <stdexcept>

#include "gpu_backend.h"

namespace basin::exec::gpu {
namespace {

const float kOne = 1.f, kZero = 0.f;

bool same(const PoolDesc& a, const PoolDesc& b) {
  return a.in == b.in && a.out == b.out && a.kind == b.kind && a.kernel == b.kernel &&
         a.stride == b.stride && a.padding == b.padding;
}

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
  CUDNN_CHECK(cudnnDeriveBNTensorDescriptor(s.stats, s.x, CUDNN_BATCHNORM_SPATIAL));
  s.saved_mean = DeviceMemory(sizeof(float) * d.io.c);
  s.saved_inv_std = DeviceMemory(sizeof(float) * d.io.c);
  return bns_.insert_or_assign(op, std::move(s)).first->second;
}

void CudnnBackend::batchnorm_forward_training(int op, const BatchNormDesc& d, const Tensor& x,
                                              const float* gamma, const float* beta, Tensor& y,
                                              float* batch_mean, float* batch_var) {
  BatchNormState& s = bn_state(op, d, x);
  const size_t stat_bytes = sizeof(float) * d.io.c;
  // Factor 1 gives running = batch + 0 * old: zero the old so a NaN there cannot leak through.
  CUDA_CHECK(cudaMemsetAsync(batch_mean, 0, stat_bytes, stream_));
  CUDA_CHECK(cudaMemsetAsync(batch_var, 0, stat_bytes, stream_));
  auto run = [&] {
    return cudnnBatchNormalizationForwardTraining(
        cudnn_, s.train_mode, &kOne, &kZero, s.x, x.ptr(), s.x, y.ptr(), s.stats, gamma, beta,
        1.0, batch_mean, batch_var, static_cast<double>(d.epsilon), s.saved_mean.as<float>(),
        s.saved_inv_std.as<float>());
  };
  cudnnStatus_t status = run();
  if (status == CUDNN_STATUS_NOT_SUPPORTED && s.train_mode == CUDNN_BATCHNORM_SPATIAL_PERSISTENT) {
    s.train_mode = CUDNN_BATCHNORM_SPATIAL;  // persistent is an optimization, not a must
    status = run();
  }
  CUDNN_CHECK(status);
  const double count = 1.0 * d.io.n * d.io.h * d.io.w;
  if (count > 1) {
    const auto biased = static_cast<float>((count - 1) / count);
    CUDNN_CHECK(cudnnScaleTensor(cudnn_, s.stats, batch_var, &biased));
  } else {
    CUDA_CHECK(cudaMemsetAsync(batch_var, 0, stat_bytes, stream_));  // one value: no spread
  }
  if (d.fused_relu) relu_in_place(y);
  s.output = y;
}

void CudnnBackend::batchnorm_forward_eval(int op, const BatchNormDesc& d, const Tensor& x,
                                          const float* gamma, const float* beta,
                                          const float* running_mean, const float* running_var,
                                          Tensor& y) {
  BatchNormState& s = bn_state(op, d, x);
  CUDNN_CHECK(cudnnBatchNormalizationForwardInference(
      cudnn_, CUDNN_BATCHNORM_SPATIAL, &kOne, &kZero, s.x, x.ptr(), s.x, y.ptr(), s.stats, gamma,
      beta, running_mean, running_var, static_cast<double>(d.epsilon)));
  if (d.fused_relu) relu_in_place(y);
}

void CudnnBackend::relu_in_place(Tensor& y) {
  // relu_forward is that (no per-layer state); it picks cuDNN in fp32 and the kernel otherwise.
  relu_forward(-1, y, y);
}

void CudnnBackend::batchnorm_backward(int op, const BatchNormDesc& d, const Tensor& x,
                                      const float* gamma, const Tensor& dy, Tensor& dx,
                                      float* dgamma, float* dbeta) {
  BatchNormState& s = bn_state(op, d, x);
  if (!s.output.data)
    throw std::logic_error("batchnorm backward of layer " + std::to_string(op) +
                           " before its training forward");
  const void* grad = dy.ptr();
  if (d.fused_relu) {
    // The gradient of the ReLU's output, masked to the gradient of the batch norm's output.
    const Precision p = precision_of(dy);
    void* masked = scratch_bytes(0, element_bytes(p) * static_cast<size_t>(d.io.elements()));
    kernels::residual_add_relu_backward_gpu(s.output.ptr(), dy.ptr(), masked,
                                            static_cast<size_t>(d.io.elements()),
                                            kernel_precision(p), stream_);
    grad = masked;
  }
  CUDNN_CHECK(cudnnBatchNormalizationBackward(
      cudnn_, s.train_mode, &kOne, &kZero, &kOne, &kZero, s.x, x.ptr(), s.x, grad, s.x, dx.ptr(),
      s.stats, gamma, dgamma, dbeta, static_cast<double>(d.epsilon), s.saved_mean.as<float>(),
      s.saved_inv_std.as<float>()));
}

PoolState& CudnnBackend::pool_state(int op, const PoolDesc& d, const Tensor& x, const Tensor& y) {
  auto it = pools_.find(op);
  if (it != pools_.end() && same(it->second.desc, d)) return it->second;
  if (!(x.desc == d.in) || !(y.desc == d.out))
    throw std::invalid_argument("pool tensors do not match the layer's shapes");
  PoolState s;
  s.desc = d;
  s.x = nhwc_descriptor(d.in, precision_of(x));
  s.y = nhwc_descriptor(d.out, precision_of(y));
  // Average pooling is the global pool before the fc (no padding), where including or excluding
  // padding agree; excluding matches torch's AdaptiveAvgPool2d by construction.
  const cudnnPoolingMode_t mode =
      d.kind == PoolKind::average ? CUDNN_POOLING_AVERAGE_COUNT_EXCLUDE_PADDING
      : options_.deterministic    ? CUDNN_POOLING_MAX_DETERMINISTIC
                                  : CUDNN_POOLING_MAX;
  CUDNN_CHECK(cudnnSetPooling2dDescriptor(s.pool, mode, CUDNN_NOT_PROPAGATE_NAN, d.kernel,
                                          d.kernel, d.padding, d.padding, d.stride, d.stride));
  int n = 0, c = 0, h = 0, w = 0;
  CUDNN_CHECK(cudnnGetPooling2dForwardOutputDim(s.pool, s.x, &n, &c, &h, &w));
  if (!(TensorDesc{n, c, h, w} == d.out))
    throw std::invalid_argument("pool output shape disagrees with cuDNN's for its input");
  return pools_.insert_or_assign(op, std::move(s)).first->second;
}

void CudnnBackend::pool_forward(int op, const PoolDesc& d, const Tensor& x, Tensor& y) {
  PoolState& s = pool_state(op, d, x, y);
  CUDNN_CHECK(cudnnPoolingForward(cudnn_, s.pool, &kOne, s.x, x.ptr(), &kZero, s.y, y.ptr()));
  // The executor keeps both until backward (they are layer outputs), which rereads them.
  s.input = x;
  s.output = y;
}

void CudnnBackend::pool_backward(int op, const PoolDesc& d, const Tensor& dy, Tensor& dx) {
  PoolState& s = pool_state(op, d, dx, dy);
  if (!s.input.data)
    throw std::logic_error("pool backward of layer " + std::to_string(op) + " before its forward");
  CUDNN_CHECK(cudnnPoolingBackward(cudnn_, s.pool, &kOne, s.y, s.output.ptr(), s.y, dy.ptr(), s.x,
                                   s.input.ptr(), &kZero, s.x, dx.ptr()));
}

}  // namespace basin::exec::gpu
