// basin kernels: the numeric building blocks basin runs itself, each as a CPU reference and,
// where CUDA was found at build time, a GPU version that tests compare against the reference.
//
// Conventions shared by every kernel here:
//   - *_cpu functions take host pointers and are the definition; *_gpu functions take device
//     pointers, run on `stream` (a cudaStream_t passed as void* so this header needs no CUDA
//     headers) and return without synchronizing.
//   - bf16 and fp16 values are stored as their 16 bit patterns in uint16_t, for the same reason.
//   - Invalid arguments that the host can see (negative sizes, a non-positive normalizer, badly
//     ordered ranges) throw std::invalid_argument from both versions, before any launch.
//   - This header is also compiled by nvcc as C++17, so it avoids C++20-only library types.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace basin::kernels {

// ---------------------------------------------------------------------------------------------
// Precisions and casts
// ---------------------------------------------------------------------------------------------

enum class Precision { fp32, bf16, fp16 };

// Bytes per element of a precision: 4, 2, 2.
size_t bytes_per_element(Precision p);

// Round-to-nearest-even conversions, bit-identical to CUDA's __float2bfloat16_rn and
// __float2half_rn for every input that is not NaN. A NaN becomes the canonical quiet NaN 0x7FFF
// (sign dropped), as the host paths of cuda_bf16.hpp / cuda_fp16.hpp do. fp32 subnormals are
// kept (no flush to zero); fp16 overflow rounds to infinity from 65520 up, as IEEE says.
std::uint16_t float_to_bf16_bits(float x);
std::uint16_t float_to_fp16_bits(float x);
// Exact widenings (every bf16 and fp16 value is an fp32 value); a NaN keeps its payload.
float bf16_bits_to_float(std::uint16_t b);
float fp16_bits_to_float(std::uint16_t h);

// Converts n elements from one precision to another (fp32 <-> bf16, fp32 <-> fp16; bf16 <-> fp16
// goes through fp32, which is exact, so it is still one rounding; same precision copies).
void cast_cpu(const void* src, Precision from, void* dst, Precision to, size_t n);

// n images of c channels x hw pixels from NCHW fp32 into NHWC of precision `to`, one rounding:
// how floats from the host become a GPU's activations in one pass.
void nchw_to_nhwc_cpu(const float* src, void* dst, Precision to, int n, int c, int hw);

// A 4-d tensor's elements between two layouts of the same dims: element [a][b][c][d] is at
// a*strides[0] + b*strides[1] + c*strides[2] + d*strides[3] elements from the start (NCHW and
// NHWC, OIHW and OHWI are four such stride sets over the same dims).
struct Layout4d {
  int dims[4] = {0, 0, 0, 0};
  long long src_strides[4] = {0, 0, 0, 0}, dst_strides[4] = {0, 0, 0, 0};
};
// Throws std::invalid_argument for elements other than 2 or 4 bytes, or negative dims or strides.
void check_layout(const Layout4d& layout, size_t element_bytes);
// Copies every element of `src` at the source strides to `dst` at the destination strides,
// bytes unchanged (no conversion: exact in any precision). src and dst must not overlap.
void relayout_cpu(const void* src, void* dst, size_t element_bytes, const Layout4d& layout);

// ---------------------------------------------------------------------------------------------
// SGD
// ---------------------------------------------------------------------------------------------

// SGD with momentum and weight decay in PyTorch's form (torch.optim.SGD, dampening 0):
//   d <- g + weight_decay * w;   v <- momentum * v + d;
//   w <- w - lr * v                    (heavy ball), or
//   w <- w - lr * (d + momentum * v)   (Nesterov, Sutskever et al. 2013 as torch writes it).
// The learning rate multiplies the velocity at use, not when it is accumulated, so a change of
// lr needs no "momentum correction": this is Goyal et al. 2017's eq. 10 form, which they show
// equals eq. 9 with the correction applied.
struct SgdParams {
  float lr = 0.1f;
  float momentum = 0.9f;
  float weight_decay = 1e-4f;
  bool nesterov = false;
};

// One tensor's step (exec calls it tensor by tensor, passing weight_decay 0 where excluded).
void sgd_momentum_step_cpu(float* weights, float* velocity, const float* grads, size_t n,
                           const SgdParams& p);

// A [begin, end) range of elements of the flat parameter buffer.
struct FlatRange {
  size_t begin = 0;
  size_t end = 0;
};

// Throws std::invalid_argument unless the ranges are sorted, non-overlapping (touching is fine),
// non-empty and inside [0, n). The GPU step cannot check device-resident ranges, so callers
// check them here once, before uploading.
void check_flat_ranges(const FlatRange* ranges, size_t count, size_t n);

// The step over the whole flat buffer (every parameter tensor back to back) in one pass:
// elements inside one of the `no_decay` ranges (batch norm gamma/beta and biases, which Goyal et
// al. leave undecayed) step with weight decay 0, all others with p.weight_decay. The result is
// exactly that of calling sgd_momentum_step_cpu tensor by tensor with decay switched per tensor.
// p.lr is the schedule's rate for this step (exec::learning_rate).
void sgd_flat_step_cpu(float* weights, float* velocity, const float* grads, size_t n,
                       const SgdParams& p, const FlatRange* no_decay, size_t no_decay_count);

// ---------------------------------------------------------------------------------------------
// Softmax cross-entropy over fp32 logits [rows x classes], row-major, labels in [0, classes)
// ---------------------------------------------------------------------------------------------
//
// Per row: loss = logsumexp(x) - x[label], computed as (max - x[label]) + log(sum exp(x - max))
// so no exp overflows. The mean is sum(row_loss) / normalizer: pass the global batch so that
// ranks' partial means add up (allreduce-sum) to the global one. A label outside [0, classes)
// makes that row's loss, and its gradient row, NaN, so a bad label is loud, never a stray read.
// The CPU reference accumulates in double; the GPU version in fp32 with fixed-order reductions,
// so it is deterministic run to run.

// row_loss: rows floats (required); mean_loss: one float.
void softmax_xent_forward_cpu(const float* logits, const std::int32_t* labels, int rows,
                              int classes, float normalizer, float* row_loss, float* mean_loss);
// dlogits = (softmax(x) - onehot(label)) / normalizer, the gradient of the mean loss. dlogits may
// be the logits buffer itself (in place).
void softmax_xent_backward_cpu(const float* logits, const std::int32_t* labels, int rows,
                               int classes, float normalizer, float* dlogits);

// ---------------------------------------------------------------------------------------------
// Residual add + ReLU, in any storage precision (arithmetic in fp32, one rounding at the store)
// ---------------------------------------------------------------------------------------------
//
// Forward: y = relu(a + b). A NaN sum stays NaN (relu is written `s < 0 ? 0 : s`).
// Backward: dx = y > 0 ? dy : 0, the gradient for both a and b (the add copies it to each
// branch), with the mask taken from the saved output y so the inputs need not be kept.
// Both are bit-identical between CPU and GPU: one IEEE add, one selection, one rounding.
void residual_add_relu_cpu(const void* a, const void* b, void* y, size_t n, Precision p);
void residual_add_relu_backward_cpu(const void* y, const void* dy, void* dx, size_t n,
                                    Precision p);
// The two halves on their own, for backends whose library calls do not take bf16 or fp16:
// y = a + b (a residual sum, or a gradient summed into another; y may alias a or b) and
// y = relu(x) (y may alias x), with the same arithmetic and NaN rule as above.
void add_cpu(const void* a, const void* b, void* y, size_t n, Precision p);
void relu_cpu(const void* x, void* y, size_t n, Precision p);

// ---------------------------------------------------------------------------------------------
// Dynamic loss scaling: unscale the fp32 gradients and check them in one pass
// ---------------------------------------------------------------------------------------------
//
// grads[i] *= factor (1 / loss scale: one fp32 multiply, exact for a power-of-two scale unless
// the result is subnormal) and reports whether every result is finite. Checking the results
// rather than the inputs also catches a finite gradient that the unscale itself overflows
// (factor > 1). The gradients are overwritten either way: a step that is not finite is skipped.
// Returns true when all n results are finite.
bool unscale_check_finite_cpu(float* grads, size_t n, float factor);

// ---------------------------------------------------------------------------------------------
// Input stage: decoded uint8 images -> cropped, resized, flipped, normalized NHWC batch
// ---------------------------------------------------------------------------------------------
//
// The CPU only decodes JPEGs; the crop, resize, flip and normalization happen here. The sampling
// is basin's own (the data layer's bilinear resampler, data/src), so the GPU stage produces the
// pixels the CPU data path does, laid out NHWC instead of CHW:
//   - output pixel i of n along an axis samples the source at s = crop_start + (i + 0.5) *
//     crop_extent / n - 0.5 (pixel centers, "align_corners=false"), computed in double;
//   - the two taps are floor(s) and floor(s) + 1, each clamped to the image, and the weight of
//     the second is s - floor(s), so samples past the edge repeat the edge pixel;
//   - the vertical blend (1 - wy) * top + wy * bottom comes first, then the horizontal
//     left + (right - left) * wx, then value * (1 / (255 std)) - mean / std, all in fp32;
//   - a flipped image writes output column out_w - 1 - x from sample x (flip after the crop, as
//     RandomResizedCrop then RandomHorizontalFlip do).
// The result is rounded once to the output precision.

// One source image in the batch's packed pixel buffer: RGB, 3 bytes per pixel, rows of width*3
// bytes back to back, starting `offset` bytes into the buffer.
struct SourceImage {
  size_t offset = 0;
  int width = 0;
  int height = 0;
  // The crop rectangle in source pixels (fractional allowed, as data::CropBox).
  double crop_x = 0;
  double crop_y = 0;
  double crop_width = 0;
  double crop_height = 0;
  bool flip = false;  // horizontal
};

// Per channel (R, G, B) of x / 255; the defaults are ImageNet's.
struct InputNormalization {
  float mean[3] = {0.485f, 0.456f, 0.406f};
  float std[3] = {0.229f, 0.224f, 0.225f};
};

// Throws std::invalid_argument for an empty image, an empty crop or a non-finite crop. The GPU
// stage reads device-resident descriptors it cannot check, so callers check them here.
void check_source_images(const SourceImage* images, int batch);

// out: batch x out_h x out_w x 3 elements of `out_precision`.
void input_stage_cpu(const std::uint8_t* pixels, const SourceImage* images, int batch, int out_h,
                     int out_w, const InputNormalization& norm, Precision out_precision,
                     void* out);

#ifdef BASIN_HAVE_CUDA
// ---------------------------------------------------------------------------------------------
// GPU versions: device pointers, asynchronous on `stream`.
// ---------------------------------------------------------------------------------------------

// Number of CUDA devices usable by this process; 0 when there is no driver or no device.
int cuda_device_count();
// Why cuda_device_count() is 0: CUDA's error name and string ("cudaErrorNoDevice: no
// CUDA-capable device is detected"); empty where CUDA found devices.
std::string cuda_device_error();
// CUDA's name of device `device` ("NVIDIA H100 80GB HBM3"), in CUDA's numbering (the one
// --gpu and the GPU backend use); empty where there is no such device.
std::string cuda_device_name(int device);

void cast_gpu(const void* src, Precision from, void* dst, Precision to, size_t n,
              void* stream = nullptr);
void nchw_to_nhwc_gpu(const float* src, void* dst, Precision to, int n, int c, int hw,
                      void* stream = nullptr);
void relayout_gpu(const void* src, void* dst, size_t element_bytes, const Layout4d& layout,
                  void* stream = nullptr);

void sgd_momentum_step_gpu(float* weights, float* velocity, const float* grads, size_t n,
                           const SgdParams& p, void* stream = nullptr);
// no_decay: a device array of no_decay_count ranges, checked with check_flat_ranges before it
// was uploaded (the parameter layout is fixed for a run, so once at setup is enough).
void sgd_flat_step_gpu(float* weights, float* velocity, const float* grads, size_t n,
                       const SgdParams& p, const FlatRange* no_decay, size_t no_decay_count,
                       void* stream = nullptr);

// row_loss: rows floats of device scratch; mean_loss: one float in device memory.
void softmax_xent_forward_gpu(const float* logits, const std::int32_t* labels, int rows,
                              int classes, float normalizer, float* row_loss, float* mean_loss,
                              void* stream = nullptr);
void softmax_xent_backward_gpu(const float* logits, const std::int32_t* labels, int rows,
                               int classes, float normalizer, float* dlogits,
                               void* stream = nullptr);

void residual_add_relu_gpu(const void* a, const void* b, void* y, size_t n, Precision p,
                           void* stream = nullptr);
void residual_add_relu_backward_gpu(const void* y, const void* dy, void* dx, size_t n,
                                    Precision p, void* stream = nullptr);
void add_gpu(const void* a, const void* b, void* y, size_t n, Precision p, void* stream = nullptr);
void relu_gpu(const void* x, void* y, size_t n, Precision p, void* stream = nullptr);

// found_nonfinite: one device uint32 that the caller zeroes first; set to 1 when any result is
// not finite (never cleared), so the host reads one word instead of the array.
void unscale_check_finite_gpu(float* grads, size_t n, float factor,
                              std::uint32_t* found_nonfinite, void* stream = nullptr);

// pixels and images are device pointers (images checked with check_source_images first).
void input_stage_gpu(const std::uint8_t* pixels, const SourceImage* images, int batch, int out_h,
                     int out_w, const InputNormalization& norm, Precision out_precision,
                     void* out, void* stream = nullptr);
#endif

}  // namespace basin::kernels
