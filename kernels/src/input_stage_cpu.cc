// CPU reference of the GPU input stage (see basin/kernels.h): crop, bilinear resize, flip and
// normalize decoded uint8 RGB images into an NHWC batch. It computes each output pixel directly
// from its four source pixels, with the data path's taps and in the operation order of its
// separable resample (vertical blend, horizontal blend, affine normalize), so the two give the
// same pixels up to fp32 rounding.
#include <basin/kernels.h>

#include "bilinear_taps.h"
#include "storage.h"

#include <cmath>
#include <stdexcept>
#include <string>

namespace basin::kernels {

void check_source_images(const SourceImage* images, int batch) {
  if (batch < 0) throw std::invalid_argument("input stage: batch " + std::to_string(batch) + " < 0");
  if (batch > 0 && images == nullptr) throw std::invalid_argument("input stage: null image array");
  for (int b = 0; b < batch; ++b) {
    const SourceImage& im = images[b];
    const std::string which = "input stage: image " + std::to_string(b);
    if (im.width <= 0 || im.height <= 0)
      throw std::invalid_argument(which + " is empty (" + std::to_string(im.width) + "x" +
                                  std::to_string(im.height) + ")");
    // The bound keeps floor(sample position) inside int; real crops are a few thousand pixels.
    const double limit = 1e9;
    for (double v : {im.crop_x, im.crop_y, im.crop_width, im.crop_height})
      if (!std::isfinite(v) || std::fabs(v) > limit)
        throw std::invalid_argument(which + " has a crop coordinate that is not finite or beyond 1e9");
    if (!(im.crop_width > 0) || !(im.crop_height > 0))
      throw std::invalid_argument(which + " has an empty crop");
  }
}

void input_stage_cpu(const std::uint8_t* pixels, const SourceImage* images, int batch, int out_h,
                     int out_w, const InputNormalization& norm, Precision out_precision,
                     void* out) {
  check_source_images(images, batch);
  if (out_h <= 0 || out_w <= 0)
    throw std::invalid_argument("input stage: output " + std::to_string(out_h) + "x" +
                                std::to_string(out_w) + " is empty");
  const detail::ChannelAffine affine = detail::channel_affine(norm);
  for (int b = 0; b < batch; ++b) {
    const SourceImage& im = images[b];
    const std::uint8_t* src = pixels + im.offset;
    const size_t row_bytes = static_cast<size_t>(im.width) * 3;
    for (int y = 0; y < out_h; ++y) {
      const detail::BilinearTap ty = detail::bilinear_tap(im.crop_y, im.crop_height, out_h, y, im.height);
      const std::uint8_t* top = src + ty.lo * row_bytes;
      const std::uint8_t* bottom = src + ty.hi * row_bytes;
      const float wy = ty.w, w0 = 1 - wy;
      for (int x = 0; x < out_w; ++x) {
        const detail::BilinearTap tx = detail::bilinear_tap(im.crop_x, im.crop_width, out_w, x, im.width);
        const int out_x = im.flip ? out_w - 1 - x : x;
        const size_t out_index = ((static_cast<size_t>(b) * out_h + y) * out_w + out_x) * 3;
        for (int c = 0; c < 3; ++c) {
          const size_t left = static_cast<size_t>(tx.lo) * 3 + c;
          const size_t right = static_cast<size_t>(tx.hi) * 3 + c;
          const float a = w0 * top[left] + wy * bottom[left];
          const float r = w0 * top[right] + wy * bottom[right];
          const float value = (a + (r - a) * tx.w) * affine.scale[c] + affine.offset[c];
          detail::store_float(out, out_precision, out_index + c, value);
        }
      }
    }
  }
}

}  // namespace basin::kernels
