// Where an output pixel of the input stage samples its source: shared by the CPU reference and
// the GPU kernel (host and device), so both pick the same two taps and weights, and by
// construction the same ones as basin's CPU data path (the taps() of data/src's resampler).
#pragma once

#include <basin/kernels.h>

#include <cmath>

#ifdef __CUDACC__
#define BASIN_HOST_DEVICE __host__ __device__
#else
#define BASIN_HOST_DEVICE
#endif

namespace basin::kernels::detail {

struct BilinearTap {
  int lo;   // first source index, clamped to [0, size)
  int hi;   // second source index, lo's neighbour clamped to [0, size)
  float w;  // weight of hi; lo gets 1 - w
};

// Output index i of n along an axis whose crop covers [start, start + extent) of a source axis
// of `size` pixels: pixel centers map to pixel centers (align_corners=false). Computed in double,
// as the data path does, so large images lose nothing to fp32 coordinates.
BASIN_HOST_DEVICE inline BilinearTap bilinear_tap(double start, double extent, int n, int i,
                                                  int size) {
  const double s = start + (i + 0.5) * extent / n - 0.5;
  const double f = floor(s);
  const int lo = static_cast<int>(f);
  BilinearTap t;
  t.w = static_cast<float>(s - f);
  t.lo = lo < 0 ? 0 : (lo > size - 1 ? size - 1 : lo);
  t.hi = lo + 1 < 0 ? 0 : (lo + 1 > size - 1 ? size - 1 : lo + 1);
  return t;
}

// The affine map of x / 255 normalization as the data path computes it: x * scale + offset.
struct ChannelAffine {
  float scale[3];
  float offset[3];
};

inline ChannelAffine channel_affine(const InputNormalization& n) {
  ChannelAffine a;
  for (int c = 0; c < 3; ++c) {
    a.scale[c] = 1.0f / (255.0f * n.std[c]);
    a.offset[c] = -n.mean[c] / n.std[c];
  }
  return a;
}

}  // namespace basin::kernels::detail
