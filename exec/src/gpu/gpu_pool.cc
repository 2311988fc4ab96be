// The GPU backend's pooling: cuDNN max pooling (deterministic when asked) and the global
// average in front of the fc, both on the compute precision directly (on fp32 copies should
// cuDNN refuse it: call_widening).
#include <stdexcept>
#include <string>

#include "gpu_backend.h"

namespace basin::exec::gpu {
namespace {

const float kOne = 1.f, kZero = 0.f;

size_t elements(const TensorDesc& d) { return static_cast<size_t>(d.elements()); }

LayerCall pool_call(const char* call, int op, const PoolDesc& d) { return {call, "pooling", op, d.in}; }

bool same(const PoolDesc& a, const PoolDesc& b) {
  return a.in == b.in && a.out == b.out && a.kind == b.kind && a.kernel == b.kernel &&
         a.stride == b.stride && a.padding == b.padding;
}

}  // namespace

PoolState& CudnnBackend::pool_state(int op, const PoolDesc& d, const Tensor& x, const Tensor& y) {
  auto it = pools_.find(op);
  if (it != pools_.end() && same(it->second.desc, d)) return it->second;
  if (!(x.desc == d.in) || !(y.desc == d.out))
    throw std::invalid_argument("pool tensors do not match the layer's shapes");
  PoolState s;
  s.desc = d;
  s.x = nhwc_descriptor(d.in, precision_of(x));
  s.y = nhwc_descriptor(d.out, precision_of(y));
  if (precision_of(x) != Precision::fp32) {
    s.x32 = nhwc_descriptor(d.in, Precision::fp32);
    s.y32 = nhwc_descriptor(d.out, Precision::fp32);
    s.widened = options_.fp32_copies;
  }
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
  call_widening(s.widened, pool_call("cudnnPoolingForward", op, d), precision_of(x),
                {{x.ptr(), elements(d.in)}}, {{y.ptr(), elements(d.out)}},
                [&](bool fp32, const auto& in, const auto& out) {
                  return cudnnPoolingForward(cudnn_, s.pool, &kOne, fp32 ? s.x32 : s.x, in[0], &kZero,
                                             fp32 ? s.y32 : s.y, out[0]);
                });
  // The executor keeps both until backward (they are layer outputs), which rereads them.
  s.input = x;
  s.output = y;
}

void CudnnBackend::pool_backward(int op, const PoolDesc& d, const Tensor& dy, Tensor& dx) {
  PoolState& s = pool_state(op, d, dx, dy);
  if (!s.input.data)
    throw std::logic_error("pool backward of layer " + std::to_string(op) + " before its forward");
  call_widening(s.widened, pool_call("cudnnPoolingBackward", op, d), precision_of(dx),
                {{s.output.ptr(), elements(d.out)}, {dy.ptr(), elements(d.out)}, {s.input.ptr(), elements(d.in)}},
                {{dx.ptr(), elements(d.in)}}, [&](bool fp32, const auto& in, const auto& out) {
                  const cudnnTensorDescriptor_t x_desc = fp32 ? s.x32 : s.x, y_desc = fp32 ? s.y32 : s.y;
                  return cudnnPoolingBackward(cudnn_, s.pool, &kOne, y_desc, in[0], y_desc, in[1], x_desc,
                                              in[2], &kZero, x_desc, out[0]);
                });
}

}  // namespace basin::exec::gpu
