// The GPU backend's element types: the Tensor::format codes that record them, and their names
// in cuDNN, cuBLAS and basin's kernels. One place, so a new precision is added in one file.
#include <stdexcept>
#include <string>

#include "gpu_backend.h"

namespace basin::exec::gpu {

int format_of(Precision p) {
  switch (p) {
    case Precision::fp32: return kNhwc;
    case Precision::bf16: return kNhwcBf16;
    case Precision::fp16: return kNhwcFp16;
  }
  throw std::invalid_argument("unknown precision");
}

Precision precision_of(const Tensor& t) {
  switch (t.format) {
    case kNhwc: return Precision::fp32;
    case kNhwcBf16: return Precision::bf16;
    case kNhwcFp16: return Precision::fp16;
  }
  throw std::invalid_argument("tensor of format " + std::to_string(t.format) +
                              " was not allocated by the GPU backend");
}

kernels::Precision kernel_precision(Precision p) {
  switch (p) {
    case Precision::fp32: return kernels::Precision::fp32;
    case Precision::bf16: return kernels::Precision::bf16;
    case Precision::fp16: return kernels::Precision::fp16;
  }
  throw std::invalid_argument("unknown precision");
}

cudnnDataType_t cudnn_type(Precision p) {
  switch (p) {
    case Precision::fp32: return CUDNN_DATA_FLOAT;
    case Precision::bf16: return CUDNN_DATA_BFLOAT16;
    case Precision::fp16: return CUDNN_DATA_HALF;
  }
  throw std::invalid_argument("unknown precision");
}

cudaDataType_t cuda_type(Precision p) {
  switch (p) {
    case Precision::fp32: return CUDA_R_32F;
    case Precision::bf16: return CUDA_R_16BF;
    case Precision::fp16: return CUDA_R_16F;
  }
  throw std::invalid_argument("unknown precision");
}

size_t element_bytes(Precision p) { return p == Precision::fp32 ? 4 : 2; }

}  // namespace basin::exec::gpu
