// The GPU backend's flat-array operations for data parallelism: micro-batch gradient accumulation
// (dst += src with cuBLAS's axpy, a copy with cudaMemcpyAsync), both on the backend's stream so
// they follow the backward that wrote src, page-locked host memory for buckets staged through
// the host to Gloo (cudaMemcpy from pinned memory needs no bounce buffer), and the asynchronous
// copy of a bucket to it: on a copy stream that waits for an event on the compute stream, so
// neither the host nor the compute stream stops for it, and the Gloo reducer's thread waits
// for the copy's own event before it sends the bucket.
// Kept apart from gpu_backend.cc so that file stays about the layers.
#include <algorithm>
#include <climits>
#include <stdexcept>

#include "gpu_backend.h"

namespace basin::exec::gpu {

void CudnnBackend::accumulate(float* dst, const float* src, long long n) {
  if (n <= 0) return;
  const float one = 1.f;
  // cuBLAS's 32-bit interface, in chunks: ResNet-152's 60 M floats fit, larger arrays need them.
  for (long long at = 0; at < n; at += INT_MAX) {
    const int count = static_cast<int>(std::min<long long>(INT_MAX, n - at));
    CUBLAS_CHECK(cublasSaxpy(cublas_, count, &one, src + at, 1, dst + at, 1));
  }
}

void CudnnBackend::copy_flat(float* dst, const float* src, long long n) {
  if (n <= 0 || dst == src) return;
  CUDA_CHECK(cudaMemcpyAsync(dst, src, sizeof(float) * static_cast<size_t>(n),
                             cudaMemcpyDeviceToDevice, stream_));
}

std::shared_ptr<float> CudnnBackend::alloc_host_staging(long long n) {
  if (n < 0) throw std::invalid_argument("host staging array size must not be negative");
  float* p = nullptr;
  CUDA_CHECK(cudaMallocHost(&p, sizeof(float) * static_cast<size_t>(std::max(n, 1LL))));
  // A transport torn down after a failed bucket may leave copies into this memory queued on the
  // copy stream: the device finishes them before the memory goes back. (A destructor's CUDA
  // errors are moot, as DeviceMemory's.)
  return std::shared_ptr<float>(p, [device = options_.device](float* q) {
    int current = 0;
    const bool known = cudaGetDevice(&current) == cudaSuccess;
    if (cudaSetDevice(device) == cudaSuccess) cudaDeviceSynchronize();
    if (known) cudaSetDevice(current);
    cudaFreeHost(q);
  });
}

std::function<void()> CudnnBackend::flat_to_host_async(const float* flat, float* host, long long n) {
  if (n <= 0) return [] {};
  if (!copy_stream_) {
    cudaStream_t s = nullptr;
    CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    copy_stream_.reset(s);
  }
  auto make_event = [] {
    cudaEvent_t e = nullptr;
    CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
    return std::shared_ptr<CUevent_st>(e, [](cudaEvent_t x) { cudaEventDestroy(x); });
  };
  const auto produced = make_event(), copied = make_event();
  CUDA_CHECK(cudaEventRecord(produced.get(), stream_));
  CUDA_CHECK(cudaStreamWaitEvent(copy_stream_.get(), produced.get(), 0));
  CUDA_CHECK(cudaMemcpyAsync(host, flat, sizeof(float) * static_cast<size_t>(n), cudaMemcpyDeviceToHost,
                             copy_stream_.get()));
  CUDA_CHECK(cudaEventRecord(copied.get(), copy_stream_.get()));
  // The wait runs on the Gloo reducer's thread, which never chose a device: without this, its
  // first CUDA call would create a context on device 0 for a rank on another GPU.
  return [copied, device = options_.device] {
    CUDA_CHECK(cudaSetDevice(device));
    CUDA_CHECK(cudaEventSynchronize(copied.get()));
  };
}

}  // namespace basin::exec::gpu
