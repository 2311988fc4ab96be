// The GPU backend's input stage (Backend::stage_input): a raw batch from the loader (decoded
// uint8 regions, crop rectangles, flips: data::LoaderOutput::raw) goes to the device in one
// asynchronous copy from pinned memory on the backend's stream, and kernels::input_stage_gpu
// crops, resamples, flips and normalizes it into the NHWC fp32 input tensor. So the CPU only
// decodes JPEGs; the kernel's arithmetic is the loader's float path's (kernels.h), the same
// pixels up to the bound tests/data/raw_loader_test.cc states.
//
// One pinned buffer: the host waits for the previous batch's copy to leave it before filling it
// again. That copy was queued ahead of the previous step's forward, so it is long done by then;
// the wait only matters if the host runs more than a step ahead, which it does not.
#include <basin/kernels.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <utility>

#include "../input_staging.h"
#include "gpu_backend.h"

namespace basin::exec::gpu {
namespace {

// Page-locked host memory (cudaMallocHost), so the copy from it is truly asynchronous.
class PinnedMemory {
 public:
  PinnedMemory() = default;
  explicit PinnedMemory(size_t bytes) : bytes_(bytes) { CUDA_CHECK(cudaMallocHost(&ptr_, std::max<size_t>(bytes, 1))); }
  PinnedMemory(PinnedMemory&& other) noexcept
      : ptr_(std::exchange(other.ptr_, nullptr)), bytes_(std::exchange(other.bytes_, 0)) {}
  PinnedMemory& operator=(PinnedMemory&& other) noexcept {
    std::swap(ptr_, other.ptr_);
    std::swap(bytes_, other.bytes_);
    return *this;
  }
  ~PinnedMemory() { cudaFreeHost(ptr_); }  // a destructor cannot throw
  std::uint8_t* get() const { return static_cast<std::uint8_t*>(ptr_); }
  size_t bytes() const { return bytes_; }

 private:
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

// An event without timing: marks when the upload has left the pinned buffer.
class Event {
 public:
  Event() { CUDA_CHECK(cudaEventCreateWithFlags(&e_, cudaEventDisableTiming)); }
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  ~Event() { cudaEventDestroy(e_); }
  operator cudaEvent_t() const { return e_; }

 private:
  cudaEvent_t e_ = nullptr;
};

}  // namespace

struct InputUpload {
  PinnedMemory host;    // the batch's bytes, then its descriptors
  DeviceMemory device;  // the same, on the device
  Event copied;
  bool pending = false;  // `copied` was recorded and may not have happened yet
};

void CudnnBackend::stage_input(const data::Batch& raw, const data::Normalization& norm, Tensor& dst) {
  exec::detail::check_raw_batch(raw, dst.desc);
  // The stage rounds once into the compute precision, as write_nchw rounds the float path's
  // pixels; precision_of refuses a tensor of another layout.
  const Precision precision = precision_of(dst);
  const size_t element = precision == Precision::fp32 ? sizeof(float) : 2;
  const std::vector<kernels::SourceImage> sources = exec::detail::source_images(raw);
  // Pixels, then the descriptors at an offset aligned for their doubles: one copy for both.
  const size_t pixel_bytes = raw.rgb.size();
  const size_t descriptors_at = (pixel_bytes + 15) / 16 * 16;
  const size_t bytes = descriptors_at + sources.size() * sizeof(kernels::SourceImage);
  if (!input_upload_) input_upload_ = std::make_shared<InputUpload>();
  InputUpload& u = *input_upload_;
  if (u.pending) CUDA_CHECK(cudaEventSynchronize(u.copied));
  u.pending = false;
  // A quarter to spare: regions vary from batch to batch.
  if (u.host.bytes() < bytes) {
    u.host = PinnedMemory();
    u.host = PinnedMemory(bytes + bytes / 4);
  }
  if (u.device.bytes() < bytes) {
    CUDA_CHECK(cudaStreamSynchronize(stream_));  // the last stage may still read the old one
    u.device = DeviceMemory();
    u.device = DeviceMemory(bytes + bytes / 4);
  }
  if (pixel_bytes > 0) std::memcpy(u.host.get(), raw.rgb.data(), pixel_bytes);
  if (!sources.empty())
    std::memcpy(u.host.get() + descriptors_at, sources.data(), sources.size() * sizeof(kernels::SourceImage));
  CUDA_CHECK(cudaMemcpyAsync(u.device.as<void>(), u.host.get(), bytes, cudaMemcpyHostToDevice, stream_));
  CUDA_CHECK(cudaEventRecord(u.copied, stream_));
  u.pending = true;
  const TensorDesc& d = dst.desc;
  const size_t per_image = static_cast<size_t>(d.c) * d.h * d.w;
  if (raw.size < d.n)  // a short last batch: the rest zero, as the float path pads
    CUDA_CHECK(cudaMemsetAsync(reinterpret_cast<std::uint8_t*>(dst.ptr()) + element * per_image * raw.size,
                               0, element * per_image * static_cast<size_t>(d.n - raw.size), stream_));
  const auto* device = u.device.as<std::uint8_t>();
  kernels::input_stage_gpu(device, reinterpret_cast<const kernels::SourceImage*>(device + descriptors_at),
                           raw.size, d.h, d.w, exec::detail::input_normalization(norm),
                           kernel_precision(precision), dst.ptr(), stream_);
}

}  // namespace basin::exec::gpu
