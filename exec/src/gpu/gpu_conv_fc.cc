// The GPU backend's layers with weights: convolution (cuDNN) and fully connected (cuBLAS).
//
// Convolutions run on NHWC activations with KRSC (cuDNN's NHWC filter format) weights, the
// combination cuDNN's tensor-core kernels are written for; NCHW filters with NHWC activations
// would shut most of them out. The executor's weights are OIHW, so each forward converts them
// into a per-layer OHWI copy with cudnnTransformTensor (and the weight gradient back): one pass
// over the weights against the hundreds of multiply-adds per weight the convolution does. 1x1
// kernels, most of ResNet-50's, need no copy: OIHW and OHWI are the same memory there.
//
// Algorithms: the first time a shape runs a direction, cudnnFind*AlgorithmEx times every
// algorithm on the real buffers within the workspace limit, and the fastest acceptable one is
// kept for that shape (algorithms_); with GpuOptions::deterministic only deterministic ones are
// acceptable, without GpuOptions::tf32 only plain FMA math (no TF32 tensor ops).
#include <stdexcept>

#include "gpu_backend.h"

namespace basin::exec::gpu {
namespace {

const float kOne = 1.f, kZero = 0.f;

bool same(const ConvDesc& a, const ConvDesc& b) {
  return a.in == b.in && a.out == b.out && a.kernel == b.kernel && a.stride == b.stride &&
         a.padding == b.padding;
}

std::string shape_key(const ConvDesc& d) {
  std::string k;
  for (int v : {d.in.n, d.in.c, d.in.h, d.in.w, d.out.c, d.out.h, d.out.w, d.kernel, d.stride,
                d.padding})
    k += std::to_string(v) + ",";
  return k;
}

// cuDNN's search reports per algorithm its status, time, workspace, determinism and math type;
// results come fastest first, so the first acceptable one is the choice.
template <class Perf>
const Perf* pick(const Perf* perf, int count, const GpuOptions& o, const char* direction,
                 const ConvDesc& d) {
  for (int i = 0; i < count; ++i) {
    const Perf& p = perf[i];
    if (p.status != CUDNN_STATUS_SUCCESS || p.memory > o.workspace_bytes) continue;
    if (o.deterministic && p.determinism != CUDNN_DETERMINISTIC) continue;
    if (!o.tf32 && p.mathType != CUDNN_FMA_MATH && p.mathType != CUDNN_DEFAULT_MATH) continue;
    return &p;
  }
  throw std::runtime_error(std::string("cuDNN has no usable ") + direction +
                           " convolution algorithm for input " + std::to_string(d.in.n) + "x" +
                           std::to_string(d.in.c) + "x" + std::to_string(d.in.h) + "x" +
                           std::to_string(d.in.w) + ", kernel " + std::to_string(d.kernel) +
                           ", stride " + std::to_string(d.stride) + " within " +
                           std::to_string(o.workspace_bytes >> 20) + " MB of workspace");
}

// Without TF32, run on FMA math whatever the search called it (DEFAULT may mean TF32 on
// Ampere and later); with it, the math type the search timed.
cudnnMathType_t math_for(cudnnMathType_t found, const GpuOptions& o) {
  return o.tf32 ? found : CUDNN_FMA_MATH;
}

}  // namespace

ConvState& CudnnBackend::conv_state(int op, const ConvDesc& d, const Tensor& x, const Tensor& y) {
  auto it = convs_.find(op);
  if (it != convs_.end() && same(it->second.desc, d)) return it->second;
  if (!(x.desc == d.in) || !(y.desc == d.out))
    throw std::invalid_argument("conv tensors do not match the layer's shapes");
  ConvState s;
  s.desc = d;
  s.x = nhwc_descriptor(d.in);
  s.y = nhwc_descriptor(d.out);
  CUDNN_CHECK(cudnnSetFilter4dDescriptor(s.w, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NHWC, d.out.c,
                                         d.in.c, d.kernel, d.kernel));
  CUDNN_CHECK(cudnnSetConvolution2dDescriptor(s.conv, d.padding, d.padding, d.stride, d.stride, 1,
                                              1, CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
  CUDNN_CHECK(cudnnSetConvolutionMathType(s.conv, options_.tf32 ? CUDNN_DEFAULT_MATH
                                                                : CUDNN_FMA_MATH));
  int n = 0, c = 0, h = 0, w = 0;
  CUDNN_CHECK(cudnnGetConvolution2dForwardOutputDim(s.conv, s.x, s.w, &n, &c, &h, &w));
  if (!(TensorDesc{n, c, h, w} == d.out))
    throw std::invalid_argument("conv output shape disagrees with cuDNN's for its input");
  if (d.kernel > 1) {
    const TensorDesc weights{d.out.c, d.in.c, d.kernel, d.kernel};
    s.w_oihw = nchw_descriptor(weights);
    s.w_ohwi = nhwc_descriptor(weights);
    s.w_ohwi_data = DeviceMemory(sizeof(float) * weights.elements());
    s.dw_ohwi_data = DeviceMemory(sizeof(float) * weights.elements());
  }
  s.algorithms = &algorithms_[shape_key(d)];
  return convs_.insert_or_assign(op, std::move(s)).first->second;
}

const float* CudnnBackend::conv_weights(ConvState& s, const float* w_oihw) {
  if (s.desc.kernel == 1) return w_oihw;
  transform(s.w_oihw, w_oihw, s.w_ohwi, s.w_ohwi_data.as<float>());
  return s.w_ohwi_data.as<float>();
}

void CudnnBackend::find_forward(ConvState& s, const float* x, const float* w, float* y) {
  cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
  int count = 0;
  CUDNN_CHECK(cudnnFindConvolutionForwardAlgorithmEx(
      cudnn_, s.x, x, s.w, w, s.conv, s.y, y, CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &count, perf,
      workspace(), options_.workspace_bytes));
  const auto* p = pick(perf, count, options_, "forward", s.desc);
  s.algorithms->fwd = p->algo;
  s.algorithms->fwd_math = math_for(p->mathType, options_);
  s.algorithms->have_fwd = true;
}

void CudnnBackend::find_backward_data(ConvState& s, const float* w, const float* dy, float* dx) {
  cudnnConvolutionBwdDataAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
  int count = 0;
  CUDNN_CHECK(cudnnFindConvolutionBackwardDataAlgorithmEx(
      cudnn_, s.w, w, s.y, dy, s.conv, s.x, dx, CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &count,
      perf, workspace(), options_.workspace_bytes));
  const auto* p = pick(perf, count, options_, "backward-data", s.desc);
  s.algorithms->bwd_data = p->algo;
  s.algorithms->bwd_data_math = math_for(p->mathType, options_);
  s.algorithms->have_bwd_data = true;
}

void CudnnBackend::find_backward_filter(ConvState& s, const float* x, const float* dy,
                                        float* dw) {
  cudnnConvolutionBwdFilterAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
  int count = 0;
  CUDNN_CHECK(cudnnFindConvolutionBackwardFilterAlgorithmEx(
      cudnn_, s.x, x, s.y, dy, s.conv, s.w, dw, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &count,
      perf, workspace(), options_.workspace_bytes));
  const auto* p = pick(perf, count, options_, "backward-filter", s.desc);
  s.algorithms->bwd_filter = p->algo;
  s.algorithms->bwd_filter_math = math_for(p->mathType, options_);
  s.algorithms->have_bwd_filter = true;
}

void CudnnBackend::conv_forward(int op, const ConvDesc& d, const Tensor& x, const float* w,
                                Tensor& y) {
  ConvState& s = conv_state(op, d, x, y);
  const float* weights = conv_weights(s, w);
  if (!s.algorithms->have_fwd) find_forward(s, x.ptr(), weights, y.ptr());
  CUDNN_CHECK(cudnnSetConvolutionMathType(s.conv, s.algorithms->fwd_math));
  CUDNN_CHECK(cudnnConvolutionForward(cudnn_, &kOne, s.x, x.ptr(), s.w, weights, s.conv,
                                      s.algorithms->fwd, workspace(), options_.workspace_bytes,
                                      &kZero, s.y, y.ptr()));
}

void CudnnBackend::conv_backward(int op, const ConvDesc& d, const Tensor& x, const float* w,
                                 const Tensor& dy, Tensor* dx, float* dw) {
  ConvState& s = conv_state(op, d, x, dy);
  if (dx != nullptr) {
    const float* weights = conv_weights(s, w);
    if (!s.algorithms->have_bwd_data) find_backward_data(s, weights, dy.ptr(), dx->ptr());
    CUDNN_CHECK(cudnnSetConvolutionMathType(s.conv, s.algorithms->bwd_data_math));
    CUDNN_CHECK(cudnnConvolutionBackwardData(cudnn_, &kOne, s.w, weights, s.y, dy.ptr(), s.conv,
                                             s.algorithms->bwd_data, workspace(),
                                             options_.workspace_bytes, &kZero, s.x, dx->ptr()));
  }
  float* dw_ohwi = d.kernel == 1 ? dw : s.dw_ohwi_data.as<float>();
  if (!s.algorithms->have_bwd_filter) find_backward_filter(s, x.ptr(), dy.ptr(), dw_ohwi);
  CUDNN_CHECK(cudnnSetConvolutionMathType(s.conv, s.algorithms->bwd_filter_math));
  CUDNN_CHECK(cudnnConvolutionBackwardFilter(cudnn_, &kOne, s.x, x.ptr(), s.y, dy.ptr(), s.conv,
                                             s.algorithms->bwd_filter, workspace(),
                                             options_.workspace_bytes, &kZero, s.w, dw_ohwi));
  if (d.kernel > 1) transform(s.w_ohwi, dw_ohwi, s.w_oihw, dw);
}

// ----- Fully connected: y = x W^T + b with row-major W [out][in] -----------------------------------
//
// cuBLAS is column-major, where a row-major matrix reads as its transpose: x (N x in) is the
// column-major in x N matrix X^T, W (out x in) is W^T, y (N x out) is Y^T. So
//   Y^T  = W X^T       gemm(T, N): out x N from W^T (in x out) transposed and X^T
//   dX^T = W^T dY^T    gemm(N, N): in x N
//   dW^T = X^T dY      gemm(N, T): in x out, dY^T (out x N) transposed
// and db is dy summed over the batch (cudnnConvolutionBackwardBias on N x out x 1 x 1).

FcState& CudnnBackend::fc_state(int op, const FcDesc& d, const Tensor& x, const Tensor& y) {
  auto it = fcs_.find(op);
  if (it != fcs_.end() && it->second.desc.in == d.in && it->second.desc.out == d.out)
    return it->second;
  if (!(x.desc == d.in) || !(y.desc == d.out) || d.out.h * d.out.w != 1)
    throw std::invalid_argument("fc tensors do not match the layer's shapes");
  FcState s;
  s.desc = d;
  s.y = nchw_descriptor(d.out);
  s.bias = nchw_descriptor({1, d.out.c, 1, 1});
  if (d.in.h * d.in.w > 1) {
    s.in_nhwc = nhwc_descriptor(d.in);
    s.in_nchw = nchw_descriptor(d.in);
  }
  return fcs_.insert_or_assign(op, std::move(s)).first->second;
}

void CudnnBackend::fc_forward(int op, const FcDesc& d, const Tensor& x, const float* w,
                              const float* b, Tensor& y) {
  FcState& s = fc_state(op, d, x, y);
  const int n = d.in.n, in = d.in.c * d.in.h * d.in.w, out = d.out.c;
  const float* rows = x.ptr();  // x as N rows of in values, NCHW-flattened as torch does
  if (d.in.h * d.in.w > 1) {
    float* t = scratch(0, static_cast<size_t>(d.in.elements()));
    transform(s.in_nhwc, x.ptr(), s.in_nchw, t);
    rows = t;
  }
  CUBLAS_CHECK(cublasSgemm(cublas_, CUBLAS_OP_T, CUBLAS_OP_N, out, n, in, &kOne, w, in, rows, in,
                           &kZero, y.ptr(), out));
  CUDNN_CHECK(cudnnAddTensor(cudnn_, &kOne, s.bias, b, &kOne, s.y, y.ptr()));
}

void CudnnBackend::fc_backward(int op, const FcDesc& d, const Tensor& x, const float* w,
                               const Tensor& dy, Tensor& dx, float* dw, float* db) {
  FcState& s = fc_state(op, d, x, dy);
  const int n = d.in.n, in = d.in.c * d.in.h * d.in.w, out = d.out.c;
  const bool spatial = d.in.h * d.in.w > 1;
  const float* rows = x.ptr();
  float* drows = dx.ptr();
  if (spatial) {
    float* t = scratch(0, static_cast<size_t>(d.in.elements()));
    transform(s.in_nhwc, x.ptr(), s.in_nchw, t);
    rows = t;
    drows = scratch(1, static_cast<size_t>(d.in.elements()));
  }
  CUBLAS_CHECK(cublasSgemm(cublas_, CUBLAS_OP_N, CUBLAS_OP_N, in, n, out, &kOne, w, in, dy.ptr(),
                           out, &kZero, drows, in));
  if (spatial) transform(s.in_nchw, drows, s.in_nhwc, dx.ptr());
  CUBLAS_CHECK(cublasSgemm(cublas_, CUBLAS_OP_N, CUBLAS_OP_T, in, out, n, &kOne, rows, in,
                           dy.ptr(), out, &kZero, dw, in));
  CUDNN_CHECK(cudnnConvolutionBackwardBias(cudnn_, &kOne, s.y, dy.ptr(), &kZero, s.bias, db));
}

}  // namespace basin::exec::gpu
