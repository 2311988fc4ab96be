// The GPU input stage fed by the real loader: raw batches (data::LoaderOutput::raw, the workers
// only decode) through kernels::input_stage_gpu, and through the GPU backend's stage_input
// (pinned upload on its stream), against the loader's float batches of the same files, seed and
// position, which the CPU data path computes on its own. Bound: 1e-6 absolute, the one that
// tests/data/raw_loader_test.cc derives for the CPU reference (the sample position is rounded in
// the region's coordinates instead of the scaled image's); the kernel matches that reference
// bit for bit (input_stage_gpu_test.cc), so the same bound holds.
#include "../catch.h"
#include "../temp_dir.h"
#include "device_buffer.h"

#include <basin/data.h>
#include <basin/kernels.h>
#if BASIN_HAVE_CUDNN
#include <basin/backend.h>
#endif

#include <algorithm>
#include <cmath>
#include <fstream>
#include <vector>

namespace bd = basin::data;
namespace bk = basin::kernels;

namespace {

// JPEGs of several sizes, odd ones among them, DCT-scaled at small crops.
std::vector<bd::Sample> write_samples(const std::filesystem::path& dir) {
  const int sizes[][2] = {{500, 375}, {97, 131}, {333, 211}, {250, 503}};
  std::vector<bd::Sample> out;
  for (int i = 0; i < 20; ++i) {
    const auto path = dir / ("img" + std::to_string(i) + ".JPEG");
    const auto jpeg = bd::encode_jpeg(bd::render_synth_image(i % 4, sizes[i % 4][0], sizes[i % 4][1], 77 + i));
    std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(jpeg.data()),
                                                static_cast<std::streamsize>(jpeg.size()));
    out.push_back({path.string(), i % 4});
  }
  return out;
}

bd::LoaderConfig config(bd::Transform::Kind kind, int size) {
  bd::LoaderConfig c;
  c.transform.kind = kind;
  c.transform.train.output = size;
  c.transform.val = {.resize = size * 8 / 7, .crop = size};
  c.transform.scaling = bd::DctScaling::smallest;
  c.batch_size = 6;
  c.threads = 2;
  c.seed = 3;
  return c;
}

std::vector<bk::SourceImage> sources_of(const bd::Batch& b) {
  std::vector<bk::SourceImage> out;
  for (const bd::RawImage& r : b.raw)
    out.push_back({r.offset, r.width, r.height, r.crop.x, r.crop.y, r.crop.width, r.crop.height, r.flip});
  return out;
}

// Largest |float CHW - staged| over the batch's images; `nhwc` says the staged layout.
double max_difference(const bd::Batch& f, const std::vector<float>& staged, bool nhwc) {
  const int S = f.height;
  double worst = 0;
  for (int i = 0; i < f.size; ++i)
    for (int c = 0; c < 3; ++c)
      for (int y = 0; y < S; ++y)
        for (int x = 0; x < S; ++x) {
          const size_t chw = ((size_t(i) * 3 + c) * S + y) * S + x;
          const size_t at = nhwc ? ((size_t(i) * S + y) * S + x) * 3 + c : chw;
          worst = std::max(worst, double(std::fabs(f.pixels[chw] - staged[at])));
        }
  return worst;
}

}  // namespace

TEST_CASE("input_stage_gpu on the loader's raw batches gives the float batches", "[gpu][input_stage][data]") {
  basin::test::TempDir dir("raw-gpu");
  const auto samples = write_samples(dir.path);
  for (auto kind : {bd::Transform::Kind::train, bd::Transform::Kind::val})
    for (int size : {56, 97}) {
      CAPTURE(int(kind), size);
      bd::LoaderConfig c = config(kind, size), rc = c;
      rc.output = bd::LoaderOutput::raw;
      bd::Loader floats(samples, c), raw(samples, rc);
      for (int b = 0; b < 4; ++b) {
        CAPTURE(b);
        const bd::Batch f = floats.next(), r = raw.next();
        REQUIRE(r.samples == f.samples);
        const auto sources = sources_of(r);
        bk::InputNormalization norm;
        for (int k = 0; k < 3; ++k) norm.mean[k] = c.transform.normalization.mean[k], norm.std[k] = c.transform.normalization.std[k];
        DeviceBuffer<std::uint8_t> dpixels(r.rgb);
        DeviceBuffer<bk::SourceImage> dsources(sources);
        DeviceBuffer<float> dout(size_t(r.size) * size * size * 3);
        bk::input_stage_gpu(dpixels.get(), dsources.get(), r.size, size, size, norm, bk::Precision::fp32, dout.get());
        REQUIRE(max_difference(f, dout.download(), true) <= 1e-6);
      }
    }
}

#if BASIN_HAVE_CUDNN
TEST_CASE("the GPU backend stages raw batches into its input tensor", "[gpu][input_stage][backend]") {
  // Through the backend's pinned upload on its stream, several batches in a row, the last one
  // short: its missing images are zeros, as the float path pads them. Each pair of batches is
  // staged back to back into two tensors before either is read, so the second upload reuses
  // the pinned buffer while the first copy may still be reading it: only the backend's own
  // wait keeps the first tensor right.
  basin::test::TempDir dir("raw-backend");
  const auto samples = write_samples(dir.path);  // 20 images: batches of 6, 6, 6, 2
  auto backend = basin::exec::make_gpu_backend();
  const int size = 64;
  bd::LoaderConfig c = config(bd::Transform::Kind::train, size), rc = c;
  c.shuffle = rc.shuffle = false;
  rc.output = bd::LoaderOutput::raw;
  bd::Loader floats(samples, c), raw(samples, rc);
  basin::exec::Tensor inputs[2] = {backend->alloc({6, 3, size, size}, basin::exec::Layout::plain),
                                   backend->alloc({6, 3, size, size}, basin::exec::Layout::plain)};
  for (int pair = 0; pair < 2; ++pair) {
    bd::Batch f[2], r[2];
    for (int k = 0; k < 2; ++k) {
      f[k] = floats.next(), r[k] = raw.next();
      backend->stage_input(r[k], c.transform.normalization, inputs[k]);
    }
    for (int k = 0; k < 2; ++k) {
      const int b = 2 * pair + k;
      CAPTURE(b);
      REQUIRE(r[k].size == (b < 3 ? 6 : 2));
      std::vector<float> staged(size_t(inputs[k].desc.elements()));
      backend->read_nchw(inputs[k], staged.data());
      REQUIRE(max_difference(f[k], staged, false) <= 1e-6);
      for (size_t i = size_t(r[k].size) * 3 * size * size; i < staged.size(); ++i) REQUIRE(staged[i] == 0.f);
    }
  }
}
#endif
