// Whether this process can use a GPU: lets tests and tools say "skipped: no GPU" instead of
// failing on machines without a driver or device.
#include <basin/kernels.h>

#include <cuda_runtime.h>

namespace basin::kernels {

int cuda_device_count() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no driver" error
    return 0;
  }
  return count;
}

std::string cuda_device_error() {
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err == cudaSuccess && count > 0) return "";
  cudaGetLastError();
  if (err == cudaSuccess) return "CUDA reports 0 devices";
  return std::string(cudaGetErrorName(err)) + ": " + cudaGetErrorString(err);
}

std::string cuda_device_name(int device) {
  cudaDeviceProp prop{};
  if (cudaGetDeviceProperties(&prop, device) != cudaSuccess) {
    cudaGetLastError();
    return "";
  }
  return prop.name;
}

}  // namespace basin::kernels
