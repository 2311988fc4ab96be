// The loader's raw mode (LoaderOutput::raw), which only decodes and leaves crop, resample, flip
// and normalize to the input stage (kernels::input_stage_cpu / input_stage_gpu): for the same
// files, seed and position it must hand over the same samples as the float mode, and the input
// stage's CPU reference run on its regions must give the float mode's pixels. The float mode is
// the independent reference here: it was checked against torchvision's geometry and a whole-image
// decode on its own (transforms_test.cc, jpeg_region_test.cc).
#include "../catch.h"
#include "data_test_util.h"

#include <basin/kernels.h>

#include <algorithm>
#include <cmath>

using namespace basin::data;
using basin::data::test::ScratchDir;

namespace {

// Synthetic JPEGs of several sizes, odd ones among them, in one sample list, so that a batch
// mixes sizes and DCT scales; and one file that is not a JPEG (its slot gets substituted).
const std::vector<Sample>& mixed_samples() {
  static ScratchDir dir("raw");
  static std::vector<Sample> samples = [] {
    const int sizes[][2] = {{500, 375}, {97, 131}, {64, 64}, {333, 211}, {131, 97}, {250, 503}};
    std::vector<Sample> out;
    int n = 0;
    for (int i = 0; i < 24; ++i) {
      const auto [w, h] = sizes[i % 6];
      const auto path = dir.path / ("img" + std::to_string(n++) + ".JPEG");
      test::write_file(path, encode_jpeg(render_synth_image(i % 5, w, h, 1000 + i), 90));
      out.push_back({path.string(), i % 5});
    }
    const auto bad = dir.path / "broken.JPEG";
    test::write_text(bad, "not a jpeg");
    out.insert(out.begin() + 9, Sample{bad.string(), 3});
    return out;
  }();
  return samples;
}

// What the input stage reads: data's description of a region, field for field (exec converts
// the same way, exec/src/input_staging.cc).
std::vector<basin::kernels::SourceImage> sources_of(const Batch& b) {
  std::vector<basin::kernels::SourceImage> out;
  for (const RawImage& r : b.raw)
    out.push_back({r.offset, r.width, r.height, r.crop.x, r.crop.y, r.crop.width, r.crop.height, r.flip});
  return out;
}

struct Comparison {
  double max_abs = 0;
  long long values = 0, identical = 0;
};

// The float batch (CHW per image) against input_stage_cpu on the raw batch (NHWC).
Comparison compare(const Batch& f, const Batch& r, const Normalization& n) {
  basin::kernels::InputNormalization kn;
  for (int c = 0; c < 3; ++c) kn.mean[c] = n.mean[c], kn.std[c] = n.std[c];
  const int S = f.height;
  std::vector<float> nhwc(static_cast<size_t>(r.size) * S * S * 3);
  const auto sources = sources_of(r);
  basin::kernels::input_stage_cpu(r.rgb.data(), sources.data(), r.size, S, S, kn,
                                  basin::kernels::Precision::fp32, nhwc.data());
  Comparison out;
  for (int i = 0; i < f.size; ++i)
    for (int c = 0; c < 3; ++c)
      for (int y = 0; y < S; ++y)
        for (int x = 0; x < S; ++x) {
          const float a = f.pixels[((static_cast<size_t>(i) * 3 + c) * S + y) * S + x];
          const float b = nhwc[((static_cast<size_t>(i) * S + y) * S + x) * 3 + c];
          out.max_abs = std::max(out.max_abs, static_cast<double>(std::fabs(a - b)));
          out.identical += a == b;
          ++out.values;
        }
  return out;
}

}  // namespace

// The bound. The two paths pick the same taps with the same fp32 arithmetic in the same order;
// the one difference is where the sample position s = start + (i + 0.5) extent / n - 0.5 is
// computed: the float path in the DCT-scaled image's coordinates, the raw path in the region's,
// whose origin is shifted by an integer. Both round s once in double, at different magnitudes,
// so s - floor(s) can differ by an ulp of double (~1e-13 here), which after the cast to fp32
// changes the weight by one fp32 ulp at most, and only when that double lies next to an fp32
// rounding boundary. A weight off by 2^-24 moves a value by at most 255 * 2^-24 / (255 * std)
// ~ 2.7e-7 plus a rounding of the result (values are below 2.7, ulp 2.4e-7): 1e-6 bounds it.
// (If a weight's floor flips at an integer s, the taps change but the value is the same up to
// the same amounts.) Observed here: every value identical.
constexpr double kBound = 1e-6;

TEST_CASE("raw batches through the input stage equal the float batches", "[data][loader][raw]") {
  const auto& samples = mixed_samples();
  struct Case {
    const char* name;
    Transform::Kind kind;
    int size;
    DctScaling scaling;
    bool region;
  };
  const Case cases[] = {
      {"train, 56, fastest DCT scale, region decode", Transform::Kind::train, 56, DctScaling::fastest, true},
      {"train, 57, smallest DCT scale, region decode", Transform::Kind::train, 57, DctScaling::smallest, true},
      {"train, 96, no DCT scaling, region decode", Transform::Kind::train, 96, DctScaling::off, true},
      {"train, 45, smallest DCT scale, whole-image decode", Transform::Kind::train, 45, DctScaling::smallest, false},
      {"val, 56 of 64, smallest DCT scale, region decode", Transform::Kind::val, 56, DctScaling::smallest, true},
      {"val, 33 of 37, fastest DCT scale, whole-image decode", Transform::Kind::val, 33, DctScaling::fastest, false},
      {"val, 224 of 256, no DCT scaling, region decode", Transform::Kind::val, 224, DctScaling::off, true},
  };
  for (const Case& k : cases) {
    for (Position start : {Position{0, 0}, Position{1, 7}}) {
      CAPTURE(k.name, start.epoch, start.next_sample);
      LoaderConfig c;
      c.transform.kind = k.kind;
      c.transform.scaling = k.scaling;
      c.transform.region_decode = k.region;
      c.transform.train.output = k.size;
      c.transform.val.crop = k.size;
      c.transform.val.resize = k.size == 224 ? 256 : k.size == 56 ? 64 : 37;
      c.batch_size = 7;
      c.threads = 2;
      c.seed = 42;
      c.shuffle = k.kind == Transform::Kind::train;
      c.warn = [](const std::string&) {};
      LoaderConfig raw_c = c;
      raw_c.output = LoaderOutput::raw;
      Loader floats(samples, c, start), raw(samples, raw_c, start);
      int flipped = 0, images = 0, substituted = 0;
      long long identical = 0, values = 0;
      // 5 batches of 7 from 25 samples cross an epoch boundary and reach the corrupt file.
      for (int b = 0; b < 5; ++b) {
        CAPTURE(b);
        const Batch f = floats.next(), r = raw.next();
        REQUIRE(r.epoch == f.epoch);
        REQUIRE(r.first_sample == f.first_sample);
        REQUIRE(r.size == f.size);
        REQUIRE(r.samples == f.samples);
        REQUIRE(r.labels == f.labels);
        REQUIRE(r.substituted == f.substituted);
        REQUIRE(r.height == f.height);
        REQUIRE(r.width == f.width);
        REQUIRE(r.pixels.empty());
        REQUIRE(r.raw.size() == static_cast<size_t>(r.size));
        // The regions are packed back to back and fill the byte buffer exactly.
        size_t expected_offset = 0;
        for (const RawImage& im : r.raw) {
          REQUIRE(im.offset == expected_offset);
          expected_offset += static_cast<size_t>(im.width) * im.height * 3;
          flipped += im.flip;
        }
        REQUIRE(r.rgb.size() == expected_offset);
        REQUIRE(floats.position() == raw.position());
        const Comparison cmp = compare(f, r, c.transform.normalization);
        CAPTURE(cmp.max_abs, cmp.identical, cmp.values);
        REQUIRE(cmp.max_abs <= kBound);
        identical += cmp.identical;
        values += cmp.values;
        images += r.size;
        substituted += r.substituted;
      }
      // A weight one ulp off needs a double next to an fp32 rounding boundary: rare, so nearly
      // every value is the same bits (all of them, when this was written).
      REQUIRE(identical >= values * 999 / 1000);
      // From the start, the 5 batches cover the whole first epoch: the corrupt file was met
      // (and replaced alike in both modes, checked above) and named by both. (From a later
      // position it may lie beyond the batches taken, where the prefetching workers of one
      // loader may have found it and the other's not yet.)
      if (start.epoch == 0) {
        REQUIRE(substituted >= 1);
        REQUIRE(raw.stats().skipped_files.size() == 1);
        REQUIRE(raw.stats().skipped_files == floats.stats().skipped_files);
      }
      if (k.kind == Transform::Kind::train) {
        REQUIRE(flipped > 0);  // both directions were exercised
        REQUIRE(flipped < images);
      } else {
        REQUIRE(flipped == 0);
      }
    }
  }
}

TEST_CASE("a raw region is only what the resampling reads", "[data][raw]") {
  // A 320 x 240 image, Resize(48) + CenterCrop(40): resized to 64 x 48, the crop is (12, 4)
  // 40 x 40 there, (60, 20) 200 x 200 in source pixels (x5). DCT scale M = ceil(8 * 40 / 200)
  // = 2: the scaled image is 80 x 60 and the crop (15, 5) 50 x 50 of it. Output pixel i samples
  // 15 + (i + 0.5) * 50 / 40 - 0.5 = 15.125 + 1.25 i: taps 15 .. 63 + 1 for i = 0 .. 39, so the
  // region is columns 15..64 (50) and likewise rows 5..54 (50), with the crop at (0.0, 0.0).
  const auto jpeg = encode_jpeg(render_synth_image(1, 320, 240, 7), 90);
  Transform t;
  t.kind = Transform::Kind::val;
  t.val = {.resize = 48, .crop = 40};
  t.scaling = DctScaling::smallest;
  Rng rng{1};
  std::vector<std::uint8_t> rgb(5, 0);  // appended to, not replaced
  RawImage im;
  const SampleTrace trace = decode_sample(jpeg, t, rng, rgb, im);
  REQUIRE(trace.eighths == 2);
  REQUIRE(im.offset == 5);
  REQUIRE(im.width == 50);
  REQUIRE(im.height == 50);
  REQUIRE(rgb.size() == 5 + 50 * 50 * 3);
  REQUIRE(im.crop.width == Approx(50).epsilon(1e-12));
  REQUIRE(im.crop.height == Approx(50).epsilon(1e-12));
  REQUIRE(im.crop.x == 0.0);
  REQUIRE(im.crop.y == 0.0);
  REQUIRE(im.flip == false);
  // An unreadable file leaves the buffer as it was.
  const std::vector<std::uint8_t> junk{0xFF, 0xD8, 0x00};
  REQUIRE_THROWS_AS(decode_sample(junk, t, rng, rgb, im), DecodeError);
  REQUIRE(rgb.size() == 5 + 50 * 50 * 3);
}
