// A device array for the GPU tests: allocation, upload and download through CUDA_CHECK, and a
// device-wide synchronize before each download so an asynchronous kernel failure is reported at
// the test that caused it.
#pragma once

#include <basin/cuda_check.h>

#include <cuda_runtime.h>

#include <algorithm>
#include <vector>

template <class T>
class DeviceBuffer {
 public:
  explicit DeviceBuffer(size_t n) : n_(n) {
    // One element at least, so a size-0 test still passes a valid pointer.
    CUDA_CHECK(cudaMalloc(&ptr_, std::max<size_t>(n, 1) * sizeof(T)));
  }
  explicit DeviceBuffer(const std::vector<T>& host) : DeviceBuffer(host.size()) { upload(host); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer() { cudaFree(ptr_); }  // a destructor cannot throw; a failure here is moot

  T* get() const { return ptr_; }
  size_t size() const { return n_; }

  void upload(const std::vector<T>& host) {
    if (!host.empty())
      CUDA_CHECK(cudaMemcpy(ptr_, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice));
  }
  std::vector<T> download() const {
    CUDA_CHECK(cudaDeviceSynchronize());
    std::vector<T> host(n_);
    if (n_ > 0) CUDA_CHECK(cudaMemcpy(host.data(), ptr_, n_ * sizeof(T), cudaMemcpyDeviceToHost));
    return host;
  }

 private:
  T* ptr_ = nullptr;
  size_t n_ = 0;
};

// More elements than the grid-stride kernels' first pass covers (65536 blocks x 256 threads),
// so the loop's later iterations are exercised.
constexpr size_t kBeyondOneGrid = (size_t{1} << 24) + 13;
