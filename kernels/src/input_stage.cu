// GPU input stage: crop, bilinear resize, flip and normalize a batch of decoded uint8 RGB images
// into the NHWC compute-precision tensor, so the CPU only decodes JPEGs. One thread per output
// pixel (three channels), grid-striding over the whole batch; the source reads of neighbouring
// threads are neighbouring pixels, which L1 serves.
//
// The arithmetic uses __fmul_rn / __fadd_rn / __fsub_rn, which the compiler never contracts
// into fused multiply-adds, so each value is computed with the same roundings, in the same
// order, as the CPU reference (and the CPU data path).
#include "bilinear_taps.h"
#include "device_common.cuh"

#include <stdexcept>
#include <string>

namespace basin::kernels {
namespace {

// (1 - wy) * top + wy * bottom, rounded as the CPU reference rounds it.
__device__ float blend_rows(float w0, float wy, std::uint8_t top, std::uint8_t bottom) {
  return __fadd_rn(__fmul_rn(w0, float(top)), __fmul_rn(wy, float(bottom)));
}

template <class S>
__global__ void input_stage_kernel(const std::uint8_t* __restrict__ pixels,
                                   const SourceImage* __restrict__ images, int batch, int out_h,
                                   int out_w, detail::ChannelAffine affine,
                                   typename S::T* __restrict__ out) {
  const size_t per_image = size_t(out_h) * out_w;
  const size_t total = per_image * batch;
  for (size_t p = detail::grid_stride_start(); p < total; p += detail::grid_stride_step()) {
    const int b = int(p / per_image);
    const int y = int((p % per_image) / out_w);
    const int out_x = int(p % out_w);
    const SourceImage im = images[b];
    const int x = im.flip ? out_w - 1 - out_x : out_x;  // the sample this output column shows
    const detail::BilinearTap ty = detail::bilinear_tap(im.crop_y, im.crop_height, out_h, y, im.height);
    const detail::BilinearTap tx = detail::bilinear_tap(im.crop_x, im.crop_width, out_w, x, im.width);
    const size_t row_bytes = size_t(im.width) * 3;
    const std::uint8_t* top = pixels + im.offset + ty.lo * row_bytes;
    const std::uint8_t* bottom = pixels + im.offset + ty.hi * row_bytes;
    const float wy = ty.w, w0 = __fsub_rn(1.f, wy);
    for (int c = 0; c < 3; ++c) {
      const size_t left = size_t(tx.lo) * 3 + c, right = size_t(tx.hi) * 3 + c;
      const float a = blend_rows(w0, wy, top[left], bottom[left]);
      const float r = blend_rows(w0, wy, top[right], bottom[right]);
      const float sampled = __fadd_rn(a, __fmul_rn(__fsub_rn(r, a), tx.w));
      S::store(out, p * 3 + c, __fadd_rn(__fmul_rn(sampled, affine.scale[c]), affine.offset[c]));
    }
  }
}

}  // namespace

void input_stage_gpu(const std::uint8_t* pixels, const SourceImage* images, int batch, int out_h,
                     int out_w, const InputNormalization& norm, Precision out_precision,
                     void* out, void* stream) {
  if (batch < 0) throw std::invalid_argument("input stage: batch " + std::to_string(batch) + " < 0");
  if (out_h <= 0 || out_w <= 0)
    throw std::invalid_argument("input stage: output " + std::to_string(out_h) + "x" +
                                std::to_string(out_w) + " is empty");
  if (batch == 0) return;
  const size_t pixels_out = size_t(batch) * out_h * out_w;
  const detail::ChannelAffine affine = detail::channel_affine(norm);
  detail::with_storage(out_precision, [&](auto storage) {
    using S = decltype(storage);
    input_stage_kernel<S><<<detail::grid_stride_blocks(pixels_out), detail::kThreads, 0,
                            detail::as_stream(stream)>>>(pixels, images, batch, out_h, out_w,
                                                         affine, static_cast<typename S::T*>(out));
    CUDA_CHECK_LAUNCH();
  });
}

}  // namespace basin::kernels
