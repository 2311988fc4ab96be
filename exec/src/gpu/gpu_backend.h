// The GPU backend's state, shared by its source files: device memory, streams and library
// handles as RAII types, tensors, elementwise operations, the loss and the flat arrays
// (gpu_backend.cc), element types (gpu_precision.cc), convolution and fully connected
// (gpu_conv_fc.cc), batch norm (gpu_batchnorm.cc), pooling (gpu_pool.cc), the input stage of
// raw batches (gpu_input_stage.cc).
//
// Layout: every activation is NHWC in device memory, the layout cuDNN's tensor-core convolutions
// want; a `plain` request is NHWC too, which is NCHW for the logits (H = W = 1), and
// write_nchw/read_nchw transpose on the device for the image.
//
// Precision (GpuOptions::precision): activations and their gradients are fp32, bf16 or fp16,
// recorded in Tensor::format (kNhwc, kNhwcBf16, kNhwcFp16), except the logits and their
// gradient, which stay fp32 for the loss (the fc's GEMM writes its fp32 accumulators straight
// into them). The flat arrays are fp32 in every precision: prepare_weights casts the parameters
// into one compute-precision copy per forward (weights_low_), which convolutions and the fc read;
// weight gradients come out of cuDNN in the compute precision (its legacy API wants the filter
// in the data's type) and are cast into the fp32 gradient array, as torch autocast's cast-back
// does; batch norm's gamma, beta and statistics are fp32 (cuDNN takes bf16/fp16 x and y with
// float parameters). Each
// layer (`op`) keeps its descriptors in a state struct built on first use and rebuilt only when
// the layer's descriptor changes; convolution algorithms are chosen once per shape and buffer
// alignment (algorithms_).
// Everything runs on one stream, in order; the host waits only where it reads a result (the
// loss, read_nchw, flat_to_host).
#pragma once

#include <basin/backend.h>
#include <basin/kernels.h>

#include <cuda_runtime.h>

#include <algorithm>
#include <array>
#include <functional>
#include <stdexcept>

#include <initializer_list>
#include <map>
#include <memory>
#include <string>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include "gpu_check.h"

namespace basin::exec::gpu {

// Tensor::format of the tensors this backend allocates: NHWC in each element type.
constexpr int kNhwc = 1, kNhwcBf16 = 2, kNhwcFp16 = 3;
int format_of(Precision p);
Precision precision_of(const Tensor& t);  // throws std::invalid_argument for another format
kernels::Precision kernel_precision(Precision p);
cudnnDataType_t cudnn_type(Precision p);
cudaDataType_t cuda_type(Precision p);
size_t element_bytes(Precision p);

// cudaMalloc'ed bytes, freed by the destructor; move-only.
class DeviceMemory {
 public:
  DeviceMemory() = default;
  explicit DeviceMemory(size_t bytes);
  DeviceMemory(DeviceMemory&& other) noexcept
      : ptr_(std::exchange(other.ptr_, nullptr)), bytes_(std::exchange(other.bytes_, 0)) {}
  DeviceMemory& operator=(DeviceMemory&& other) noexcept {
    std::swap(ptr_, other.ptr_);
    std::swap(bytes_, other.bytes_);
    return *this;
  }
  ~DeviceMemory() { cudaFree(ptr_); }  // a destructor cannot throw; a failure here is moot
  template <class T = float>
  T* as() const { return static_cast<T*>(ptr_); }
  size_t bytes() const { return bytes_; }

 private:
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

// The stream and the library handles, each destroyed with its owner (handles before the stream
// they run on: members are destroyed in reverse order).
struct StreamDeleter {
  void operator()(cudaStream_t s) const { cudaStreamDestroy(s); }
};
struct CudnnDeleter {
  void operator()(cudnnHandle_t h) const { cudnnDestroy(h); }
};
struct CublasDeleter {
  void operator()(cublasHandle_t h) const { cublasDestroy(h); }
};
using Stream = std::unique_ptr<std::remove_pointer_t<cudaStream_t>, StreamDeleter>;
using CudnnHandle = std::unique_ptr<std::remove_pointer_t<cudnnHandle_t>, CudnnDeleter>;
using CublasHandle = std::unique_ptr<std::remove_pointer_t<cublasHandle_t>, CublasDeleter>;

// A cuDNN descriptor created with its owner and destroyed with it; converts to the raw handle.
template <class T, cudnnStatus_t (*Create)(T*), cudnnStatus_t (*Destroy)(T)>
class Descriptor {
 public:
  Descriptor() { CUDNN_CHECK(Create(&d_)); }
  Descriptor(Descriptor&& other) noexcept : d_(std::exchange(other.d_, nullptr)) {}
  Descriptor& operator=(Descriptor&& other) noexcept {
    std::swap(d_, other.d_);
    return *this;
  }
  ~Descriptor() {
    if (d_) Destroy(d_);
  }
  operator T() const { return d_; }

 private:
  T d_ = nullptr;
};
using TensorDescriptor = Descriptor<cudnnTensorDescriptor_t, cudnnCreateTensorDescriptor,
                                    cudnnDestroyTensorDescriptor>;
using FilterDescriptor = Descriptor<cudnnFilterDescriptor_t, cudnnCreateFilterDescriptor,
                                    cudnnDestroyFilterDescriptor>;
using ConvolutionDescriptor =
    Descriptor<cudnnConvolutionDescriptor_t, cudnnCreateConvolutionDescriptor,
               cudnnDestroyConvolutionDescriptor>;
using PoolingDescriptor = Descriptor<cudnnPoolingDescriptor_t, cudnnCreatePoolingDescriptor,
                                     cudnnDestroyPoolingDescriptor>;
using ActivationDescriptor =
    Descriptor<cudnnActivationDescriptor_t, cudnnCreateActivationDescriptor,
               cudnnDestroyActivationDescriptor>;

// 4-D descriptors of a shape in NHWC (activations, OHWI weights) and NCHW (OIHW weights,
// the image as the host writes it, a per-channel vector as 1 x C x 1 x 1).
TensorDescriptor nhwc_descriptor(const TensorDesc& d, Precision p = Precision::fp32);
TensorDescriptor nchw_descriptor(const TensorDesc& d, Precision p = Precision::fp32);

// One algorithm cuDNN's search found usable: the math type to run it with and its workspace.
template <class Algo>
struct FoundAlgorithm {
  Algo algo;
  cudnnMathType_t math;
  size_t memory;
};

// The algorithms cuDNN's search found usable for one convolution shape, per direction, fastest
// first, found the first time that direction runs (backward data never runs for the stem). The
// first runs; should it fail at run time, the next takes its place (run_found in gpu_conv_fc.cc).
struct ConvAlgorithms {
  std::vector<FoundAlgorithm<cudnnConvolutionFwdAlgo_t>> fwd;
  std::vector<FoundAlgorithm<cudnnConvolutionBwdDataAlgo_t>> bwd_data;
  std::vector<FoundAlgorithm<cudnnConvolutionBwdFilterAlgo_t>> bwd_filter;
};

struct ConvState {
  ConvDesc desc;
  TensorDescriptor x, y;
  FilterDescriptor w;                // KRSC (cuDNN's NHWC filter format)
  ConvolutionDescriptor conv;
  TensorDescriptor w_oihw, w_ohwi;   // the weights as 4-D tensors, for the layout transform
  // In the compute precision. w_ohwi_data: kernels above 1x1, and 1x1 kernels whose weights
  // are not 16-byte aligned in the flat array (OIHW is OHWI there; an aligned copy).
  // dw_data: cuDNN's weight gradient (OHWI) before it becomes OIHW fp32; in fp32 kernels
  // above 1x1 and misaligned 1x1 ones, in bf16/fp16 always (cast into the fp32 gradients).
  DeviceMemory w_ohwi_data, dw_data;
  std::string shape;  // the key of this shape's algorithms in CudnnBackend::algorithms_
};

struct FcState {
  FcDesc desc;
  TensorDescriptor y, bias;          // N x out x 1 x 1 and 1 x out x 1 x 1
  TensorDescriptor in_nhwc, in_nchw;  // the input, when H x W > 1 (torch flattens NCHW)
};

struct BatchNormState {
  BatchNormDesc desc;
  TensorDescriptor x;      // x, y, dy and dx alike
  TensorDescriptor stats;  // gamma, beta, means, variances: 1 x C x 1 x 1
  // Training through cuDNN's Ex functions in the persistent mode (GpuOptions::
  // persistent_batchnorm) with `ops`: the plain batch norm, or with the ReLU fused where cuDNN
  // has that (fp16 NHWC). Cleared, for good, the first time cuDNN says NOT_SUPPORTED (or
  // BAD_PARAM) for the layer; the layer then runs the legacy spatial mode.
  bool persistent = false;
  cudnnBatchNormOps_t ops = CUDNN_BATCHNORM_OPS_BN;
  // The legacy calls on fp32 copies, for good, once cuDNN refused the 16-bit type (call_widening).
  bool widened = false;
  TensorDescriptor x32;  // x's shape in fp32, for that
  DeviceMemory reserve;  // the Ex forward's reserve space, handed to the Ex backward
  size_t backward_workspace_bytes = 0;  // what the Ex backward asked for (queried in forward)
  // 16-byte-aligned copies of gamma, beta, dgamma and dbeta (4 x `padded_c` floats) for the
  // persistent kernels, when the flat arrays put the layer's vectors off that alignment.
  DeviceMemory aligned;
  long long padded_c = 0;
  const float* beta_used = nullptr;  // the beta the last training forward read (Ex backward wants it)
  DeviceMemory saved_mean, saved_inv_std;  // of the last training forward, for backward
  Tensor output;  // that forward's y: with a fused ReLU, backward masks dy where y was 0
};

struct PoolState {
  PoolDesc desc;
  TensorDescriptor x, y;
  PoolingDescriptor pool;
  Tensor input, output;  // of the last forward: cuDNN's max-pool backward rereads both
  bool widened = false;     // on fp32 copies, once cuDNN refused the 16-bit type (call_widening)
  TensorDescriptor x32, y32;  // the shapes in fp32, for that
};

// A cuDNN call's name and the layer it runs for, made into text ("cudnnPoolingForward (pooling
// layer 3, 256x64x112x112)") only for an error or a notice: these go with every layer call.
struct LayerCall {
  const char* call;
  const char* kind;
  int op;
  TensorDesc desc;
  std::string text() const;
};

// A tensor call_widening reads or writes: its memory and elements.
template <class T>
struct WideningBuffer {
  T* ptr;
  size_t elements;
};
// The buffers a widening call passes its cuDNN call, in order: at most 3 read, 1 written.
using WideningIns = std::array<const void*, 3>;
using WideningOuts = std::array<void*, 1>;

struct InputUpload;  // stage_input's pinned and device buffers (gpu_input_stage.cc)

class CudnnBackend final : public Backend {
 public:
  explicit CudnnBackend(const GpuOptions& options);
  std::string name() const override;

  bool on_device() const override { return true; }
  Precision precision() const override { return options_.precision; }
  void prepare_weights(const float* params, long long n) override;
  bool unscale_gradients(float* grads, long long n, float factor) override;
  std::shared_ptr<float> alloc_flat(long long n) override;
  void flat_to_host(const float* flat, float* host, long long n) override;
  void flat_from_host(const float* host, float* flat, long long n) override;
  void update_running_stats(int channels, double count, float momentum, const float* batch_mean,
                            const float* batch_var, float* running_mean,
                            float* running_var) override;
  void sgd_step(float* weights, float* velocity, const float* grads, long long n,
                const FlatSgdStep& step) override;
  // Gradient accumulation and pinned staging for data parallelism (gpu_flat_ops.cc).
  void accumulate(float* dst, const float* src, long long n) override;
  void copy_flat(float* dst, const float* src, long long n) override;
  std::shared_ptr<float> alloc_host_staging(long long n) override;
  std::function<void()> flat_to_host_async(const float* flat, float* host, long long n) override;
  // The stream every operation runs on, for NCCL's communication stream to order itself after
  // (nccl_transport.cc records events on it). Not part of Backend: only GPU code needs it.
  cudaStream_t stream() const { return stream_; }
  int device() const { return options_.device; }

  Tensor alloc(const TensorDesc& desc, Layout layout) override;
  Tensor view(const Tensor& storage, const TensorDesc& desc, Layout layout,
              long long offset) override;
  void write_nchw(const float* src, Tensor& dst) override;
  void read_nchw(const Tensor& src, float* dst) override;
  void copy(const Tensor& src, Tensor& dst) override;
  // Uploads a raw batch and runs kernels::input_stage_gpu into the NHWC input (gpu_input_stage.cc).
  void stage_input(const data::Batch& raw, const data::Normalization& norm, Tensor& dst) override;

  void conv_forward(int op, const ConvDesc& d, const Tensor& x, const float* w, Tensor& y) override;
  void conv_backward(int op, const ConvDesc& d, const Tensor& x, const float* w, const Tensor& dy,
                     Tensor* dx, float* dw, bool add_to_dx) override;
  bool accumulates_conv_dx() const override { return true; }
  void batchnorm_forward_training(int op, const BatchNormDesc& d, const Tensor& x,
                                  const float* gamma, const float* beta, Tensor& y,
                                  float* batch_mean, float* batch_var) override;
  void batchnorm_forward_eval(int op, const BatchNormDesc& d, const Tensor& x, const float* gamma,
                              const float* beta, const float* running_mean,
                              const float* running_var, Tensor& y) override;
  void batchnorm_backward(int op, const BatchNormDesc& d, const Tensor& x, const float* gamma,
                          Tensor& dy, Tensor& dx, float* dgamma, float* dbeta) override;
  void relu_forward(int op, const Tensor& x, Tensor& y) override;
  void relu_backward(int op, const Tensor& y, const Tensor& dy, Tensor& dx) override;
  void pool_forward(int op, const PoolDesc& d, const Tensor& x, Tensor& y) override;
  void pool_backward(int op, const PoolDesc& d, const Tensor& dy, Tensor& dx) override;
  void fc_forward(int op, const FcDesc& d, const Tensor& x, const float* w, const float* b,
                  Tensor& y) override;
  void fc_backward(int op, const FcDesc& d, const Tensor& x, const float* w, const Tensor& dy,
                   Tensor& dx, float* dw, float* db) override;
  void add(const Tensor& a, const Tensor& b, Tensor& y) override;
  void add_relu(int relu_op, const Tensor& a, const Tensor& b, Tensor& y) override;
  double softmax_cross_entropy(const Tensor& logits, const int* labels, double divisor,
                               Tensor& dlogits, double grad_scale) override;

 private:
  // Device scratch of at least `floats` floats (or `bytes`); independent slots, so one
  // operation can hold several. Contents live until the next call for the same slot. Slots 0
  // and 1: staging at the host boundary and the fc's transposes; 2: weights cast on the fly;
  // 3 and 4: weight and fc gradients in the compute precision; 5: batch norm's Ex workspace;
  // 6 to 9: call_widening's fp32 copies.
  Precision precision_for(const TensorDesc& desc, Layout layout) const;  // what alloc stores it in
  float* scratch(int slot, size_t floats);
  void* scratch_bytes(int slot, size_t bytes);
  // Copies between two descriptions of the same shape (layout changes), on the stream.
  void transform(const TensorDescriptor& from_desc, const void* from,
                 const TensorDescriptor& to_desc, void* to);
  // `count` weights at `w` (fp32, flat memory) in the compute precision: a view into the
  // copy prepare_weights made when `w` lies in that forward's parameter array, else cast now
  // into scratch slot 2 (a layer called directly, as the tests do).
  const void* low_weights(const float* w, long long count);
  // Marks the copy stale: anything that may write the parameters or reuse their memory (a flat
  // upload, the SGD step, a new flat array) calls it, so a layer never reads an old copy; the
  // next Net::forward makes a new one.
  void forget_weights_copy();
  // Convolution workspace: searches get options_.workspace_bytes; once a forward starts after
  // them, shrink_workspace keeps only workspace_needed_, the most a chosen algorithm asked for.
  // Runs pass workspace_ and its size.
  void* search_workspace();
  void shrink_workspace();
  // Runs `run(found.front())`; should the chosen algorithm fail at run time, the next one the
  // search found takes its place for good (the workspace grown to it), said on stderr. Not
  // where the call adds into its output (`may_retry` false): a failed attempt may have added.
  template <class Algo, class Run>
  void run_found(std::vector<FoundAlgorithm<Algo>>& found, bool may_retry, const LayerCall& what, Run run);

  ConvState& conv_state(int op, const ConvDesc& d, const Tensor& x, const Tensor& y);
  // The weights in the layout and precision the convolution reads (OHWI), from fp32 OIHW.
  const void* conv_weights(ConvState& s, const float* w_oihw);
  // The algorithms found for this shape with buffers aligned as `buffers` (the pointers one
  // direction passes to cuDNN): an algorithm found on aligned buffers may need that alignment.
  ConvAlgorithms& conv_algorithms(const ConvState& s, std::initializer_list<const void*> buffers);
  void find_forward(ConvState& s, ConvAlgorithms& a, const void* x, const void* w, void* y);
  void find_backward_data(ConvState& s, ConvAlgorithms& a, const void* w, const void* dy,
                          void* dx);
  void find_backward_filter(ConvState& s, ConvAlgorithms& a, const void* x, const void* dy,
                            void* dw);
  FcState& fc_state(int op, const FcDesc& d, const Tensor& x, const Tensor& y);
  BatchNormState& bn_state(int op, const BatchNormDesc& d, const Tensor& x);
  // The persistent mode's pieces (gpu_batchnorm.cc): the Ex forward, returning cuDNN's status so
  // NOT_SUPPORTED can fall back; whether the ReLU ran inside it; and the layer's aligned copies
  // of its per-channel vectors (slots 0-3: gamma, beta, dgamma or batch mean, dbeta or variance).
  cudnnStatus_t bn_forward_persistent(BatchNormState& s, const Tensor& x, const float* gamma,
                                      const float* beta, Tensor& y, float* batch_mean,
                                      float* batch_var);
  bool bn_relu_fused(const BatchNormState& s) const;
  void* bn_workspace(size_t bytes);  // scratch slot 5, never null
  const float* bn_aligned_input(BatchNormState& s, const float* v, int slot);
  float* bn_aligned_slot(BatchNormState& s, int slot);
  PoolState& pool_state(int op, const PoolDesc& d, const Tensor& x, const Tensor& y);
  void relu_in_place(Tensor& y);  // a batch norm's fused ReLU
  // `run(fp32, ins, outs)` on the tensors as they are or, once cuDNN has refused their 16-bit type
  // for this layer (`widened`, then set for good and said on stderr), on fp32 copies: `in`
  // widened into scratch, `out` computed in scratch and rounded back (gpu_widening.cc). `run`
  // gets fp32 true for the copies, to pick fp32 descriptors. Inline, so that the usual path (no
  // refusal) costs the call alone.
  static constexpr int kFirstWideningSlot = 6;
  template <class Run>
  void call_widening(bool& widened, const LayerCall& what, Precision precision,
                     std::initializer_list<WideningBuffer<const void>> in,
                     std::initializer_list<WideningBuffer<void>> out, Run run) {
    if (in.size() > 3 || out.size() > 1) throw std::logic_error("call_widening: at most 3 inputs and 1 output");
    WideningIns ins{};
    WideningOuts outs{};
    if (!widened) {
      std::transform(in.begin(), in.end(), ins.begin(), [](const auto& b) { return b.ptr; });
      std::transform(out.begin(), out.end(), outs.begin(), [](const auto& b) { return b.ptr; });
      const cudnnStatus_t status = run(false, ins, outs);
      if (status == CUDNN_STATUS_SUCCESS) return;
      start_widening(widened, status, what, precision, in, out);
    }
    widen_inputs(precision, in, ins, outs, out);
    if (const cudnnStatus_t status = run(true, ins, outs); status != CUDNN_STATUS_SUCCESS)
      detail::cudnn_fail(status, (what.text() + " on fp32 copies").c_str(), __FILE__, __LINE__);
    narrow_outputs(precision, out, outs);
  }
  // call_widening's slow path (gpu_widening.cc): throws unless cuDNN refused the 16-bit type,
  // else says so and sets `widened`; casts `in` into scratch and points `outs` at scratch; rounds
  // the scratch outputs into `out` and counts the call.
  void start_widening(bool& widened, cudnnStatus_t status, const LayerCall& what, Precision precision,
                      std::initializer_list<WideningBuffer<const void>> in,
                      std::initializer_list<WideningBuffer<void>> out);
  void widen_inputs(Precision precision, std::initializer_list<WideningBuffer<const void>> in, WideningIns& ins,
                    WideningOuts& outs, std::initializer_list<WideningBuffer<void>> out);
  void narrow_outputs(Precision precision, std::initializer_list<WideningBuffer<void>> out, const WideningOuts& outs);

  GpuOptions options_;
  Stream stream_owner_;
  CudnnHandle cudnn_owner_;
  CublasHandle cublas_owner_;
  cudaStream_t stream_ = nullptr;  // the owners' raw handles, for the many calls that take them
  cudnnHandle_t cudnn_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
  Stream copy_stream_;  // flat_to_host_async's copies; created at the first one
  std::string device_name_;
  DeviceMemory workspace_;
  size_t workspace_needed_ = 0;
  bool searched_ = false;  // a search ran since the last shrink
  DeviceMemory scratch_[10];
  // prepare_weights' copy of the parameter array in the compute precision (bf16/fp16 only),
  // and which array it copies.
  DeviceMemory weights_low_;
  const float* weights_base_ = nullptr;
  long long weights_count_ = 0;
  DeviceMemory nonfinite_;  // unscale_gradients' flag
  DeviceMemory labels_, row_loss_, mean_loss_;
  DeviceMemory no_decay_;  // the SGD step's ranges as kernels::FlatRange, uploaded once
  std::vector<std::pair<long long, long long>> no_decay_uploaded_;
  bool no_decay_ready_ = false;
  ActivationDescriptor relu_;
  std::map<std::string, ConvAlgorithms> algorithms_;  // by convolution shape and alignment
  std::unordered_map<int, ConvState> convs_;
  std::unordered_map<int, FcState> fcs_;
  std::unordered_map<int, BatchNormState> bns_;
  std::unordered_map<int, PoolState> pools_;
  std::shared_ptr<InputUpload> input_upload_;  // made at the first stage_input
};

}  // namespace basin::exec::gpu
