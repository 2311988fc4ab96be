// GPU softmax cross-entropy, forward and backward: one block per row (grid-striding over rows),
// three passes over the row (max, sum of exp, then loss or gradient) that hit L2 after the first.
// Reductions go lane-shuffle then warp-by-warp in a fixed order, and the mean is a second
// single-block kernel over the row losses, so results are the same run to run (no atomics).
#include "device_common.cuh"
#include "xent_common.h"

#include <math_constants.h>

namespace basin::kernels {
namespace {

constexpr int kMaxRowBlocks = 65536;
constexpr int kMeanThreads = 1024;

struct MaxOp {
  __device__ static float identity() { return -CUDART_INF_F; }
  __device__ static float apply(float a, float b) { return fmaxf(a, b); }
};
struct SumOp {
  __device__ static float identity() { return 0.f; }
  __device__ static float apply(float a, float b) { return a + b; }
};

// Reduces v over the block (blockDim.x a multiple of 32, at most 1024) and returns the result to
// every thread. `scratch` holds 33 floats: one per warp and one for the broadcast. Safe to call
// repeatedly: the barrier before the broadcast read separates one call's reads from the next
// call's writes.
template <class Op>
__device__ float block_reduce(float v, float* scratch) {
  for (int offset = 16; offset > 0; offset >>= 1)
    v = Op::apply(v, __shfl_xor_sync(0xffffffffu, v, offset));
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  if (warp == 0) {
    float t = lane < int(blockDim.x >> 5) ? scratch[lane] : Op::identity();
    for (int offset = 16; offset > 0; offset >>= 1)
      t = Op::apply(t, __shfl_xor_sync(0xffffffffu, t, offset));
    if (lane == 0) scratch[32] = t;
  }
  __syncthreads();
  return scratch[32];
}

struct RowStats {
  float max;
  float sum_exp;
};

__device__ RowStats row_stats(const float* x, int classes, float* scratch) {
  float m = -CUDART_INF_F;
  for (int j = threadIdx.x; j < classes; j += blockDim.x) m = fmaxf(m, x[j]);
  m = block_reduce<MaxOp>(m, scratch);
  float s = 0.f;
  for (int j = threadIdx.x; j < classes; j += blockDim.x) s += expf(x[j] - m);
  s = block_reduce<SumOp>(s, scratch);
  return {m, s};
}

__global__ void xent_forward_kernel(const float* __restrict__ logits,
                                    const std::int32_t* __restrict__ labels, int rows, int classes,
                                    float* __restrict__ row_loss) {
  __shared__ float scratch[33];
  for (int r = blockIdx.x; r < rows; r += gridDim.x) {
    const float* x = logits + size_t(r) * classes;
    const RowStats st = row_stats(x, classes, scratch);
    if (threadIdx.x == 0) {
      const std::int32_t label = labels[r];
      row_loss[r] = label >= 0 && label < classes ? (st.max - x[label]) + logf(st.sum_exp)
                                                  : CUDART_NAN_F;
    }
  }
}

__global__ void xent_mean_kernel(const float* __restrict__ row_loss, int rows, float normalizer,
                                 float* __restrict__ mean_loss) {
  __shared__ float scratch[33];
  float s = 0.f;
  for (int r = threadIdx.x; r < rows; r += blockDim.x) s += row_loss[r];
  s = block_reduce<SumOp>(s, scratch);
  if (threadIdx.x == 0) *mean_loss = s / normalizer;
}

// dlogits may alias logits: every thread's reads of the row finish in row_stats (whose last
// barrier orders them before any write), and in the last pass each element is read, then
// written, by the same thread.
__global__ void xent_backward_kernel(const float* logits, const std::int32_t* __restrict__ labels,
                                     int rows, int classes, float normalizer, float* dlogits) {
  __shared__ float scratch[33];
  for (int r = blockIdx.x; r < rows; r += gridDim.x) {
    const float* x = logits + size_t(r) * classes;
    float* dx = dlogits + size_t(r) * classes;
    const RowStats st = row_stats(x, classes, scratch);
    const std::int32_t label = labels[r];
    const bool ok = label >= 0 && label < classes;
    for (int j = threadIdx.x; j < classes; j += blockDim.x) {
      const float softmax = expf(x[j] - st.max) / st.sum_exp;
      dx[j] = ok ? (softmax - (j == label ? 1.f : 0.f)) / normalizer : CUDART_NAN_F;
    }
    __syncthreads();  // the next row's reductions reuse scratch only after this row is done
  }
}

// Narrow rows get a narrow block, so small class counts do not leave most threads idle.
int row_threads(int classes) { return classes <= 32 ? 32 : classes <= 256 ? 128 : 256; }

int row_blocks(int rows) { return rows < kMaxRowBlocks ? rows : kMaxRowBlocks; }

}  // namespace

void softmax_xent_forward_gpu(const float* logits, const std::int32_t* labels, int rows,
                              int classes, float normalizer, float* row_loss, float* mean_loss,
                              void* stream) {
  detail::check_xent_args(rows, classes, normalizer);
  const cudaStream_t s = detail::as_stream(stream);
  if (rows > 0) {
    xent_forward_kernel<<<row_blocks(rows), row_threads(classes), 0, s>>>(logits, labels, rows,
                                                                           classes, row_loss);
    CUDA_CHECK_LAUNCH();
  }
  xent_mean_kernel<<<1, kMeanThreads, 0, s>>>(row_loss, rows, normalizer, mean_loss);
  CUDA_CHECK_LAUNCH();
}

void softmax_xent_backward_gpu(const float* logits, const std::int32_t* labels, int rows,
                               int classes, float normalizer, float* dlogits, void* stream) {
  detail::check_xent_args(rows, classes, normalizer);
  if (rows == 0) return;
  xent_backward_kernel<<<row_blocks(rows), row_threads(classes), 0, detail::as_stream(stream)>>>(
      logits, labels, rows, classes, normalizer, dlogits);
  CUDA_CHECK_LAUNCH();
}

}  // namespace basin::kernels
