// Region decoding (libjpeg's API: cropped columns, skipped rows, stopped early) against the
// independent reference of a full TurboJPEG decode of the same file: the region's pixels must be
// the full image's pixels at the same places, exactly, for baseline and progressive files, every
// chroma subsampling, every DCT scale, accurate and fast decoding, and crops at odd positions.
// The pipeline built on it must give the same floats as the whole-image path, and bad files
// must still be refused.
#include "../catch.h"
#include "data_test_util.h"

#include <turbojpeg.h>

using namespace basin::data;

namespace {

// Photograph-like content (shapes, gradients, noise) compressed with TurboJPEG's encoder at the
// given subsampling, baseline or progressive.
std::vector<std::uint8_t> encode(const Image& img, int subsampling, bool progressive) {
  tjhandle tj = tjInitCompress();
  unsigned char* buffer = nullptr;
  unsigned long size = 0;
  int rc = tjCompress2(tj, img.rgb.data(), img.width, 0, img.height, TJPF_RGB, &buffer, &size, subsampling, 90,
                       progressive ? TJFLAG_PROGRESSIVE : 0);
  std::vector<std::uint8_t> jpeg;
  if (rc == 0) jpeg.assign(buffer, buffer + size);
  tjFree(buffer);
  tjDestroy(tj);
  REQUIRE(rc == 0);
  return jpeg;
}

// The number of requested pixels whose value in the region differs from the full decode's at the
// same place, after checking that the region covers the request (clipped to the image).
int mismatches(const Image& full, const ImageRegion& r, int x, int y, int w, int h) {
  REQUIRE(r.full_width == full.width);
  REQUIRE(r.full_height == full.height);
  const int x_end = std::min(x + w, full.width), y_end = std::min(y + h, full.height);
  REQUIRE(r.x <= x);
  REQUIRE(r.y <= y);
  REQUIRE(r.x + r.pixels.width >= x_end);
  REQUIRE(r.y + r.pixels.height >= y_end);
  int bad = 0;
  for (int row = y; row < y_end; ++row)
    for (int col = x; col < x_end; ++col)
      for (int c = 0; c < 3; ++c)
        bad += r.pixels.rgb[(static_cast<size_t>(row - r.y) * r.pixels.width + (col - r.x)) * 3 + c] !=
               full.rgb[(static_cast<size_t>(row) * full.width + col) * 3 + c];
  return bad;
}

}  // namespace

TEST_CASE("a decoded region is exactly the full decode's pixels there", "[data][jpeg][region]") {
  // 301 x 227: odd sizes, so the last iMCU column and row are partial at every scale.
  const Image source = render_synth_image(5, 301, 227, 42);
  const bool progressive = GENERATE(false, true);
  const int subsampling = GENERATE(TJSAMP_420, TJSAMP_422, TJSAMP_444, TJSAMP_GRAY);
  const bool fast = GENERATE(false, true);
  CAPTURE(progressive, subsampling, fast);
  const std::vector<std::uint8_t> jpeg = encode(source, subsampling, progressive);
  struct Crop {
    int x, y, w, h;  // in full-size pixels, scaled with the image
  };
  // Odd offsets and sizes; one touching the bottom-right corner, one the top-left, a single
  // pixel, and the whole image.
  const Crop crops[] = {{37, 29, 151, 97}, {0, 0, 17, 13}, {150, 110, 151, 117}, {201, 3, 1, 1},
                        {1, 1, 299, 225},  {0, 0, 301, 227}, {99, 151, 64, 75}};
  for (int m = 1; m <= 8; ++m) {
    const Image full = decode_jpeg(jpeg, m, fast);
    for (const Crop& c : crops) {
      const int x = c.x * m / 8, y = c.y * m / 8;
      const int w = std::max(1, c.w * m / 8), h = std::max(1, c.h * m / 8);
      CAPTURE(m, x, y, w, h);
      ImageRegion r = decode_jpeg_region(jpeg, m, x, y, w, h, fast);
      REQUIRE(mismatches(full, r, x, y, w, h) == 0);
    }
  }
}

TEST_CASE("a region is the request widened by whole iMCUs on the left and one column right", "[data][jpeg][region]") {
  // Columns 40..139 requested: libjpeg decodes from column 39 (one to spare for the upsampling's
  // edge) rounded down to its iMCU boundary (16 pixels for 4:2:0 at full size), 32, to 140
  // inclusive; rows exactly as asked.
  const std::vector<std::uint8_t> jpeg = encode_jpeg(render_synth_image(1, 320, 240, 3), 90);
  ImageRegion r = decode_jpeg_region(jpeg, 8, 40, 50, 100, 60);
  REQUIRE(r.x == 32);
  REQUIRE(r.x + r.pixels.width == 141);
  REQUIRE(r.y == 50);
  REQUIRE(r.pixels.height == 60);
  // At the image's edges nothing is added: the whole image is the whole image.
  ImageRegion all = decode_jpeg_region(jpeg, 8, 0, 0, 320, 240);
  REQUIRE(all.x == 0);
  REQUIRE(all.pixels.width == 320);
  REQUIRE(all.pixels.height == 240);
}

TEST_CASE("the pipeline gives the same floats with region and whole-image decoding", "[data][jpeg][region]") {
  // The region path plans the taps from the header and decodes only what they read; the
  // whole-image path decodes everything through TurboJPEG. Same draws, same pixels: same floats.
  const std::vector<std::uint8_t> jpegs[] = {encode(render_synth_image(2, 500, 375, 1), TJSAMP_420, false),
                                             encode(render_synth_image(9, 333, 500, 2), TJSAMP_420, true),
                                             encode(render_synth_image(4, 1000, 750, 3), TJSAMP_422, false)};
  const Transform::Kind kind = GENERATE(Transform::Kind::train, Transform::Kind::val);
  const DctScaling scaling = GENERATE(DctScaling::off, DctScaling::smallest, DctScaling::fastest);
  const bool fast = GENERATE(false, true);
  Transform region, whole;
  region.kind = whole.kind = kind;
  region.scaling = whole.scaling = scaling;
  region.fast_decode = whole.fast_decode = fast;
  whole.region_decode = false;
  std::vector<float> a(3 * 224 * 224), b(3 * 224 * 224);
  for (const auto& jpeg : jpegs)
    for (int i = 0; i < 12; ++i) {
      Rng ra = sample_rng(5, 0, i), rb = sample_rng(5, 0, i);
      SampleTrace ta = load_sample(jpeg, region, ra, a.data());
      SampleTrace tb = load_sample(jpeg, whole, rb, b.data());
      CAPTURE(i, ta.eighths, ta.crop.x, ta.crop.y, ta.crop.width, ta.crop.height);
      REQUIRE(ta.eighths == tb.eighths);
      REQUIRE(ta.flipped == tb.flipped);
      REQUIRE(ra.state == rb.state);  // the same draws
      REQUIRE(a == b);
    }
}

TEST_CASE("region decoding refuses what is not a whole JPEG and recovers after it", "[data][jpeg][region]") {
  const std::vector<std::uint8_t> good = encode_jpeg(render_synth_image(3, 96, 80, 5), 90);
  Transform t;
  std::vector<float> out(3 * 224 * 224);
  auto load = [&](std::span<const std::uint8_t> bytes) {
    Rng rng{1};
    return load_sample(bytes, t, rng, out.data());
  };
  REQUIRE_THROWS_AS(load({}), DecodeError);
  const std::vector<std::uint8_t> png{0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 13};
  REQUIRE_THROWS_WITH(load(png), Catch::Matchers::StartsWith("not a JPEG: ") &&
                                     Catch::Matchers::Contains("Not a JPEG file"));
  // Cut anywhere, the file is refused (even when the crop ends above the cut: no end marker),
  // and the thread's decompressor then decodes the whole file.
  for (size_t cut = 1; cut < good.size(); cut += 7) {
    CAPTURE(cut);
    REQUIRE_THROWS_AS(load(std::span(good).first(cut)), DecodeError);
    REQUIRE(load(good).width == 96);
  }
  // Cut inside its header, a JPEG is named a truncated one, not another kind of file.
  REQUIRE_THROWS_WITH(load(std::span(good).first(40)), Catch::Matchers::StartsWith("truncated JPEG: "));
  // A file cut short whose bytes still hold an end marker (here in an APP15 segment, as in an
  // EXIF thumbnail): libjpeg itself runs out of data inside the region and says so.
  std::vector<std::uint8_t> marked{0xFF, 0xD8, 0xFF, 0xEF, 0x00, 0x04, 0xFF, 0xD9};
  marked.insert(marked.end(), good.begin() + 2, good.begin() + static_cast<long>(good.size() / 2));
  REQUIRE_THROWS_WITH(decode_jpeg_region(marked, 8, 0, 0, 96, 80),
                      Catch::Matchers::StartsWith("corrupt JPEG: ") && Catch::Matchers::Contains("Premature end"));
  REQUIRE(decode_jpeg_region(good, 8, 0, 0, 96, 80).pixels.width == 96);
  // Entropy-coded data that hits a marker early is a warning to both decoders, which fill the
  // rest with grey alike: the region decoder accepts what the whole-image decoder accepts.
  std::vector<std::uint8_t> spliced(good.begin(), good.begin() + static_cast<long>(good.size() / 2));
  spliced.push_back(0xFF);
  spliced.push_back(0xD9);
  const Image whole = decode_jpeg(spliced);
  REQUIRE(mismatches(whole, decode_jpeg_region(spliced, 8, 0, 0, 96, 80), 0, 0, 96, 80) == 0);
}

TEST_CASE("region decoding turns CMYK into RGB as the whole-image decoder does", "[data][jpeg][region]") {
  const int w = 48, h = 32;
  std::vector<std::uint8_t> cmyk(static_cast<size_t>(w) * h * 4);
  for (size_t i = 0; i < cmyk.size(); ++i) cmyk[i] = static_cast<std::uint8_t>((i * 37) % 256);
  const std::vector<std::uint8_t> jpeg = test::encode_cmyk_jpeg(cmyk, w, h);
  Image full = decode_jpeg(jpeg);
  ImageRegion r = decode_jpeg_region(jpeg, 8, 9, 5, 20, 11);
  REQUIRE(mismatches(full, r, 9, 5, 20, 11) == 0);
}
