// What the data layer's sources share beyond the public header: decoding into caller-owned
// buffers so a worker thread reuses them for every sample, the region decoder's two-step form
// (header first, then the region the transform picks from it), and the resampling plan that both
// sides of that choice use.
#pragma once

#include <basin/data.h>

#include <functional>

namespace basin::data {

void decode_into(std::span<const std::uint8_t> jpeg, int eighths, bool fast, Image& out);
// libjpeg-turbo's CMYK is inverted (Adobe's convention); shared by both decoders.
void cmyk_to_rgb(const std::uint8_t* cmyk, std::uint8_t* rgb, size_t pixels);

// The scale and the rectangle [x0, x1) x [y0, y1) of the scaled image to decode.
struct RegionRequest {
  int eighths = 8;
  int x0 = 0, y0 = 0, x1 = 0, y1 = 0;
};
// Reads the header, calls `choose` with it, and decodes what it asks for into `out` (reusing its
// buffer). Throws DecodeError, or whatever `choose` throws.
void decode_region_into(std::span<const std::uint8_t> jpeg, bool fast,
                        const std::function<RegionRequest(const JpegHeader&)>& choose, ImageRegion& out);

// 8-bit RGB rows of `stride` bytes whose first pixel is pixel (x, y) of a larger image.
struct PixelsAt {
  const std::uint8_t* rgb = nullptr;
  size_t stride = 0;
  int x = 0, y = 0;
};

// Bilinear taps of a crop of a full_w x full_h image resampled to out_w x out_h, and the source
// rectangle [x_first, x_end) x [y_first, y_end) they read: all a decoder needs to produce.
struct ResamplePlan {
  int out_w = 0, out_h = 0;
  int x_first = 0, x_end = 0, y_first = 0, y_end = 0;
  std::vector<int> x_lo, x_hi, y_lo, y_hi;  // absolute source columns and rows
  std::vector<float> x_weight, y_weight;    // weight of the `hi` tap
};
ResamplePlan plan_resample(int full_w, int full_h, const CropBox& crop, int out_w, int out_h);
// `src` must hold the plan's source rectangle.
void resample_normalize(const PixelsAt& src, const ResamplePlan& plan, bool flip, const Normalization& n,
                        float* out);

}  // namespace basin::data
