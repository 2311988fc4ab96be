// The GPU backend's layers with weights: convolution (cuDNN) and fully connected (cuBLAS).
//
// Convolutions run on NHWC activations with KRSC (cuDNN's NHWC filter format) weights, the
// combination cuDNN's tensor-core kernels are written for; NCHW filters with NHWC activations
// would shut most of them out. The executor's weights are OIHW, so each forward converts them
// into a per-layer OHWI copy with cudnnTransformTensor (and the weight gradient back): one pass
// over the weights against the hundreds of multiply-adds per weight the convolution does. 1x1
// kernels, most of ResNet-50's, need no copy: OIHW and OHWI are the same memory there, unless
// the weights are not 16-byte aligned in the flat array (see conv_weights).
//
// Algorithms: the first time a shape runs a direction, cudnnFind*AlgorithmEx times every
// algorithm on the real buffers within the workspace limit, and the fastest acceptable one is
// kept for that shape and buffer alignment (algorithms_, conv_algorithms); with
// GpuOptions::deterministic only deterministic ones are
// acceptable, in fp32 without GpuOptions::tf32 only plain FMA math (no TF32 tensor ops).
//
// bf16/fp16: data, filters and the weight gradient in the compute precision, the convolution's
// compute type fp32 (cuDNN's PSEUDO_HALF / PSEUDO_BFLOAT16 configurations: tensor cores
// accumulating in fp32), tensor-op math allowed. The weight gradient is cast into the fp32
// gradient array after the layout transform. The fc runs cublasGemmEx on compute-precision
// inputs with fp32 accumulation, writing the fp32 logits and the fp32 weight gradient directly;
// only the input gradient is rounded to the compute precision.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

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

// cuDNN's tensor-core convolutions with NHWC (KRSC) filters want x, y, w, dx, dy and dw on 128-bit
// boundaries (cuDNN developer guide, Legacy API, "Data and Filter Formats"). Parameters sit in
// the flat arrays at whatever offset the layers before them leave (a 10-class fc's bias puts every
// later one 8 bytes off in fp32, 4 in bf16), so a 1x1 layer's weights and weight gradient are
// moved through aligned buffers when they are not aligned there.
constexpr std::uintptr_t kConvAlignment = 16;
bool aligned(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % kConvAlignment == 0; }

// The largest power of two up to 256 (cudaMalloc's alignment) dividing every address.
std::uintptr_t common_alignment(std::initializer_list<const void*> buffers) {
  std::uintptr_t bits = 256;
  for (const void* p : buffers) bits |= reinterpret_cast<std::uintptr_t>(p);
  return bits & (~bits + 1);
}

// cuDNN's search reports per algorithm its status, time, workspace, determinism and math type;
// results come fastest first, so the first acceptable one is the choice.
// Whether a found algorithm's math type is one the options allow: any in bf16/fp16 (tensor
// cores are the point); in fp32 with TF32 any but a conversion of the data to fp16 (ALLOW_
// CONVERSION: TF32 is what was asked for, not fp16's 11 bits), otherwise plain FMA math only.
bool math_allowed(cudnnMathType_t m, const GpuOptions& o) {
  if (o.precision != Precision::fp32) return true;
  if (m == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION) return false;
  return o.tf32 || m == CUDNN_FMA_MATH || m == CUDNN_DEFAULT_MATH;
}

cudnnMathType_t math_for(cudnnMathType_t found, const GpuOptions& o);  // below

// The acceptable results of a search, fastest first (cuDNN's order).
template <class Algo, class Perf>
std::vector<FoundAlgorithm<Algo>> usable(const Perf* perf, int count, const GpuOptions& o, const char* direction,
                                         const ConvDesc& d) {
  std::vector<FoundAlgorithm<Algo>> found;
  for (int i = 0; i < count; ++i) {
    const Perf& p = perf[i];
    if (p.status != CUDNN_STATUS_SUCCESS || p.memory > o.workspace_bytes) continue;
    if (o.deterministic && p.determinism != CUDNN_DETERMINISTIC) continue;
    if (!math_allowed(p.mathType, o)) continue;
    found.push_back({p.algo, math_for(p.mathType, o), p.memory});
  }
  if (!found.empty()) return found;
  throw std::runtime_error(std::string("cuDNN has no usable ") + direction +
                           " convolution algorithm for input " + std::to_string(d.in.n) + "x" +
                           std::to_string(d.in.c) + "x" + std::to_string(d.in.h) + "x" +
                           std::to_string(d.in.w) + ", kernel " + std::to_string(d.kernel) +
                           ", stride " + std::to_string(d.stride) + " within " +
                           std::to_string(o.workspace_bytes >> 20) + " MB of workspace");
}

// fp32 without TF32: FMA math whatever the search called it (DEFAULT may mean TF32 on Ampere
// and later); with TF32, or in bf16/fp16, the math type the search timed.
cudnnMathType_t math_for(cudnnMathType_t found, const GpuOptions& o) {
  return o.tf32 || o.precision != Precision::fp32 ? found : CUDNN_FMA_MATH;
}

// The math type a convolution descriptor starts with (the search tries all it allows).
cudnnMathType_t initial_math(const GpuOptions& o) {
  if (o.precision != Precision::fp32) return CUDNN_TENSOR_OP_MATH;
  return o.tf32 ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH;
}

// The descriptor is shared by the three directions and each run sets the math type its own
// search picked (conv_forward, conv_backward), so a search that followed another direction's
// run would otherwise see only that direction's math type: cuDNN's Find tries the math types
// the descriptor allows, and FMA_MATH allows no tensor-core algorithm. A forward that picked
// an FMA kernel (the 3-channel stem, a tiny layer) would shut tensor cores out of its backward
// searches: slower with TF32, and in bf16/fp16 possibly no algorithm at all.
void reset_search_math(cudnnConvolutionDescriptor_t conv, const GpuOptions& o) {
  CUDNN_CHECK(cudnnSetConvolutionMathType(conv, initial_math(o)));
}

}  // namespace

// cuDNN's search ran each algorithm it reports, yet one can still fail when run later (PyTorch's
// Conv_v7.cpp tries the next on a cuDNN error for that reason).
template <class Algo, class Run>
void CudnnBackend::run_found(std::vector<FoundAlgorithm<Algo>>& found, bool may_retry, const LayerCall& what,
                             Run run) {
  for (;;) {
    const cudnnStatus_t status = run(found.front());
    if (status == CUDNN_STATUS_SUCCESS) return;
    if (!may_retry || found.size() == 1) detail::cudnn_fail(status, what.text().c_str(), __FILE__, __LINE__);
    std::fprintf(stderr, "basin: %s: cuDNN's algorithm %d failed when run (%s); the next its search found runs from now on\n",
                 what.text().c_str(), static_cast<int>(found.front().algo), cudnnGetErrorString(status));
    found.erase(found.begin());
    if (found.front().memory > workspace_.bytes()) {
      CUDA_CHECK(cudaStreamSynchronize(stream_));  // the old workspace may still be in use
      workspace_ = DeviceMemory();
      workspace_ = DeviceMemory(found.front().memory);
    }
    workspace_needed_ = std::max(workspace_needed_, found.front().memory);
  }
}

ConvState& CudnnBackend::conv_state(int op, const ConvDesc& d, const Tensor& x, const Tensor& y) {
  auto it = convs_.find(op);
  if (it != convs_.end() && same(it->second.desc, d)) return it->second;
  if (!(x.desc == d.in) || !(y.desc == d.out))
    throw std::invalid_argument("conv tensors do not match the layer's shapes");
  const Precision p = options_.precision;
  if (precision_of(x) != p || precision_of(y) != p)
    throw std::invalid_argument(std::string("conv tensors must be in the backend's precision, ") +
                                precision_name(p));
  ConvState s;
  s.desc = d;
  s.x = nhwc_descriptor(d.in, p);
  s.y = nhwc_descriptor(d.out, p);
  CUDNN_CHECK(cudnnSetFilter4dDescriptor(s.w, cudnn_type(p), CUDNN_TENSOR_NHWC, d.out.c,
                                         d.in.c, d.kernel, d.kernel));
  // Accumulate in fp32 in every precision.
  CUDNN_CHECK(cudnnSetConvolution2dDescriptor(s.conv, d.padding, d.padding, d.stride, d.stride, 1,
                                              1, CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
  CUDNN_CHECK(cudnnSetConvolutionMathType(s.conv, initial_math(options_)));
  int n = 0, c = 0, h = 0, w = 0;
  CUDNN_CHECK(cudnnGetConvolution2dForwardOutputDim(s.conv, s.x, s.w, &n, &c, &h, &w));
  if (!(TensorDesc{n, c, h, w} == d.out))
    throw std::invalid_argument("conv output shape disagrees with cuDNN's for its input");
  const TensorDesc weights{d.out.c, d.in.c, d.kernel, d.kernel};
  const size_t weight_bytes = element_bytes(p) * static_cast<size_t>(weights.elements());
  if (d.kernel > 1) {
    s.w_oihw = nchw_descriptor(weights, p);
    s.w_ohwi = nhwc_descriptor(weights, p);
    s.w_ohwi_data = DeviceMemory(weight_bytes);
  }
  if (d.kernel > 1 || p != Precision::fp32) s.dw_data = DeviceMemory(weight_bytes);
  s.shape = shape_key(d);
  return convs_.insert_or_assign(op, std::move(s)).first->second;
}

ConvAlgorithms& CudnnBackend::conv_algorithms(const ConvState& s,
                                              std::initializer_list<const void*> buffers) {
  // Layers of one shape share a search only when their buffers are aligned alike: an algorithm
  // timed on 256-byte aligned buffers may rely on an alignment that another layer's buffers lack.
  return algorithms_[s.shape + "@" + std::to_string(common_alignment(buffers))];
}

const void* CudnnBackend::conv_weights(ConvState& s, const float* w_oihw) {
  const TensorDesc& in = s.desc.in;
  const long long count = 1LL * s.desc.out.c * in.c * s.desc.kernel * s.desc.kernel;
  const void* w = options_.precision == Precision::fp32 ? w_oihw : low_weights(w_oihw, count);
  if (s.desc.kernel == 1) {
    if (aligned(w)) return w;
    const size_t bytes = element_bytes(options_.precision) * static_cast<size_t>(count);
    if (!s.w_ohwi_data.bytes()) s.w_ohwi_data = DeviceMemory(bytes);
    CUDA_CHECK(cudaMemcpyAsync(s.w_ohwi_data.as<void>(), w, bytes, cudaMemcpyDeviceToDevice,
                               stream_));
    return s.w_ohwi_data.as<void>();
  }
  transform(s.w_oihw, w, s.w_ohwi, s.w_ohwi_data.as<void>());
  return s.w_ohwi_data.as<void>();
}

void CudnnBackend::find_forward(ConvState& s, ConvAlgorithms& a, const void* x, const void* w,
                                void* y) {
  cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
  int count = 0;
  reset_search_math(s.conv, options_);
  CUDNN_CHECK(cudnnFindConvolutionForwardAlgorithmEx(
      cudnn_, s.x, x, s.w, w, s.conv, s.y, y, CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &count, perf,
      search_workspace(), options_.workspace_bytes));
  a.fwd = usable<cudnnConvolutionFwdAlgo_t>(perf, count, options_, "forward", s.desc);
  workspace_needed_ = std::max(workspace_needed_, a.fwd.front().memory);
}

void CudnnBackend::find_backward_data(ConvState& s, ConvAlgorithms& a, const void* w,
                                      const void* dy, void* dx) {
  cudnnConvolutionBwdDataAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
  int count = 0;
  reset_search_math(s.conv, options_);
  CUDNN_CHECK(cudnnFindConvolutionBackwardDataAlgorithmEx(
      cudnn_, s.w, w, s.y, dy, s.conv, s.x, dx, CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &count,
      perf, search_workspace(), options_.workspace_bytes));
  a.bwd_data = usable<cudnnConvolutionBwdDataAlgo_t>(perf, count, options_, "backward-data", s.desc);
  workspace_needed_ = std::max(workspace_needed_, a.bwd_data.front().memory);
}

void CudnnBackend::find_backward_filter(ConvState& s, ConvAlgorithms& a, const void* x,
                                        const void* dy, void* dw) {
  cudnnConvolutionBwdFilterAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
  int count = 0;
  reset_search_math(s.conv, options_);
  CUDNN_CHECK(cudnnFindConvolutionBackwardFilterAlgorithmEx(
      cudnn_, s.x, x, s.y, dy, s.conv, s.w, dw, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &count,
      perf, search_workspace(), options_.workspace_bytes));
  a.bwd_filter = usable<cudnnConvolutionBwdFilterAlgo_t>(perf, count, options_, "backward-filter", s.desc);
  workspace_needed_ = std::max(workspace_needed_, a.bwd_filter.front().memory);
}

void CudnnBackend::conv_forward(int op, const ConvDesc& d, const Tensor& x, const float* w,
                                Tensor& y) {
  ConvState& s = conv_state(op, d, x, y);
  const void* weights = conv_weights(s, w);
  ConvAlgorithms& a = conv_algorithms(s, {x.ptr(), weights, y.ptr()});
  if (a.fwd.empty()) find_forward(s, a, x.ptr(), weights, y.ptr());
  run_found(a.fwd, true, LayerCall{"cudnnConvolutionForward", "convolution", op, d.in}, [&](const auto& f) {
    CUDNN_CHECK(cudnnSetConvolutionMathType(s.conv, f.math));
    return cudnnConvolutionForward(cudnn_, &kOne, s.x, x.ptr(), s.w, weights, s.conv, f.algo, workspace_.as<void>(),
                                   workspace_.bytes(), &kZero, s.y, y.ptr());
  });
}

// add_to_dx: cuDNN blends into dx (beta 1), the sum taken in fp32 and rounded once.
void CudnnBackend::conv_backward(int op, const ConvDesc& d, const Tensor& x, const float* w,
                                 const Tensor& dy, Tensor* dx, float* dw, bool add_to_dx) {
  ConvState& s = conv_state(op, d, x, dy);
  if (dx != nullptr) {
    const void* weights = conv_weights(s, w);
    ConvAlgorithms& a = conv_algorithms(s, {weights, dy.ptr(), dx->ptr()});
    if (a.bwd_data.empty()) {
      if (!add_to_dx) {
        find_backward_data(s, a, weights, dy.ptr(), dx->ptr());
      } else {
        // The search writes its output: not over the sum dx holds. Its own memory, freed after,
        // starts as far past 256-byte alignment as dx does, so the algorithm suits dx. It costs
        // one dx more in the first step only (the planner's room for gradients covers it,
        // model::training_activation_bytes).
        const size_t bytes =
            element_bytes(precision_of(*dx)) * static_cast<size_t>(d.in.elements());
        DeviceMemory search_dx(bytes + 256);
        const auto skew = reinterpret_cast<std::uintptr_t>(dx->ptr()) % 256;
        find_backward_data(s, a, weights, dy.ptr(), search_dx.as<char>() + skew);
      }
    }
    run_found(a.bwd_data, !add_to_dx, LayerCall{"cudnnConvolutionBackwardData", "convolution", op, d.in},
              [&](const auto& f) {
                CUDNN_CHECK(cudnnSetConvolutionMathType(s.conv, f.math));
                return cudnnConvolutionBackwardData(cudnn_, &kOne, s.w, weights, s.y, dy.ptr(), s.conv, f.algo,
                                                    workspace_.as<void>(), workspace_.bytes(),
                                                    add_to_dx ? &kOne : &kZero, s.x, dx->ptr());
              });
  }
  const Precision p = options_.precision;
  const size_t count = static_cast<size_t>(d.out.c) * d.in.c * d.kernel * d.kernel;
  // fp32 1x1: straight into the gradient array when it is aligned (conv_weights says why).
  const bool direct = d.kernel == 1 && p == Precision::fp32 && aligned(dw);
  if (d.kernel == 1 && p == Precision::fp32 && !direct && !s.dw_data.bytes())
    s.dw_data = DeviceMemory(sizeof(float) * count);
  void* dw_ohwi = direct ? dw : s.dw_data.as<void>();
  ConvAlgorithms& a = conv_algorithms(s, {x.ptr(), dy.ptr(), dw_ohwi});
  if (a.bwd_filter.empty()) find_backward_filter(s, a, x.ptr(), dy.ptr(), dw_ohwi);
  run_found(a.bwd_filter, true, LayerCall{"cudnnConvolutionBackwardFilter", "convolution", op, d.in},
            [&](const auto& f) {
              CUDNN_CHECK(cudnnSetConvolutionMathType(s.conv, f.math));
              return cudnnConvolutionBackwardFilter(cudnn_, &kOne, s.x, x.ptr(), s.y, dy.ptr(), s.conv, f.algo,
                                                    workspace_.as<void>(), workspace_.bytes(), &kZero, s.w, dw_ohwi);
            });
  if (p == Precision::fp32) {
    if (d.kernel > 1) transform(s.w_ohwi, dw_ohwi, s.w_oihw, dw);
    else if (!direct)
      CUDA_CHECK(cudaMemcpyAsync(dw, dw_ohwi, sizeof(float) * count, cudaMemcpyDeviceToDevice,
                                 stream_));
    return;
  }
  // OHWI to OIHW in the compute precision, then one widening (exact) into the fp32 gradients.
  const void* dw_oihw = dw_ohwi;
  if (d.kernel > 1) {
    void* t = scratch_bytes(3, element_bytes(p) * count);
    transform(s.w_ohwi, dw_ohwi, s.w_oihw, t);
    dw_oihw = t;
  }
  kernels::cast_gpu(dw_oihw, kernel_precision(p), dw, kernels::Precision::fp32, count, stream_);
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
  // In bf16/fp16 the output must be the fp32 logits: the bias add and the loss read fp32.
  if (precision_of(x) != options_.precision || precision_of(y) != Precision::fp32)
    throw std::invalid_argument(std::string("fc needs its input in the backend's precision (") +
                                precision_name(options_.precision) +
                                ") and its output fp32 (the plain-layout logits)");
  FcState s;
  s.desc = d;
  s.y = nchw_descriptor(d.out);
  s.bias = nchw_descriptor({1, d.out.c, 1, 1});
  if (d.in.h * d.in.w > 1) {
    s.in_nhwc = nhwc_descriptor(d.in, options_.precision);
    s.in_nchw = nchw_descriptor(d.in, options_.precision);
  }
  return fcs_.insert_or_assign(op, std::move(s)).first->second;
}

void CudnnBackend::fc_forward(int op, const FcDesc& d, const Tensor& x, const float* w,
                              const float* b, Tensor& y) {
  FcState& s = fc_state(op, d, x, y);
  const int n = d.in.n, in = d.in.c * d.in.h * d.in.w, out = d.out.c;
  const Precision p = options_.precision;
  if (p != Precision::fp32) {
    const void* rows = x.ptr();
    if (d.in.h * d.in.w > 1) {
      void* t = scratch_bytes(0, element_bytes(p) * static_cast<size_t>(d.in.elements()));
      transform(s.in_nhwc, x.ptr(), s.in_nchw, t);
      rows = t;
    }
    const void* w_low = low_weights(w, 1LL * in * out);
    CUBLAS_CHECK(cublasGemmEx(cublas_, CUBLAS_OP_T, CUBLAS_OP_N, out, n, in, &kOne, w_low,
                              cuda_type(p), in, rows, cuda_type(p), in, &kZero, y.ptr(),
                              CUDA_R_32F, out, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    CUDNN_CHECK(cudnnAddTensor(cudnn_, &kOne, s.bias, b, &kOne, s.y, y.ptr()));
    return;
  }
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
  const Precision p = options_.precision;
  if (p != Precision::fp32) {
    const size_t element = element_bytes(p);
    const void* rows = x.ptr();
    void* drows = dx.ptr();
    if (spatial) {
      void* t = scratch_bytes(0, element * static_cast<size_t>(d.in.elements()));
      transform(s.in_nhwc, x.ptr(), s.in_nchw, t);
      rows = t;
      drows = scratch_bytes(1, element * static_cast<size_t>(d.in.elements()));
    }
    // GemmEx wants both inputs in one type: the fp32 dlogits rounded once (N x classes, tiny).
    void* dy_low = scratch_bytes(4, element * static_cast<size_t>(d.out.elements()));
    kernels::cast_gpu(dy.ptr(), kernels::Precision::fp32, dy_low, kernel_precision(p),
                      static_cast<size_t>(d.out.elements()), stream_);
    const void* w_low = low_weights(w, 1LL * in * out);
    CUBLAS_CHECK(cublasGemmEx(cublas_, CUBLAS_OP_N, CUBLAS_OP_N, in, n, out, &kOne, w_low,
                              cuda_type(p), in, dy_low, cuda_type(p), out, &kZero, drows,
                              cuda_type(p), in, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    if (spatial) transform(s.in_nchw, drows, s.in_nhwc, dx.ptr());
    CUBLAS_CHECK(cublasGemmEx(cublas_, CUBLAS_OP_N, CUBLAS_OP_T, in, out, n, &kOne, rows,
                              cuda_type(p), in, dy_low, cuda_type(p), out, &kZero, dw, CUDA_R_32F,
                              in, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    CUDNN_CHECK(cudnnConvolutionBackwardBias(cudnn_, &kOne, s.y, dy.ptr(), &kZero, s.bias, db));
    return;
  }
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
