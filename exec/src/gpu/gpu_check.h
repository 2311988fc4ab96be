// Checked cuDNN and cuBLAS calls for the GPU backend, in the style of kernels' CUDA_CHECK
// (basin/cuda_check.h, also used here for the CUDA runtime): a failing call throws
// std::runtime_error with file:line, the call's text and the library's own error string, so a
// bad descriptor or an unsupported configuration names itself instead of surfacing later as a
// wrong number.
#pragma once

#include <basin/cuda_check.h>

#include <cublas_v2.h>
#include <cudnn.h>

#include <stdexcept>
#include <string>

namespace basin::exec::gpu::detail {

[[noreturn]] inline void cudnn_fail(cudnnStatus_t status, const char* call, const char* file,
                                    int line) {
  throw std::runtime_error(std::string(file) + ":" + std::to_string(line) + ": " + call +
                           " failed: " + cudnnGetErrorString(status));
}

[[noreturn]] inline void cublas_fail(cublasStatus_t status, const char* call, const char* file,
                                     int line) {
  throw std::runtime_error(std::string(file) + ":" + std::to_string(line) + ": " + call +
                           " failed: " + cublasGetStatusName(status) + ": " +
                           cublasGetStatusString(status));
}

// Whether cuDNN turned a call down for what it was given (NOT_SUPPORTED, or BAD_PARAM, which its
// documentation also lists for data types a function does not take), rather than failing.
inline bool cudnn_refused(cudnnStatus_t status) {
  const auto category = CUDNN_STATUS_CATEGORY(status);
  return category == CUDNN_STATUS_NOT_SUPPORTED || category == CUDNN_STATUS_BAD_PARAM;
}

}  // namespace basin::exec::gpu::detail

#define CUDNN_CHECK(call)                                                             \
  do {                                                                                \
    cudnnStatus_t basin_status_ = (call);                                             \
    if (basin_status_ != CUDNN_STATUS_SUCCESS)                                        \
      ::basin::exec::gpu::detail::cudnn_fail(basin_status_, #call, __FILE__, __LINE__); \
  } while (0)

#define CUBLAS_CHECK(call)                                                             \
  do {                                                                                 \
    cublasStatus_t basin_status_ = (call);                                             \
    if (basin_status_ != CUBLAS_STATUS_SUCCESS)                                        \
      ::basin::exec::gpu::detail::cublas_fail(basin_status_, #call, __FILE__, __LINE__); \
  } while (0)
