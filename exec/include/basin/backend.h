// basin exec backend: the operations a training step needs, behind one small interface.
//
// The executor's layers (exec.h) describe *what* to compute; a backend decides *how* and where:
// the CPU backend runs oneDNN, a GPU backend will run cuDNN/cuBLAS and basin's own kernels. The
// interface is an abstract class with one virtual per operation, each taking a plain descriptor
// struct and the layer's index `op`, which a backend uses as the key of whatever it keeps between
// calls (compiled primitives, weights reordered in forward for backward, saved batch statistics,
// max-pool workspaces). Same `op` with the same descriptor means "the same layer again".
//
// Activations are backend-owned Tensors in the backend's own memory layout (oneDNN's blocked
// nChw8c on AVX2, for example); write_nchw/read_nchw move data across that boundary. Parameters
// and their gradients are plain host-layout arrays (conv OIHW, fc [out][in], per-channel vectors)
// inside the executor's flat buffers, so a gradient bucket is a view into one array; the backend
// reorders weights internally when its kernels want another layout.
//
// Gradients: every backward overwrites its outputs (dx, dw, ...) except where a flag says
// "accumulate"; the executor sums the gradients of a tensor read by two layers (a residual
// block's input) with `add`, or, where the backend says its convolution adds into dx as cheaply
// as it writes it (accumulates_conv_dx), in the convolution's backward itself.
//
// Where parameters live: the executor's flat arrays (parameters, gradients, momentum, batch norm
// running statistics) are allocated by the backend with alloc_flat, so they sit where the
// backend's kernels read them: host memory for the CPU backend, device memory for a GPU one
// (on_device()). Every `float*` parameter, gradient and statistics pointer below points into
// such memory. Host code reads and writes those arrays only through flat_to_host/flat_from_host.
#pragma once

#include <basin/data.h>

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace basin::exec {

// Logical shape of an fp32 activation, NCHW; a 2-D tensor (the logits) has h = w = 1.
struct TensorDesc {
  int n = 0, c = 0, h = 1, w = 1;
  long long elements() const { return 1LL * n * c * h * w; }
  bool operator==(const TensorDesc&) const = default;
};

// Where a tensor's memory lives is the backend's choice; `plain` asks for row-major NCHW, which
// the network's input and its logits use so the data pipeline and the loss read them directly.
// A backend computing in bf16 or fp16 keeps the logits and their gradient (the plain tensors
// of H = W = 1) in fp32, which the loss reads; everything else is in its compute precision.
enum class Layout { native, plain };

// What activations and their gradients are stored in, and what convolutions read. Parameters,
// their gradients, momentum and batch norm statistics are fp32 in every precision.
enum class Precision { fp32, bf16, fp16 };
const char* precision_name(Precision p);  // "fp32", "bf16", "fp16"

struct Tensor {
  TensorDesc desc;
  Layout layout = Layout::native;
  // The backend's own code for the layout it picked, and for the element type where it stores
  // more than one (the GPU backend: NHWC fp32, bf16 or fp16; see its gpu_backend.h).
  int format = 0;
  // Freed with the backend's deleter. An opaque pointer to the backend's memory: it holds
  // 16-bit elements when the format says so; only the backend dereferences it.
  std::shared_ptr<float> data;
  long long capacity = 0;       // elements allocated (blocked layouts pad channels)
  float* ptr() const { return data.get(); }
};

struct ConvDesc {
  TensorDesc in, out;
  int kernel = 1, stride = 1, padding = 0;  // square windows; no bias, no groups (as ResNet)
};
struct BatchNormDesc {
  TensorDesc io;
  float epsilon = 1e-5f;  // torchvision's default
  // y = max(0, batchnorm(x)): the ReLU after it done in the same pass, and backward takes the
  // gradient of that output. Saves one pass over the activation each way.
  bool fused_relu = false;
};
enum class PoolKind { max, average };
struct PoolDesc {
  PoolKind kind = PoolKind::max;
  TensorDesc in, out;
  int kernel = 1, stride = 1, padding = 0;  // average pooling excludes padding
};
struct FcDesc {
  TensorDesc in, out;  // in: N x C x H x W flattened to N x (C*H*W); out: N x out x 1 x 1
};

// One SGD step over a whole flat parameter array (torch.optim.SGD's form, see kernels.h).
struct FlatSgdStep {
  float lr = 0, momentum = 0, weight_decay = 0;
  bool nesterov = false;
  // [begin, end) element ranges stepped without weight decay (batch norm and biases), sorted and
  // non-overlapping; the same list every step of a run, so a device backend uploads it once.
  std::vector<std::pair<long long, long long>> no_decay;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;

  // ----- Flat arrays (parameters, gradients, momentum, statistics); defaults are host memory.
  // True when alloc_flat and alloc return device memory that the host must not dereference.
  virtual bool on_device() const { return false; }
  // n zero-filled floats, freed when the last owner lets go.
  virtual std::shared_ptr<float> alloc_flat(long long n);
  virtual void flat_to_host(const float* flat, float* host, long long n);
  virtual void flat_from_host(const float* host, float* flat, long long n);
  // flat_to_host without waiting: starts copying n floats to `host` (alloc_host_staging memory)
  // after the work queued so far and returns the wait for that copy, which any thread may call,
  // once, before it reads `host`. `flat` must not change until then. A GPU backend copies on a
  // stream of its own, so the host goes on queueing work while the copy waits for the GPU to
  // produce the data. The default copies at once and returns a wait that does nothing.
  virtual std::function<void()> flat_to_host_async(const float* flat, float* host, long long n);
  // torch.nn.BatchNorm2d's running statistics from one training forward's batch statistics
  // (what batchnorm_forward_training wrote): mean <- (1 - momentum) mean + momentum batch_mean,
  // var <- (1 - momentum) var + momentum batch_var * count / (count - 1) (unbiased; count is the
  // N*H*W values per channel, and 1 leaves the variance uncorrected). All pointers flat memory.
  virtual void update_running_stats(int channels, double count, float momentum,
                                    const float* batch_mean, const float* batch_var,
                                    float* running_mean, float* running_var);
  // The SGD step over n floats of flat memory. The default runs the kernels' CPU step.
  virtual void sgd_step(float* weights, float* velocity, const float* grads, long long n,
                        const FlatSgdStep& step);
  // Dynamic loss scaling (loss_scale.h): grads[i] *= factor over n floats of flat memory;
  // returns whether every result is finite. The default runs the kernels' CPU pass.
  virtual bool unscale_gradients(float* grads, long long n, float factor);

  // What activations are stored and convolved in; the CPU backend is fp32 only.
  virtual Precision precision() const { return Precision::fp32; }
  // Called by Net before every forward with the flat parameter array: a backend that computes
  // in a lower precision casts its copy of the weights here, once per forward (the parameters
  // change only between steps), so every layer reads the copy. The default does nothing.
  virtual void prepare_weights(const float* /*params*/, long long /*n*/) {}

  // Gradient accumulation over micro-batches, in flat memory: dst[i] += src[i] (accumulate) and
  // dst[i] = src[i] (copy_flat), n floats, dst and src not overlapping. Ordered with the
  // backend's other work (a GPU backend runs them on its stream, so they see backward's results).
  virtual void accumulate(float* dst, const float* src, long long n);
  virtual void copy_flat(float* dst, const float* src, long long n);
  // Host memory that flat_to_host/flat_from_host copy fastest to and from, for gradient buckets
  // staged through the host for a host-side allreduce (Gloo): page-locked on a GPU backend, so
  // the copies run at the bus's speed without a bounce buffer. The default is plain memory.
  virtual std::shared_ptr<float> alloc_host_staging(long long n);

  virtual Tensor alloc(const TensorDesc& desc, Layout layout = Layout::native) = 0;
  // A tensor of `desc` and `layout` in `storage`'s memory (sharing it), laid out as alloc would,
  // starting `offset` elements (of storage's element type) in, or an empty Tensor where that
  // does not fit there. Its capacity is what remains of storage's from the offset. Lets Net hand
  // the memory of a dead activation or gradient to a gradient of another shape, as a framework's
  // caching allocator does, and put several later outputs in the memory of one no backward
  // reads. The default fits only storage's own shape and layout, at offset 0.
  virtual Tensor view(const Tensor& storage, const TensorDesc& desc, Layout layout,
                      long long offset);
  virtual void write_nchw(const float* src, Tensor& dst) = 0;  // src: desc.elements() floats
  virtual void read_nchw(const Tensor& src, float* dst) = 0;
  virtual void copy(const Tensor& src, Tensor& dst) = 0;  // same desc and layout
  // The network's input from a raw batch (data::LoaderOutput::raw: decoded uint8 regions, crop
  // rectangles, flips): crop, bilinear resample, flip and normalize with `norm` into `dst` (the
  // plain N x 3 x H x W input, H x W the batch's output size), the pixels the loader's float
  // mode would have written. Images past raw.size (a short last batch) are zeros, as the float
  // path pads. The default runs kernels::input_stage_cpu on the host and writes the result with
  // write_nchw; a GPU backend uploads the bytes and runs the stage on the device.
  virtual void stage_input(const data::Batch& raw, const data::Normalization& norm, Tensor& dst);

  // y = conv(x, w), w in OIHW.
  virtual void conv_forward(int op, const ConvDesc& d, const Tensor& x, const float* w,
                            Tensor& y) = 0;
  // dx (skipped when null: the stem needs none) and dw from dy; x and w as in forward. With
  // add_to_dx the input gradient is added to what dx holds.
  virtual void conv_backward(int op, const ConvDesc& d, const Tensor& x, const float* w,
                             const Tensor& dy, Tensor* dx, float* dw, bool add_to_dx) = 0;
  // Whether conv_backward's add_to_dx costs no more than writing dx (cuDNN blends into its
  // output): Net then sums a block input's gradient there, with no tensor and no pass for the
  // sum. The default, false, has Net sum with `add`.
  virtual bool accumulates_conv_dx() const { return false; }

  // Training: normalise with the batch's statistics, saved under `op` for backward, and written
  // (biased variance, as used) to batch_mean/batch_var so the caller can update running stats.
  // Eval: normalise with running_mean/running_var. gamma, beta, means and variances: C floats.
  virtual void batchnorm_forward_training(int op, const BatchNormDesc& d, const Tensor& x,
                                          const float* gamma, const float* beta, Tensor& y,
                                          float* batch_mean, float* batch_var) = 0;
  virtual void batchnorm_forward_eval(int op, const BatchNormDesc& d, const Tensor& x,
                                      const float* gamma, const float* beta,
                                      const float* running_mean, const float* running_var,
                                      Tensor& y) = 0;
  // Backward of the last training forward of `op`: dx, dgamma, dbeta. With d.fused_relu, dy is
  // the gradient of the ReLU's output, which the backend may mask in place (Net passes one that
  // nothing else holds), so no tensor of its size is needed for the batch norm's own dy.
  virtual void batchnorm_backward(int op, const BatchNormDesc& d, const Tensor& x,
                                  const float* gamma, Tensor& dy, Tensor& dx, float* dgamma,
                                  float* dbeta) = 0;

  virtual void relu_forward(int op, const Tensor& x, Tensor& y) = 0;
  // dx = dy where the forward's output y was positive; dx may be dy itself.
  virtual void relu_backward(int op, const Tensor& y, const Tensor& dy, Tensor& dx) = 0;

  virtual void pool_forward(int op, const PoolDesc& d, const Tensor& x, Tensor& y) = 0;
  virtual void pool_backward(int op, const PoolDesc& d, const Tensor& dy, Tensor& dx) = 0;

  // y = x W^T + b with W [out][in] row-major (torch.nn.Linear), b [out].
  virtual void fc_forward(int op, const FcDesc& d, const Tensor& x, const float* w, const float* b,
                          Tensor& y) = 0;
  virtual void fc_backward(int op, const FcDesc& d, const Tensor& x, const float* w,
                           const Tensor& dy, Tensor& dx, float* dw, float* db) = 0;

  // y = a + b (y may alias a or b).
  virtual void add(const Tensor& a, const Tensor& b, Tensor& y) = 0;
  // y = max(0, a + b): a residual sum and the ReLU after it (layer relu_op, whose backward then
  // runs as after relu_forward) in one pass. The default is add, then relu_forward in place.
  virtual void add_relu(int relu_op, const Tensor& a, const Tensor& b, Tensor& y);

  // Softmax cross-entropy of plain N x K logits against class labels (N ints in [0, K)):
  // returns sum_i -log softmax(logits_i)[label_i] / divisor and writes its gradient,
  // (softmax - onehot) / divisor x grad_scale, to dlogits. The divisor is the global batch when
  // ranks split a batch, so summed gradients equal the single-process gradient; grad_scale is
  // dynamic loss scaling's factor (1 without it), applied to the gradient only, never the loss.
  virtual double softmax_cross_entropy(const Tensor& logits, const int* labels, double divisor,
                                       Tensor& dlogits, double grad_scale = 1) = 0;
};

#if BASIN_HAVE_DNNL
// The oneDNN backend. `threads` sets OpenMP's thread count, which is process-wide (oneDNN on
// Debian runs on OpenMP); threads <= 0 keeps OpenMP's default (one per core).
std::unique_ptr<Backend> make_cpu_backend(int threads = 0);
#endif

#if BASIN_HAVE_CUDNN
// The GPU backend: cuDNN convolutions, batch norm and pooling and cuBLAS GEMMs on NHWC fp32,
// bf16 or fp16 activations, one CUDA stream, parameters in device memory (exec/src/gpu/).
struct GpuOptions {
  int device = 0;
  // TF32 tensor-core math for fp32 convolutions and GEMMs: faster on A100/H100, but with a
  // 10-bit mantissa, so results differ from the CPU's by ~1e-3. Off: plain fp32 FMA math.
  bool tf32 = false;
  // Only deterministic convolution algorithms (no atomics in backward filter): identical runs
  // give identical weights, as exact resume wants. Off: the fastest algorithm that fits.
  bool deterministic = false;
  // Batch norm's training passes through cuDNN's NHWC Ex functions in the persistent mode
  // (CUDNN_BATCHNORM_SPATIAL_PERSISTENT), the path PyTorch takes for channels_last training,
  // with the ReLU fused in where cuDNN offers it (fp16). Off: the plain spatial mode. Off by
  // default: cuDNN documents that the persistent mode may overflow (NaN/Inf) on some inputs,
  // and the mode is chosen by measurement (bench/exec_gpu_bench.cc runs both). Layers cuDNN
  // turns down fall back to the plain mode, each said once on stderr.
  bool persistent_batchnorm = false;
  // bf16/fp16 only: batch norm's plain-mode calls and pooling on fp32 copies of their tensors
  // from the start, as a layer runs them once cuDNN has refused its 16-bit type. For tests of
  // that fallback; it costs memory and traffic.
  bool fp32_copies = false;
  // The most workspace any one convolution algorithm may use: the algorithm searches get this
  // much, and after them only the most a chosen algorithm needs is kept.
  std::size_t workspace_bytes = std::size_t{256} << 20;
  // Activations, activation gradients and convolutions in bf16 or fp16 (tensor cores, fp32
  // accumulation), weights cast from the fp32 parameters once per forward; batch norm's
  // parameters and statistics, the logits, the loss and every flat array stay fp32. fp16 needs
  // dynamic loss scaling (LossScaleConfig) to keep small gradients from flushing to zero.
  Precision precision = Precision::fp32;
};
std::unique_ptr<Backend> make_gpu_backend(const GpuOptions& options = {});
// How many cuDNN calls, in this process so far, ran on fp32 copies of 16-bit tensors (after
// cuDNN refused their type, or under GpuOptions::fp32_copies): the tests' evidence that the way
// out ran.
long long fp32_copy_calls();
#endif

}  // namespace basin::exec
