// Checked CUDA calls: every CUDA runtime call in basin goes through CUDA_CHECK, and every kernel
// launch is followed by CUDA_CHECK_LAUNCH(), so a failure reports file:line and CUDA's own error
// string instead of surfacing later as a wrong number.
#pragma once

#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

namespace basin::kernels::detail {
[[noreturn]] inline void cuda_fail(cudaError_t err, const char* call, const char* file, int line) {
  throw std::runtime_error(std::string(file) + ":" + std::to_string(line) + ": " + call +
                           " failed: " + cudaGetErrorName(err) + ": " + cudaGetErrorString(err));
}
}  // namespace basin::kernels::detail

#define CUDA_CHECK(call)                                                             \
  do {                                                                               \
    cudaError_t basin_err_ = (call);                                                 \
    if (basin_err_ != cudaSuccess)                                                   \
      ::basin::kernels::detail::cuda_fail(basin_err_, #call, __FILE__, __LINE__);    \
  } while (0)

#define CUDA_CHECK_LAUNCH() CUDA_CHECK(cudaGetLastError())
