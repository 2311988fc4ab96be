// Bilinear resampling of a crop to the network's input: 8-bit RGB in, normalized float CHW out
// (or 8-bit RGB for tests). Pixel centres sit at +0.5 and edges are clamped: OpenCV's
// INTER_LINEAR, PyTorch's align_corners=False without antialiasing.
//
// The taps are planned from the crop alone (plan_resample), before anything is decoded, so the
// region decoder knows which source rectangle to produce; the resampling then reads that
// rectangle wherever it sits in the image (PixelsAt). It runs for every output pixel of every
// sample: a vertical pass over contiguous bytes that the compiler vectorizes (-O3,
// data/CMakeLists.txt), then a horizontal pass in SSE that writes the three planes at once.
#include "jpeg_internal.h"

#include <algorithm>
#include <cmath>

#if defined(__SSE2__)
#include <xmmintrin.h>
#endif

namespace basin::data {
namespace {

struct Taps {
  std::vector<int> lo, hi;
  std::vector<float> w;  // weight of `hi`
};

// Source taps for each output index: centre of output pixel i sits at
// start + (i + 0.5) * extent / n - 0.5 in source pixels, clamped to the image.
void taps(double start, double extent, int n, int size, std::vector<int>& lo_out, std::vector<int>& hi_out,
          std::vector<float>& w_out) {
  lo_out.resize(n);
  hi_out.resize(n);
  w_out.resize(n);
  for (int i = 0; i < n; ++i) {
    double s = start + (i + 0.5) * extent / n - 0.5;
    double f = std::floor(s);
    int lo = static_cast<int>(f);
    w_out[i] = static_cast<float>(s - f);
    lo_out[i] = std::clamp(lo, 0, size - 1);
    hi_out[i] = std::clamp(lo + 1, 0, size - 1);
  }
}

// One output row's vertical blend of two source rows, n bytes each, into floats. The loop the
// whole resampling spends most time in; an AVX2 clone, picked at load time where the CPU has it,
// converts twice as many bytes per instruction (no FMA: the same bits as the default clone).
#if defined(__x86_64__) && defined(__GNUC__)
#define BASIN_AVX2_CLONE __attribute__((target_clones("avx2", "default")))
#else
#define BASIN_AVX2_CLONE
#endif
BASIN_AVX2_CLONE void blend_rows(const std::uint8_t* r0, const std::uint8_t* r1, float w0, float w1, int n,
                                 float* out) {
  for (int k = 0; k < n; ++k) out[k] = w0 * r0[k] + w1 * r1[k];
}

// Separable bilinear: for each output row, blend its two source rows over the plan's columns
// into `row` (0..255 floats, interleaved RGB), then hand the row to `store(y, row)` for the
// horizontal pass.
template <class Store>
void resample_rows(const PixelsAt& src, const ResamplePlan& p, std::vector<float>& row, Store store) {
  const int n = (p.x_end - p.x_first) * 3;
  // One float of zero padding: the SSE horizontal pass loads 4 floats at the last pixel's 3.
  row.assign(static_cast<size_t>(n) + 1, 0.0f);
  float* r = row.data();
  const std::uint8_t* base = src.rgb + static_cast<size_t>(p.x_first - src.x) * 3;
  for (int y = 0; y < p.out_h; ++y) {
    const std::uint8_t* r0 = base + static_cast<size_t>(p.y_lo[y] - src.y) * src.stride;
    const std::uint8_t* r1 = base + static_cast<size_t>(p.y_hi[y] - src.y) * src.stride;
    const float wy = p.y_weight[y], w0 = 1 - wy;
    blend_rows(r0, r1, w0, wy, n, r);
    store(y, r);
  }
}

// The horizontal pass of one output row: each output pixel blends its two taps of the
// interleaved row `r`, normalizes, and goes to the three planes (mirrored when `flip`). Per
// value: (a + (b - a) * w) * scale + offset, in this order in both versions, so the SSE one
// gives the same bits as the scalar one.
void horizontal_normalize(const float* r, const int* left, const int* right, const float* wx, int out_w,
                          bool flip, const float scale[3], const float offset[3], float* d0, float* d1, float* d2) {
  float* const planes[3] = {d0, d1, d2};
  int x = 0;
#if defined(__SSE2__)
  // One 4-lane vector per output pixel (R, G, B and the next pixel's R, unused), then a 4 x 4
  // transpose turns four pixels into four values of each plane: no gathers, one store per plane.
  const __m128 sc = _mm_setr_ps(scale[0], scale[1], scale[2], 0), of = _mm_setr_ps(offset[0], offset[1], offset[2], 0);
  for (; x + 4 <= out_w; x += 4) {
    __m128 px[4];
    for (int j = 0; j < 4; ++j) {
      const __m128 a = _mm_loadu_ps(r + left[x + j]), b = _mm_loadu_ps(r + right[x + j]);
      const __m128 blend = _mm_add_ps(a, _mm_mul_ps(_mm_sub_ps(b, a), _mm_set1_ps(wx[x + j])));
      px[j] = _mm_add_ps(_mm_mul_ps(blend, sc), of);
    }
    _MM_TRANSPOSE4_PS(px[0], px[1], px[2], px[3]);
    for (int c = 0; c < 3; ++c) {
      if (flip) _mm_storeu_ps(planes[c] + out_w - 4 - x, _mm_shuffle_ps(px[c], px[c], _MM_SHUFFLE(0, 1, 2, 3)));
      else _mm_storeu_ps(planes[c] + x, px[c]);
    }
  }
#endif
  for (; x < out_w; ++x)
    for (int c = 0; c < 3; ++c) {
      const float a = r[left[x] + c], b = r[right[x] + c];
      planes[c][flip ? out_w - 1 - x : x] = (a + (b - a) * wx[x]) * scale[c] + offset[c];
    }
}

}  // namespace

ResamplePlan plan_resample(int full_w, int full_h, const CropBox& crop, int out_w, int out_h) {
  if (full_w <= 0 || full_h <= 0 || out_w <= 0 || out_h <= 0)
    throw std::invalid_argument("resample: empty image or output");
  ResamplePlan p;
  p.out_w = out_w;
  p.out_h = out_h;
  taps(crop.x, crop.width, out_w, full_w, p.x_lo, p.x_hi, p.x_weight);
  taps(crop.y, crop.height, out_h, full_h, p.y_lo, p.y_hi, p.y_weight);
  p.x_first = *std::min_element(p.x_lo.begin(), p.x_lo.end());
  p.x_end = *std::max_element(p.x_hi.begin(), p.x_hi.end()) + 1;
  p.y_first = *std::min_element(p.y_lo.begin(), p.y_lo.end());
  p.y_end = *std::max_element(p.y_hi.begin(), p.y_hi.end()) + 1;
  return p;
}

void resample_normalize(const PixelsAt& src, const ResamplePlan& p, bool flip, const Normalization& n, float* out) {
  float scale[3], offset[3];
  for (int c = 0; c < 3; ++c) {
    scale[c] = 1.0f / (255.0f * n.std[c]);
    offset[c] = -n.mean[c] / n.std[c];
  }
  const int out_w = p.out_w;
  const size_t plane = static_cast<size_t>(out_w) * p.out_h;
  // Offsets (in floats) of each output column's two taps into the vertical pass's row.
  thread_local std::vector<int> left, right;
  left.resize(out_w);
  right.resize(out_w);
  for (int x = 0; x < out_w; ++x) {
    left[x] = (p.x_lo[x] - p.x_first) * 3;
    right[x] = (p.x_hi[x] - p.x_first) * 3;
  }
  thread_local std::vector<float> row;
  resample_rows(src, p, row, [&](int y, const float* r) {
    const size_t at = static_cast<size_t>(y) * out_w;
    horizontal_normalize(r, left.data(), right.data(), p.x_weight.data(), out_w, flip, scale, offset,
                         out + at, out + plane + at, out + 2 * plane + at);
  });
}

void resample_normalize(const Image& image, const CropBox& crop, int out_w, int out_h, bool flip,
                        const Normalization& n, float* out) {
  const ResamplePlan p = plan_resample(image.width, image.height, crop, out_w, out_h);
  resample_normalize(PixelsAt{image.rgb.data(), static_cast<size_t>(image.width) * 3, 0, 0}, p, flip, n, out);
}

Image resample(const Image& image, const CropBox& crop, int out_w, int out_h) {
  const ResamplePlan p = plan_resample(image.width, image.height, crop, out_w, out_h);
  Image out{out_w, out_h, std::vector<std::uint8_t>(static_cast<size_t>(out_w) * out_h * 3)};
  std::vector<float> row;
  const PixelsAt src{image.rgb.data(), static_cast<size_t>(image.width) * 3, 0, 0};
  resample_rows(src, p, row, [&](int y, const float* r) {
    std::uint8_t* dst = out.rgb.data() + static_cast<size_t>(y) * out_w * 3;
    for (int x = 0; x < out_w; ++x)
      for (int c = 0; c < 3; ++c) {
        float a = r[(p.x_lo[x] - p.x_first) * 3 + c], b = r[(p.x_hi[x] - p.x_first) * 3 + c];
        dst[x * 3 + c] = static_cast<std::uint8_t>(std::clamp(std::lround(a + (b - a) * p.x_weight[x]), 0L, 255L));
      }
  });
  return out;
}

}  // namespace basin::data
