// What the GPU kernels share: the launch geometry of the grid-stride loops, and storage types
// for the three precisions, loading as fp32 and storing with CUDA's round-to-nearest-even
// conversions (the CPU references do the same rounding on the bit patterns, independently).
#pragma once

#include <basin/cuda_check.h>
#include <basin/kernels.h>

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <stdexcept>
#include <string>

namespace basin::kernels::detail {

// Elementwise kernels use 256 threads and at most 65536 blocks, looping over the rest: enough
// blocks to fill any current GPU many times over, and no grid-size limit on n.
constexpr int kThreads = 256;
constexpr size_t kMaxBlocks = 65536;

inline int grid_stride_blocks(size_t n) {
  const size_t wanted = (n + kThreads - 1) / kThreads;
  return static_cast<int>(wanted < kMaxBlocks ? wanted : kMaxBlocks);
}

__device__ inline size_t grid_stride_start() { return blockIdx.x * size_t(blockDim.x) + threadIdx.x; }
__device__ inline size_t grid_stride_step() { return size_t(gridDim.x) * blockDim.x; }

inline cudaStream_t as_stream(void* stream) { return static_cast<cudaStream_t>(stream); }

struct Fp32Storage {
  using T = float;
  __device__ static float load(const T* p, size_t i) { return p[i]; }
  __device__ static void store(T* p, size_t i, float x) { p[i] = x; }
};

struct Bf16Storage {
  using T = std::uint16_t;
  __device__ static float load(const T* p, size_t i) {
    return __bfloat162float(__ushort_as_bfloat16(p[i]));
  }
  __device__ static void store(T* p, size_t i, float x) {
    p[i] = __bfloat16_as_ushort(__float2bfloat16_rn(x));
  }
};

struct Fp16Storage {
  using T = std::uint16_t;
  __device__ static float load(const T* p, size_t i) { return __half2float(__ushort_as_half(p[i])); }
  __device__ static void store(T* p, size_t i, float x) {
    p[i] = __half_as_ushort(__float2half_rn(x));
  }
};

// Calls f(Storage{}) with the storage type of p, so one template serves all three precisions.
template <class F>
void with_storage(Precision p, F&& f) {
  switch (p) {
    case Precision::fp32: f(Fp32Storage{}); return;
    case Precision::bf16: f(Bf16Storage{}); return;
    case Precision::fp16: f(Fp16Storage{}); return;
  }
  throw std::invalid_argument("unknown precision");
}

}  // namespace basin::kernels::detail
