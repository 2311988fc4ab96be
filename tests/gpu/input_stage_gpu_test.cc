// The GPU input stage against the CPU reference on batches of random images of awkward sizes,
// fractional crops (some reaching past the edges), random flips and every output precision.
// Stated bounds: fp32 1e-5 relative or absolute (outputs are O(1)); bf16 1e-2 relative; fp16
// 2e-3 relative; either 16-bit one also 1e-5 absolute near 0. (The kernel uses non-contracting
// intrinsics in the reference's order, so in practice the results are identical.)
#include "../catch.h"
#include "compare.h"
#include "device_buffer.h"

#include <basin/kernels.h>

#include <cstdint>
#include <random>
#include <vector>

namespace bk = basin::kernels;

namespace {

struct Batch {
  std::vector<std::uint8_t> pixels;
  std::vector<bk::SourceImage> images;
};

// One image per size (width, height), each with a random crop of 5% to 130% of its extent
// anywhere from slightly before to slightly after it, and a random flip.
Batch random_batch(const std::vector<std::pair<int, int>>& sizes, std::mt19937& rng) {
  Batch b;
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_real_distribution<double> frac(0, 1);
  for (auto [w, h] : sizes) {
    bk::SourceImage im;
    im.offset = b.pixels.size();
    im.width = w;
    im.height = h;
    im.crop_width = w * (0.05 + 1.25 * frac(rng));
    im.crop_height = h * (0.05 + 1.25 * frac(rng));
    im.crop_x = (frac(rng) * 1.2 - 0.1) * w - 0.5 * im.crop_width * frac(rng);
    im.crop_y = (frac(rng) * 1.2 - 0.1) * h - 0.5 * im.crop_height * frac(rng);
    im.flip = frac(rng) < 0.5;
    b.images.push_back(im);
    for (size_t i = 0; i < size_t(w) * h * 3; ++i) b.pixels.push_back(std::uint8_t(byte(rng)));
  }
  return b;
}

void compare(const Batch& b, int out_h, int out_w, bk::Precision p) {
  const int batch = int(b.images.size());
  CAPTURE(batch, out_h, out_w, int(p));
  bk::check_source_images(b.images.data(), batch);
  const bk::InputNormalization norm;
  const size_t n = size_t(batch) * out_h * out_w * 3;
  std::vector<std::uint8_t> cpu(n * bk::bytes_per_element(p));
  bk::input_stage_cpu(b.pixels.data(), b.images.data(), batch, out_h, out_w, norm, p, cpu.data());
  DeviceBuffer<std::uint8_t> dpixels(b.pixels), dout(cpu.size());
  DeviceBuffer<bk::SourceImage> dimages(b.images);
  bk::input_stage_gpu(dpixels.get(), dimages.get(), batch, out_h, out_w, norm, p, dout.get());
  const std::vector<std::uint8_t> gpu = dout.download();
  std::vector<float> c(n), g(n);
  bk::cast_cpu(cpu.data(), p, c.data(), bk::Precision::fp32, n);
  bk::cast_cpu(gpu.data(), p, g.data(), bk::Precision::fp32, n);
  const double rel = p == bk::Precision::fp32 ? 1e-5 : p == bk::Precision::bf16 ? 1e-2 : 2e-3;
  REQUIRE(first_mismatch(g, c, rel, 1e-5) == "");
}

}  // namespace

TEST_CASE("GPU input stage matches the CPU reference on awkward batches",
          "[kernels][gpu][input]") {
  const bk::Precision p = GENERATE(bk::Precision::fp32, bk::Precision::bf16, bk::Precision::fp16);
  std::mt19937 rng(37);
  compare(random_batch({}, rng), 7, 5, p);  // empty batch: nothing to do, nothing to fail
  compare(random_batch({{1, 1}}, rng), 1, 1, p);
  const Batch mixed = random_batch({{1, 1}, {7, 13}, {333, 500}, {2, 1}, {64, 64}}, rng);
  compare(mixed, 7, 5, p);
  compare(mixed, 1, 13, p);
  compare(mixed, 224, 224, p);
}

TEST_CASE("GPU input stage covers batches larger than one grid", "[kernels][gpu][input]") {
  // 341 x 224 x 224 output pixels > 65536 blocks x 256 threads; the images share one source.
  std::mt19937 rng(41);
  Batch b = random_batch({{50, 40}}, rng);
  for (int k = 1; k < 341; ++k) {
    bk::SourceImage im = random_batch({{50, 40}}, rng).images[0];
    im.offset = 0;
    b.images.push_back(im);
  }
  compare(b, 224, 224, bk::Precision::bf16);
}
