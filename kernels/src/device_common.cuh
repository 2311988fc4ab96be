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

// value/bits convert one stored element; load/store index memory with them.
struct Fp32Storage {
  using T = float;
  __device__ static float value(T x) { return x; }
  __device__ static T bits(float x) { return x; }
  __device__ static float load(const T* p, size_t i) { return p[i]; }
  __device__ static void store(T* p, size_t i, float x) { p[i] = x; }
};

struct Bf16Storage {
  using T = std::uint16_t;
  __device__ static float value(T x) { return __bfloat162float(__ushort_as_bfloat16(x)); }
  __device__ static T bits(float x) { return __bfloat16_as_ushort(__float2bfloat16_rn(x)); }
  __device__ static float load(const T* p, size_t i) { return value(p[i]); }
  __device__ static void store(T* p, size_t i, float x) { p[i] = bits(x); }
};

struct Fp16Storage {
  using T = std::uint16_t;
  __device__ static float value(T x) { return __half2float(__ushort_as_half(x)); }
  __device__ static T bits(float x) { return __half_as_ushort(__float2half_rn(x)); }
  __device__ static float load(const T* p, size_t i) { return value(p[i]); }
  __device__ static void store(T* p, size_t i, float x) { p[i] = bits(x); }
};

// Elementwise maps over 16-byte packs (8 bf16/fp16 or 4 fp32 elements a load): one narrow
// element a thread leaves most of HBM's bandwidth unused. Each thread reads a pack of every
// input before it writes the output's, so the output may alias an input exactly. A pointer off
// 16-byte alignment makes the launcher pass vector = false: element by element then.
template <class T>
struct alignas(16) Pack {
  static constexpr int kSize = 16 / sizeof(T);
  T v[kSize];
};

inline bool aligned16(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % 16 == 0; }

template <class T, class Op>
__global__ void map1_kernel(const T* x, T* y, size_t n, bool vector, Op op) {
  using P = Pack<T>;
  const size_t packs = vector ? n / P::kSize : 0;
  const size_t start = grid_stride_start(), step = grid_stride_step();
  for (size_t k = start; k < packs; k += step) {
    const P a = reinterpret_cast<const P*>(x)[k];
    P out;
#pragma unroll
    for (int j = 0; j < P::kSize; ++j) out.v[j] = op(a.v[j]);
    reinterpret_cast<P*>(y)[k] = out;
  }
  for (size_t i = packs * P::kSize + start; i < n; i += step) y[i] = op(x[i]);
}

template <class T, class Op>
__global__ void map2_kernel(const T* x0, const T* x1, T* y, size_t n, bool vector, Op op) {
  using P = Pack<T>;
  const size_t packs = vector ? n / P::kSize : 0;
  const size_t start = grid_stride_start(), step = grid_stride_step();
  for (size_t k = start; k < packs; k += step) {
    const P a = reinterpret_cast<const P*>(x0)[k], b = reinterpret_cast<const P*>(x1)[k];
    P out;
#pragma unroll
    for (int j = 0; j < P::kSize; ++j) out.v[j] = op(a.v[j], b.v[j]);
    reinterpret_cast<P*>(y)[k] = out;
  }
  for (size_t i = packs * P::kSize + start; i < n; i += step) y[i] = op(x0[i], x1[i]);
}

// The blocks for n elements: one thread a pack (a thread an element when there is no whole
// pack, or no packs at all), the tail covered by the same threads.
template <class T>
int map_blocks(size_t n, bool vector) {
  const size_t packs = n / Pack<T>::kSize;
  return grid_stride_blocks(vector && packs > 0 ? packs : n);
}

// Launches map1/map2 over n elements on `stream`, by packs where every pointer allows it.
template <class T, class Op>
void map1(const T* x, T* y, size_t n, Op op, void* stream) {
  const bool vector = aligned16(x) && aligned16(y);
  map1_kernel<T, Op><<<map_blocks<T>(n, vector), kThreads, 0, as_stream(stream)>>>(x, y, n, vector, op);
  CUDA_CHECK_LAUNCH();
}
template <class T, class Op>
void map2(const T* x0, const T* x1, T* y, size_t n, Op op, void* stream) {
  const bool vector = aligned16(x0) && aligned16(x1) && aligned16(y);
  map2_kernel<T, Op><<<map_blocks<T>(n, vector), kThreads, 0, as_stream(stream)>>>(x0, x1, y, n, vector, op);
  CUDA_CHECK_LAUNCH();
}

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
