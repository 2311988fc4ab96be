// Raw batches to the input stage's descriptors, checked, and the input stage on the host (see
// input_staging.h). The kernels write NHWC; the host path transposes to the NCHW that
// Backend::write_nchw takes, so every backend gets the input in its own layout.
#include "input_staging.h"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace basin::exec::detail {

void check_raw_batch(const data::Batch& raw, const TensorDesc& dst) {
  auto bad = [](const std::string& what) { throw std::invalid_argument("stage_input: " + what); };
  if (raw.raw.size() != static_cast<size_t>(raw.size) || !raw.pixels.empty())
    bad("expected a raw batch (data::LoaderOutput::raw) with one region per image, got " +
        std::to_string(raw.raw.size()) + " regions for " + std::to_string(raw.size) + " images");
  if (dst.c != 3 || dst.h != raw.height || dst.w != raw.width)
    bad("the input tensor is " + std::to_string(dst.c) + " x " + std::to_string(dst.h) + " x " +
        std::to_string(dst.w) + ", the batch 3 x " + std::to_string(raw.height) + " x " +
        std::to_string(raw.width));
  if (raw.size > dst.n)
    bad(std::to_string(raw.size) + " images for an input of " + std::to_string(dst.n));
  for (size_t i = 0; i < raw.raw.size(); ++i) {
    const data::RawImage& im = raw.raw[i];
    const size_t bytes = static_cast<size_t>(im.width) * im.height * 3;
    if (im.width <= 0 || im.height <= 0 || im.offset > raw.rgb.size() || bytes > raw.rgb.size() - im.offset)
      bad("image " + std::to_string(i) + "'s region (" + std::to_string(im.width) + " x " +
          std::to_string(im.height) + " at byte " + std::to_string(im.offset) + ") is not inside the batch's " +
          std::to_string(raw.rgb.size()) + " bytes");
  }
}

std::vector<kernels::SourceImage> source_images(const data::Batch& raw) {
  std::vector<kernels::SourceImage> out;
  out.reserve(raw.raw.size());
  for (const data::RawImage& r : raw.raw)
    out.push_back({.offset = r.offset, .width = r.width, .height = r.height, .crop_x = r.crop.x,
                   .crop_y = r.crop.y, .crop_width = r.crop.width, .crop_height = r.crop.height,
                   .flip = r.flip});
  kernels::check_source_images(out.data(), static_cast<int>(out.size()));
  return out;
}

kernels::InputNormalization input_normalization(const data::Normalization& n) {
  kernels::InputNormalization k;
  for (int c = 0; c < 3; ++c) {
    k.mean[c] = n.mean[c];
    k.std[c] = n.std[c];
  }
  return k;
}

void stage_on_host(const data::Batch& raw, const data::Normalization& norm, const TensorDesc& dst,
                   float* nchw) {
  check_raw_batch(raw, dst);
  const std::vector<kernels::SourceImage> sources = source_images(raw);
  const size_t plane = static_cast<size_t>(dst.h) * dst.w;
  std::vector<float> nhwc(plane * 3 * static_cast<size_t>(raw.size));
  kernels::input_stage_cpu(raw.rgb.data(), sources.data(), raw.size, dst.h, dst.w,
                           input_normalization(norm), kernels::Precision::fp32, nhwc.data());
  for (int n = 0; n < raw.size; ++n)
    for (size_t p = 0; p < plane; ++p)
      for (int c = 0; c < 3; ++c)
        nchw[(static_cast<size_t>(n) * 3 + c) * plane + p] = nhwc[(static_cast<size_t>(n) * plane + p) * 3 + c];
  std::fill(nchw + static_cast<size_t>(raw.size) * 3 * plane, nchw + static_cast<size_t>(dst.n) * 3 * plane, 0.f);
}

}  // namespace basin::exec::detail
