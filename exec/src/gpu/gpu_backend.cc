// The GPU backend: device, stream and handles, tensors and their host boundary, the elementwise
// layers (ReLU, residual add), the loss, and the flat arrays with their optimizer step and
// running statistics. Convolution and fc are in gpu_conv_fc.cc, batch norm in
// gpu_batchnorm.cc, pooling in gpu_pool.cc.
//
// Basin's own kernels (kernels/) do what cuDNN has no single call for: ReLU's backward from the
// saved output, the softmax cross-entropy, the flat SGD step with no-decay ranges, loss scaling's
// unscale-and-check, and the precision casts. In bf16/fp16 they also do the ReLU and the
// residual add (cuDNN's activation and add-tensor calls are used for fp32 only, as before, so
// fp32 runs the same calls it always did).
#include <basin/kernels.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>

#include "gpu_backend.h"

namespace basin::exec::gpu {
namespace {

const float kOne = 1.f, kZero = 0.f;

std::string shape_text(const TensorDesc& d) {
  return std::to_string(d.n) + "x" + std::to_string(d.c) + "x" + std::to_string(d.h) + "x" +
         std::to_string(d.w);
}

TensorDescriptor descriptor(const TensorDesc& d, cudnnTensorFormat_t format, Precision p) {
  TensorDescriptor t;
  CUDNN_CHECK(cudnnSetTensor4dDescriptor(t, format, cudnn_type(p), d.n, d.c, d.h, d.w));
  return t;
}

// NHWC and NCHW order the same memory alike when there is one channel or one pixel.
bool layouts_agree(const TensorDesc& d) { return d.c == 1 || d.h * d.w == 1; }

size_t bytes_of(const TensorDesc& d, Precision p = Precision::fp32) {
  return element_bytes(p) * static_cast<size_t>(d.elements());
}

// The precision a sum of a and b into y runs in; throws where their shapes or types differ.
Precision sum_precision(const Tensor& a, const Tensor& b, const Tensor& y) {
  if (!(a.desc == b.desc) || !(a.desc == y.desc))
    throw std::invalid_argument("add of tensors of different shapes");
  const Precision p = precision_of(y);
  if (precision_of(a) != p || precision_of(b) != p)
    throw std::invalid_argument("add of tensors of different precisions");
  return p;
}

}  // namespace

TensorDescriptor nhwc_descriptor(const TensorDesc& d, Precision p) {
  return descriptor(d, CUDNN_TENSOR_NHWC, p);
}
TensorDescriptor nchw_descriptor(const TensorDesc& d, Precision p) {
  return descriptor(d, CUDNN_TENSOR_NCHW, p);
}

DeviceMemory::DeviceMemory(size_t bytes) : bytes_(bytes) {
  CUDA_CHECK(cudaMalloc(&ptr_, std::max<size_t>(bytes, 1)));
}

CudnnBackend::CudnnBackend(const GpuOptions& options) : options_(options) {
  CUDA_CHECK(cudaSetDevice(options.device));
  cudaDeviceProp prop{};
  CUDA_CHECK(cudaGetDeviceProperties(&prop, options.device));
  device_name_ = prop.name;
  CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  stream_owner_.reset(stream_);
  CUDNN_CHECK(cudnnCreate(&cudnn_));
  cudnn_owner_.reset(cudnn_);
  CUBLAS_CHECK(cublasCreate(&cublas_));
  cublas_owner_.reset(cublas_);
  CUDNN_CHECK(cudnnSetStream(cudnn_, stream_));
  CUBLAS_CHECK(cublasSetStream(cublas_, stream_));
  // Plain fp32 GEMMs unless TF32 is asked for (CUBLAS_DEFAULT_MATH never uses TF32 for Sgemm).
  CUBLAS_CHECK(cublasSetMathMode(cublas_, options.tf32 ? CUBLAS_TF32_TENSOR_OP_MATH
                                                       : CUBLAS_DEFAULT_MATH));
  // NaN passes through, as in the CPU backend and basin's own bf16/fp16 kernels: a NaN must
  // reach the loss and stop the run, not turn into a silent 0.
  CUDNN_CHECK(cudnnSetActivationDescriptor(relu_, CUDNN_ACTIVATION_RELU, CUDNN_PROPAGATE_NAN,
                                           0.0));
}

std::string CudnnBackend::name() const {
  const size_t v = cudnnGetVersion();
  int cublas_version = 0;
  CUBLAS_CHECK(cublasGetVersion(cublas_, &cublas_version));
  return "cuDNN " + std::to_string(v / 10000) + "." + std::to_string(v / 100 % 100) + "." +
         std::to_string(v % 100) + " + cuBLAS " + std::to_string(cublas_version) + " on " +
         device_name_ + " (NHWC " + precision_name(options_.precision) + ", TF32 " +
         (options_.tf32 ? "on" : "off") +
         (options_.deterministic ? ", deterministic" : "") +
         (options_.persistent_batchnorm ? ", persistent batch norm)" : ")");
}

// ----- Flat arrays -----------------------------------------------------------------------------

std::shared_ptr<float> CudnnBackend::alloc_flat(long long n) {
  if (n < 0) throw std::invalid_argument("flat array size must not be negative");
  // The new array may reuse the memory of the parameters the weight copy was made from.
  forget_weights_copy();
  const size_t bytes = sizeof(float) * static_cast<size_t>(std::max(n, 1LL));
  float* p = nullptr;
  CUDA_CHECK(cudaMalloc(&p, bytes));
  std::shared_ptr<float> owned(p, [](float* q) { cudaFree(q); });
  CUDA_CHECK(cudaMemsetAsync(p, 0, bytes, stream_));
  return owned;
}

void CudnnBackend::flat_to_host(const float* flat, float* host, long long n) {
  if (n <= 0) return;
  CUDA_CHECK(cudaMemcpyAsync(host, flat, sizeof(float) * static_cast<size_t>(n),
                             cudaMemcpyDeviceToHost, stream_));
  CUDA_CHECK(cudaStreamSynchronize(stream_));
}

void CudnnBackend::flat_from_host(const float* host, float* flat, long long n) {
  if (n <= 0) return;
  forget_weights_copy();  // the parameters may change; the next forward casts them again
  CUDA_CHECK(cudaMemcpyAsync(flat, host, sizeof(float) * static_cast<size_t>(n),
                             cudaMemcpyHostToDevice, stream_));
  CUDA_CHECK(cudaStreamSynchronize(stream_));  // the caller may free `host` on return
}

void CudnnBackend::update_running_stats(int channels, double count, float momentum,
                                        const float* batch_mean, const float* batch_var,
                                        float* running_mean, float* running_var) {
  // cudnnAddTensor: C = alpha A + beta C, which is the momentum update itself.
  const TensorDescriptor stats = nchw_descriptor({1, channels, 1, 1});
  const float keep = 1 - momentum;
  const float take_var = static_cast<float>(momentum * (count > 1 ? count / (count - 1) : 1.0));
  CUDNN_CHECK(cudnnAddTensor(cudnn_, &momentum, stats, batch_mean, &keep, stats, running_mean));
  CUDNN_CHECK(cudnnAddTensor(cudnn_, &take_var, stats, batch_var, &keep, stats, running_var));
}

void CudnnBackend::sgd_step(float* weights, float* velocity, const float* grads, long long n,
                            const FlatSgdStep& step) {
  forget_weights_copy();
  if (!no_decay_ready_ || step.no_decay != no_decay_uploaded_) {
    std::vector<kernels::FlatRange> ranges;
    for (const auto& [begin, end] : step.no_decay)
      ranges.push_back({static_cast<size_t>(begin), static_cast<size_t>(end)});
    kernels::check_flat_ranges(ranges.data(), ranges.size(), static_cast<size_t>(n));
    no_decay_ = DeviceMemory(sizeof(kernels::FlatRange) * ranges.size());
    if (!ranges.empty())
      CUDA_CHECK(cudaMemcpyAsync(no_decay_.as<void>(), ranges.data(), no_decay_.bytes(),
                                 cudaMemcpyHostToDevice, stream_));
    CUDA_CHECK(cudaStreamSynchronize(stream_));  // `ranges` dies here
    no_decay_uploaded_ = step.no_decay;
    no_decay_ready_ = true;
  }
  // The ranges were checked against the n of their upload; a later call may pass a shorter array.
  if (!step.no_decay.empty() && step.no_decay.back().second > n)
    throw std::invalid_argument("sgd step: no-decay range ends past the array of " +
                                std::to_string(n) + " floats");
  const kernels::SgdParams p{.lr = step.lr, .momentum = step.momentum,
                             .weight_decay = step.weight_decay, .nesterov = step.nesterov};
  kernels::sgd_flat_step_gpu(weights, velocity, grads, static_cast<size_t>(n), p,
                             no_decay_.as<kernels::FlatRange>(), step.no_decay.size(), stream_);
}

bool CudnnBackend::unscale_gradients(float* grads, long long n, float factor) {
  if (n < 0) throw std::invalid_argument("unscale_gradients: negative size");
  if (!nonfinite_.bytes()) nonfinite_ = DeviceMemory(sizeof(std::uint32_t));
  CUDA_CHECK(cudaMemsetAsync(nonfinite_.as<void>(), 0, sizeof(std::uint32_t), stream_));
  kernels::unscale_check_finite_gpu(grads, static_cast<size_t>(n), factor,
                                    nonfinite_.as<std::uint32_t>(), stream_);
  std::uint32_t found = 0;
  CUDA_CHECK(cudaMemcpyAsync(&found, nonfinite_.as<void>(), sizeof found, cudaMemcpyDeviceToHost,
                             stream_));
  CUDA_CHECK(cudaStreamSynchronize(stream_));
  return found == 0;
}

void CudnnBackend::prepare_weights(const float* params, long long n) {
  shrink_workspace();  // a forward starts: the last one's searches are done
  if (options_.precision == Precision::fp32 || n <= 0) return;
  const size_t bytes = element_bytes(options_.precision) * static_cast<size_t>(n);
  if (weights_low_.bytes() < bytes) {
    CUDA_CHECK(cudaStreamSynchronize(stream_));  // the old copy may still be read
    weights_low_ = DeviceMemory();
    weights_low_ = DeviceMemory(bytes);
  }
  kernels::cast_gpu(params, kernels::Precision::fp32, weights_low_.as<void>(),
                    kernel_precision(options_.precision), static_cast<size_t>(n), stream_);
  weights_base_ = params;
  weights_count_ = n;
}

void CudnnBackend::forget_weights_copy() {
  weights_base_ = nullptr;
  weights_count_ = 0;
}

const void* CudnnBackend::low_weights(const float* w, long long count) {
  const size_t element = element_bytes(options_.precision);
  if (weights_base_ != nullptr && w >= weights_base_ &&
      w + count <= weights_base_ + weights_count_)
    return weights_low_.as<char>() + element * static_cast<size_t>(w - weights_base_);
  void* copy = scratch_bytes(2, element * static_cast<size_t>(count));
  kernels::cast_gpu(w, kernels::Precision::fp32, copy, kernel_precision(options_.precision),
                    static_cast<size_t>(count), stream_);
  return copy;
}

// ----- Tensors -----------------------------------------------------------------------------------

Precision CudnnBackend::precision_for(const TensorDesc& desc, Layout layout) const {
  // The logits and their gradient (plain, one pixel) stay fp32 for the loss (backend.h).
  return layout == Layout::plain && desc.h * desc.w == 1 ? Precision::fp32 : options_.precision;
}

// NHWC has no padding: any shape of as many elements or fewer, in the same element type, fits.
// Offsets keep 16 bytes' alignment (the packed elementwise kernels' and cuDNN's fast paths).
Tensor CudnnBackend::view(const Tensor& storage, const TensorDesc& desc, Layout layout,
                          long long offset) {
  const Precision p = precision_for(desc, layout);
  const size_t byte_offset = element_bytes(p) * static_cast<size_t>(std::max(offset, 0LL));
  if (!storage.data || storage.format != format_of(p) || offset < 0 || byte_offset % 16 != 0 ||
      desc.elements() > storage.capacity - offset)
    return {};
  char* start = reinterpret_cast<char*>(storage.ptr()) + byte_offset;
  Tensor t{
      desc, layout, storage.format,
      std::shared_ptr<float>(storage.data, reinterpret_cast<float*>(start))};  // shares ownership
  t.capacity = storage.capacity - offset;
  return t;
}

Tensor CudnnBackend::alloc(const TensorDesc& desc, Layout layout) {
  if (desc.n < 1 || desc.c < 1 || desc.h < 1 || desc.w < 1)
    throw std::invalid_argument("tensor shape must be positive, got " + shape_text(desc));
  const Precision p = precision_for(desc, layout);
  Tensor t{desc, layout, format_of(p)};
  t.capacity = desc.elements();
  float* ptr = nullptr;
  CUDA_CHECK(cudaMalloc(&ptr, bytes_of(desc, p)));
  t.data = std::shared_ptr<float>(ptr, [](float* q) { cudaFree(q); });
  CUDA_CHECK(cudaMemsetAsync(ptr, 0, bytes_of(desc, p), stream_));
  return t;
}

float* CudnnBackend::scratch(int slot, size_t floats) {
  return static_cast<float*>(scratch_bytes(slot, floats * sizeof(float)));
}

void* CudnnBackend::scratch_bytes(int slot, size_t bytes) {
  DeviceMemory& m = scratch_[slot];
  if (m.bytes() < bytes) {
    CUDA_CHECK(cudaStreamSynchronize(stream_));  // the old buffer may still be in use
    m = DeviceMemory();
    m = DeviceMemory(bytes);
  }
  return m.as<void>();
}

void* CudnnBackend::search_workspace() {
  if (workspace_.bytes() < options_.workspace_bytes) {
    CUDA_CHECK(cudaStreamSynchronize(stream_));  // the old buffer may still be in use
    workspace_ = DeviceMemory();
    workspace_ = DeviceMemory(options_.workspace_bytes);
  }
  searched_ = true;
  return workspace_.as<void>();
}

// After a step's searches the chosen algorithms need only the most any of them asked for; the
// rest of the search's workspace would sit idle beside the activations for the whole run.
void CudnnBackend::shrink_workspace() {
  if (!searched_ || workspace_.bytes() <= workspace_needed_) return;
  CUDA_CHECK(cudaStreamSynchronize(stream_));
  workspace_ = DeviceMemory();
  if (workspace_needed_) workspace_ = DeviceMemory(workspace_needed_);
  searched_ = false;
}

// cuDNN's transform for fp32; basin's relayout kernel for 16-bit data, where the legacy
// cudnnTransformTensor's support is not assured (bf16 above all) and a plain copy is all it takes.
void CudnnBackend::transform(const TensorDescriptor& from_desc, const void* from,
                             const TensorDescriptor& to_desc, void* to) {
  cudnnDataType_t type{}, to_type{};
  int dims[4], strides[4], to_dims[4], to_strides[4];
  CUDNN_CHECK(cudnnGetTensor4dDescriptor(from_desc, &type, &dims[0], &dims[1], &dims[2], &dims[3], &strides[0],
                                         &strides[1], &strides[2], &strides[3]));
  CUDNN_CHECK(cudnnGetTensor4dDescriptor(to_desc, &to_type, &to_dims[0], &to_dims[1], &to_dims[2], &to_dims[3],
                                         &to_strides[0], &to_strides[1], &to_strides[2], &to_strides[3]));
  if (type == CUDNN_DATA_FLOAT || type != to_type) {
    CUDNN_CHECK(cudnnTransformTensor(cudnn_, &kOne, from_desc, from, &kZero, to_desc, to));
    return;
  }
  kernels::Layout4d layout;
  for (int d = 0; d < 4; ++d) {
    if (dims[d] != to_dims[d])
      throw std::logic_error("CudnnBackend::transform: descriptors of different shapes");
    layout.dims[d] = dims[d];
    layout.src_strides[d] = strides[d];
    layout.dst_strides[d] = to_strides[d];
  }
  kernels::relayout_gpu(from, to, 2, layout, stream_);
}

void CudnnBackend::write_nchw(const float* src, Tensor& dst) {
  const TensorDesc& d = dst.desc;
  const Precision p = precision_of(dst);
  if (p != Precision::fp32) {
    // Staged as fp32, then transposed and rounded once into the tensor in one pass (basin's
    // kernel): no second staging buffer as large as the batch.
    float* staged = scratch(0, static_cast<size_t>(d.elements()));
    CUDA_CHECK(cudaMemcpyAsync(staged, src, bytes_of(d), cudaMemcpyHostToDevice, stream_));
    kernels::nchw_to_nhwc_gpu(staged, dst.ptr(), kernel_precision(p), d.n, d.c, d.h * d.w, stream_);
    return;
  }
  if (layouts_agree(d)) {
    // Pageable host memory: the call returns once `src` is staged, so the caller may reuse it.
    CUDA_CHECK(cudaMemcpyAsync(dst.ptr(), src, bytes_of(d), cudaMemcpyHostToDevice, stream_));
    return;
  }
  float* staged = scratch(0, static_cast<size_t>(d.elements()));
  CUDA_CHECK(cudaMemcpyAsync(staged, src, bytes_of(d), cudaMemcpyHostToDevice, stream_));
  transform(nchw_descriptor(d), staged, nhwc_descriptor(d), dst.ptr());
}

void CudnnBackend::read_nchw(const Tensor& src, float* dst) {
  const TensorDesc& d = src.desc;
  const float* from = src.ptr();
  const Precision p = precision_of(src);
  if (p != Precision::fp32) {  // widened to fp32 first (exact), then as below
    float* wide = scratch(1, static_cast<size_t>(d.elements()));
    kernels::cast_gpu(src.ptr(), kernel_precision(p), wide, kernels::Precision::fp32,
                      static_cast<size_t>(d.elements()), stream_);
    from = wide;
  }
  if (!layouts_agree(d)) {
    float* staged = scratch(0, static_cast<size_t>(d.elements()));
    transform(nhwc_descriptor(d), from, nchw_descriptor(d), staged);
    from = staged;
  }
  CUDA_CHECK(cudaMemcpyAsync(dst, from, bytes_of(d), cudaMemcpyDeviceToHost, stream_));
  CUDA_CHECK(cudaStreamSynchronize(stream_));
}

void CudnnBackend::copy(const Tensor& src, Tensor& dst) {
  if (!(src.desc == dst.desc) || src.format != dst.format)
    throw std::invalid_argument("copy between tensors of different shapes or layouts");
  CUDA_CHECK(cudaMemcpyAsync(dst.ptr(), src.ptr(), bytes_of(src.desc, precision_of(src)),
                             cudaMemcpyDeviceToDevice, stream_));
}

// ----- Elementwise layers and the loss ------------------------------------------------------------

// basin's kernel in every precision: one pass, y may be a or b (a gradient summed into another).
// cudnnAddTensor would need y to start as an input (an extra copy when it is neither), and on
// NHWC descriptors it has been much slower than a flat pass.
void CudnnBackend::add(const Tensor& a, const Tensor& b, Tensor& y) {
  const Precision p = sum_precision(a, b, y);
  kernels::add_gpu(a.ptr(), b.ptr(), y.ptr(), static_cast<size_t>(y.desc.elements()), kernel_precision(p),
                   stream_);
}

// One pass of basin's kernel in every precision (the fp32 path too: its arithmetic is one IEEE
// add and a select, as cuDNN's add then activation).
void CudnnBackend::add_relu(int /*relu_op*/, const Tensor& a, const Tensor& b, Tensor& y) {
  const Precision p = sum_precision(a, b, y);
  kernels::residual_add_relu_gpu(a.ptr(), b.ptr(), y.ptr(), static_cast<size_t>(y.desc.elements()),
                                 kernel_precision(p), stream_);
}

void CudnnBackend::relu_forward(int /*op*/, const Tensor& x, Tensor& y) {
  const Precision p = precision_of(x);
  if (p != Precision::fp32) {
    kernels::relu_gpu(x.ptr(), y.ptr(), static_cast<size_t>(x.desc.elements()),
                      kernel_precision(p), stream_);
    return;
  }
  const TensorDescriptor t = nhwc_descriptor(x.desc);
  CUDNN_CHECK(cudnnActivationForward(cudnn_, relu_, &kOne, t, x.ptr(), &kZero, t, y.ptr()));
}

void CudnnBackend::relu_backward(int /*op*/, const Tensor& y, const Tensor& dy, Tensor& dx) {
  // dx = y > 0 ? dy : 0 from the saved output; elementwise, so dx may be dy.
  kernels::residual_add_relu_backward_gpu(y.ptr(), dy.ptr(), dx.ptr(),
                                          static_cast<size_t>(y.desc.elements()),
                                          kernel_precision(precision_of(y)), stream_);
}

double CudnnBackend::softmax_cross_entropy(const Tensor& logits, const int* labels,
                                           double divisor, Tensor& dlogits, double grad_scale) {
  if (logits.desc.h * logits.desc.w != 1 || !(logits.desc == dlogits.desc))
    throw std::invalid_argument("softmax cross-entropy needs N x K x 1 x 1 logits");
  if (precision_of(logits) != Precision::fp32 || precision_of(dlogits) != Precision::fp32)
    throw std::invalid_argument("softmax cross-entropy needs fp32 (plain-layout) logits");
  if (!(divisor > 0)) throw std::invalid_argument("loss divisor must be positive");
  if (!(grad_scale > 0) || !std::isfinite(grad_scale))
    throw std::invalid_argument("loss gradient scale must be finite and positive");
  const int n = logits.desc.n, k = logits.desc.c;
  // The kernels make a bad label's loss NaN; the CPU backend throws, and so does this one.
  for (int i = 0; i < n; ++i)
    if (labels[i] < 0 || labels[i] >= k)
      throw std::invalid_argument("label " + std::to_string(labels[i]) + " of image " +
                                  std::to_string(i) + " is outside [0, " + std::to_string(k) + ")");
  static_assert(sizeof(int) == sizeof(std::int32_t));
  if (labels_.bytes() < sizeof(int) * n) {
    CUDA_CHECK(cudaStreamSynchronize(stream_));
    labels_ = DeviceMemory(sizeof(int) * n);
    row_loss_ = DeviceMemory(sizeof(float) * n);
  }
  if (!mean_loss_.bytes()) mean_loss_ = DeviceMemory(sizeof(float));
  CUDA_CHECK(cudaMemcpyAsync(labels_.as<void>(), labels, sizeof(int) * n, cudaMemcpyHostToDevice,
                             stream_));
  const auto normalizer = static_cast<float>(divisor);
  kernels::softmax_xent_forward_gpu(logits.ptr(), labels_.as<std::int32_t>(), n, k, normalizer,
                                    row_loss_.as<float>(), mean_loss_.as<float>(), stream_);
  // The gradient's divisor carries the loss scale: (softmax - onehot) / (divisor / scale), the
  // same one fp32 division, so a power-of-two scale gives exactly scale x the unscaled gradient.
  kernels::softmax_xent_backward_gpu(logits.ptr(), labels_.as<std::int32_t>(), n, k,
                                     static_cast<float>(divisor / grad_scale), dlogits.ptr(),
                                     stream_);
  float loss = 0;
  CUDA_CHECK(cudaMemcpyAsync(&loss, mean_loss_.as<void>(), sizeof(float), cudaMemcpyDeviceToHost,
                             stream_));
  CUDA_CHECK(cudaStreamSynchronize(stream_));
  return loss;
}

}  // namespace basin::exec::gpu

namespace basin::exec {

std::unique_ptr<Backend> make_gpu_backend(const GpuOptions& options) {
  return std::make_unique<gpu::CudnnBackend>(options);
}

}  // namespace basin::exec
