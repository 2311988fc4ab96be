// Micro-benchmarks of the JPEG input pipeline on ImageNet-like files (500 x 375 and 1000 x 750,
// 4:2:0, quality 90, and 470 x 390 at real ImageNet's bit rate), one core, in CPU time: a plain
// full-size TurboJPEG decode of the same file, timed in the same iteration, is the peer; every
// figure carries its ratio to it (`vs_full_decode`) and the cores it needs per 1,000 images/s.
// The pipeline runs with whole-image and region decoding; decoding alone at each DCT scale,
// region decoding alone, resampling alone, and the threaded loader over files complete the
// picture. BM_DecodeOnly sets the loader's raw mode (decode only, the GPU does the rest) against
// the float pipeline and turns both into cores needed per GPU (--gpu-images-per-s, an assumed
// rate: 3000 by default).
#include <basin/data.h>

#include <benchmark/benchmark.h>

#include <unistd.h>

#include <array>
#include <chrono>
#include <cmath>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <string>

namespace {

using namespace basin::data;

struct Size {
  int width, height, quality;
};
// ImageNet's typical photograph, one twice as large each way (ImageNet has many), and one with
// real ImageNet's bit rate: its train files average about 110 kB at about 470 x 390 (4.8
// bits/pixel), twice the entropy-coded data per pixel of the synthetic content at quality 90;
// quality 97 brings the same content there (110 kB on average).
constexpr std::array<Size, 3> kSizes{{{500, 375, 90}, {1000, 750, 90}, {470, 390, 97}}};
constexpr int kImages = 32;

// Synthetic photographs: shapes on tinted gradients with sensor-like noise, so that entropy
// decoding has photograph-like work (about 2 bits per pixel at quality 90).
const std::vector<std::vector<std::uint8_t>>& files(int size_index) {
  static std::array<std::vector<std::vector<std::uint8_t>>, kSizes.size()> jpegs;
  auto& out = jpegs[size_index];
  if (out.empty()) {
    const Size s = kSizes[size_index];
    for (int i = 0; i < kImages; ++i)
      out.push_back(encode_jpeg(render_synth_image(i % 16, s.width, s.height, sample_rng(7, size_index, i).next()),
                                s.quality));
  }
  return out;
}

double mean_file_kB(int size_index) {
  double sum = 0;
  for (const auto& f : files(size_index)) sum += f.size();
  return sum / kImages / 1000;
}

// This thread's CPU time: the machine is shared, and a single-threaded figure per core should
// not count the time other processes held the core.
double thread_cpu_s() {
  timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

// Every benchmark below times its subject and the peer (a plain full-size decode: accurate IDCT,
// fancy upsampling) on the same file in the same iteration, so the ratio does not drift with
// the load other processes put on the machine. The Time column counts both; the counters do not.
struct Timing {
  std::int64_t images = 0;
  double subject_s = 0, peer_s = 0;
};

template <class Subject>
Timing interleaved(benchmark::State& state, int size_index, Subject subject) {
  const auto& jpegs = files(size_index);
  Timing t;
  for (auto _ : state) {
    const auto& jpeg = jpegs[t.images % kImages];
    double t0 = thread_cpu_s();
    Image full = decode_jpeg(jpeg, 8);
    benchmark::DoNotOptimize(full.rgb.data());
    double t1 = thread_cpu_s();
    subject(jpeg, t.images);
    double t2 = thread_cpu_s();
    t.peer_s += t1 - t0;
    t.subject_s += t2 - t1;
    ++t.images;
  }
  double rate = t.images / t.subject_s;
  state.counters["img_per_cpu_s"] = rate;
  state.counters["peer_img_per_cpu_s"] = t.images / t.peer_s;
  state.counters["vs_full_decode"] = t.peer_s / t.subject_s;
  state.counters["cores_per_1k_img_s"] = 1000 / rate;
  return t;
}

std::string size_label(int size_index) {
  const Size s = kSizes[size_index];
  return std::to_string(s.width) + "x" + std::to_string(s.height) + (s.quality != 90 ? " q" + std::to_string(s.quality) : "");
}

// Decoding alone at each DCT scale M/8, plain or fast (fast IDCT + plain upsampling): what the
// `fastest` scale rule is built on. Arguments: size index, M, fast.
void BM_DecodeAtScale(benchmark::State& state) {
  const int size = static_cast<int>(state.range(0)), eighths = static_cast<int>(state.range(1));
  const bool fast = state.range(2) != 0;
  interleaved(state, size, [&](const std::vector<std::uint8_t>& jpeg, std::int64_t) {
    Image img = decode_jpeg(jpeg, eighths, fast);
    benchmark::DoNotOptimize(img.rgb.data());
  });
  state.counters["file_kB"] = mean_file_kB(size);
  state.SetLabel(size_label(size) + " at " + std::to_string(eighths) + "/8" + (fast ? ", fast" : ""));
}
BENCHMARK(BM_DecodeAtScale)
    ->ArgsProduct({{0, 1, 2}, {1, 2, 3, 4, 5, 6, 7, 8}, {0}})
    ->ArgsProduct({{0, 1, 2}, {8}, {1}})
    ->Unit(benchmark::kMicrosecond);

// The whole per-sample pipeline to 224 x 224 float CHW. Arguments: size index; 0 train / 1 val;
// DCT scaling (0 off, 1 smallest, 2 fastest); fast decode; region decode.
void BM_Pipeline(benchmark::State& state) {
  const int size = static_cast<int>(state.range(0));
  Transform t;
  t.kind = state.range(1) == 0 ? Transform::Kind::train : Transform::Kind::val;
  t.scaling = static_cast<DctScaling>(state.range(2));
  t.fast_decode = state.range(3) != 0;
  t.region_decode = state.range(4) != 0;
  std::vector<float> out(3 * 224 * 224);
  std::int64_t eighths = 0;
  Timing timing = interleaved(state, size, [&](const std::vector<std::uint8_t>& jpeg, std::int64_t i) {
    Rng rng = sample_rng(1, 0, i);
    eighths += load_sample(jpeg, t, rng, out.data()).eighths;
    benchmark::DoNotOptimize(out.data());
  });
  state.counters["mean_M_of_8"] = static_cast<double>(eighths) / timing.images;
  state.counters["file_kB"] = mean_file_kB(size);
  const char* scaling[] = {"full-size decode", "smallest M/8", "fastest M/8"};
  state.SetLabel(size_label(size) + (t.kind == Transform::Kind::train ? " train" : " val") + ", " +
                 scaling[state.range(2)] + (t.region_decode ? ", region" : ", whole image") +
                 (t.fast_decode ? ", fast" : ""));
}
BENCHMARK(BM_Pipeline)
    ->ArgsProduct({{0, 1, 2}, {0, 1}, {0, 2}, {0}, {0}})  // whole image (the former pipeline)
    ->ArgsProduct({{0, 1, 2}, {0, 1}, {0, 1, 2}, {0}, {1}})  // region decode (the default)
    ->ArgsProduct({{0, 1, 2}, {0, 1}, {2}, {1}, {1}})
    ->Unit(benchmark::kMicrosecond);

// Region decoding alone, of the rectangle the pipeline's default path decodes (the crop's
// bounding pixels plus the bilinear taps' one pixel, at the `fastest` M/8), without resampling:
// how far below the peer the decoding itself gets. Arguments: size index; 0 train / 1 val.
void BM_RegionDecode(benchmark::State& state) {
  const int size = static_cast<int>(state.range(0));
  Transform t;
  t.kind = state.range(1) == 0 ? Transform::Kind::train : Transform::Kind::val;
  interleaved(state, size, [&](const std::vector<std::uint8_t>& jpeg, std::int64_t i) {
    const JpegHeader h = read_jpeg_header(jpeg);
    Rng rng = sample_rng(1, 0, i);
    CropBox c = t.kind == Transform::Kind::train ? random_resized_crop(h.width, h.height, t.train, rng)
                                                  : resize_center_crop(h.width, h.height, t.val);
    const int m = fastest_eighths(scale_eighths_for(c.width, c.height, 224, 224));
    const double f = m / 8.0;
    const int x0 = static_cast<int>(c.x * f), y0 = static_cast<int>(c.y * f);
    const int x1 = static_cast<int>(std::ceil((c.x + c.width) * f)) + 1, y1 = static_cast<int>(std::ceil((c.y + c.height) * f)) + 1;
    ImageRegion r = decode_jpeg_region(jpeg, m, x0, y0, x1 - x0, y1 - y0);
    benchmark::DoNotOptimize(r.pixels.rgb.data());
  });
  state.SetLabel(size_label(size) + (t.kind == Transform::Kind::train ? " train" : " val") + ", region decode only");
}
BENCHMARK(BM_RegionDecode)->ArgsProduct({{0, 1, 2}, {0, 1}})->Unit(benchmark::kMicrosecond);

// Resampling alone (crop to 224 x 224 float CHW) from a full decode made outside the timing:
// the pipeline's share that is not decoding. Arguments: size index; 0 train / 1 val.
void BM_Resample(benchmark::State& state) {
  const int size = static_cast<int>(state.range(0));
  Transform t;
  t.kind = state.range(1) == 0 ? Transform::Kind::train : Transform::Kind::val;
  std::vector<Image> decoded;
  for (const auto& jpeg : files(size)) decoded.push_back(decode_jpeg(jpeg, 8));
  std::vector<float> out(3 * 224 * 224);
  interleaved(state, size, [&](const std::vector<std::uint8_t>&, std::int64_t i) {
    const Image& img = decoded[i % kImages];
    Rng rng = sample_rng(1, 0, i);
    CropBox crop = t.kind == Transform::Kind::train ? random_resized_crop(img.width, img.height, t.train, rng)
                                                     : resize_center_crop(img.width, img.height, t.val);
    resample_normalize(img, crop, 224, 224, (i & 1) != 0, t.normalization, out.data());
    benchmark::DoNotOptimize(out.data());
  });
  state.SetLabel(size_label(size) + (t.kind == Transform::Kind::train ? " train" : " val") + ", resample only");
}
BENCHMARK(BM_Resample)->ArgsProduct({{0, 1}, {0, 1}})->Unit(benchmark::kMicrosecond);

// Assumed images/s of the GPU that the decode threads feed (--gpu-images-per-s, default 3000): a
// placeholder until a GPU run measures the real figure; the counters below scale with it.
double g_gpu_images_per_s = 3000;

// Decode-only (the loader's raw mode, decode_sample: the GPU does crop, resample, flip and
// normalize) against the whole float pipeline (load_sample) on the same file with the same
// random stream, timed in the same iteration in this thread's CPU time, to 224 x 224 with the
// default transform (region decode, `fastest` DCT scale). Counters: images per CPU-second
// (= per core) of each, their ratio, the cores each needs to feed the assumed GPU rate, and the
// bytes per image the raw mode uploads (and the host-to-device bandwidth that makes at that
// rate). Arguments: size index; 0 train / 1 val.
void BM_DecodeOnly(benchmark::State& state) {
  const int size = static_cast<int>(state.range(0));
  Transform t;
  t.kind = state.range(1) == 0 ? Transform::Kind::train : Transform::Kind::val;
  const auto& jpegs = files(size);
  std::vector<float> out(3 * 224 * 224);
  std::vector<std::uint8_t> rgb;
  RawImage raw;
  std::int64_t images = 0;
  double raw_s = 0, float_s = 0, raw_bytes = 0;
  for (auto _ : state) {
    const auto& jpeg = jpegs[images % kImages];
    rgb.clear();
    Rng a = sample_rng(1, 0, images), b = a;
    const double t0 = thread_cpu_s();
    decode_sample(jpeg, t, a, rgb, raw);
    benchmark::DoNotOptimize(rgb.data());
    const double t1 = thread_cpu_s();
    load_sample(jpeg, t, b, out.data());
    benchmark::DoNotOptimize(out.data());
    const double t2 = thread_cpu_s();
    raw_s += t1 - t0;
    float_s += t2 - t1;
    raw_bytes += static_cast<double>(rgb.size());
    ++images;
  }
  const double raw_rate = images / raw_s, float_rate = images / float_s;
  state.counters["raw_img_per_cpu_s"] = raw_rate;
  state.counters["float_img_per_cpu_s"] = float_rate;
  state.counters["raw_vs_float"] = raw_rate / float_rate;
  state.counters["gpu_img_per_s_assumed"] = g_gpu_images_per_s;
  state.counters["cores_raw"] = g_gpu_images_per_s / raw_rate;
  state.counters["cores_float"] = g_gpu_images_per_s / float_rate;
  state.counters["raw_kB_per_img"] = raw_bytes / images / 1000;
  state.counters["upload_GB_per_s"] = raw_bytes / images * g_gpu_images_per_s / 1e9;
  state.SetLabel(size_label(size) + (t.kind == Transform::Kind::train ? " train" : " val") +
                 ", decode-only vs float pipeline; cores_* feed an ASSUMED " +
                 std::to_string(static_cast<int>(g_gpu_images_per_s)) + " img/s GPU");
}
BENCHMARK(BM_DecodeOnly)->ArgsProduct({{0, 1, 2}, {0, 1}})->Unit(benchmark::kMicrosecond);

// The loader over 500 x 375 files on disk (page cache), batches of 32, N threads: wall-clock
// images/s, which on a shared machine also counts other processes' use of the cores.
// Arguments: threads; 0 float batches / 1 raw (decode-only) batches.
void BM_Loader(benchmark::State& state) {
  static const std::vector<Sample> samples = [] {
    auto dir = std::filesystem::temp_directory_path() / ("basin-data-bench-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    std::vector<Sample> s;
    for (int i = 0; i < kImages; ++i) {
      auto path = dir / (std::to_string(i) + ".JPEG");
      std::ofstream(path, std::ios::binary)
          .write(reinterpret_cast<const char*>(files(0)[i].data()), static_cast<std::streamsize>(files(0)[i].size()));
      s.push_back({path.string(), i % 16});
    }
    return s;
  }();
  LoaderConfig c;
  c.batch_size = 32;
  c.threads = static_cast<int>(state.range(0));
  c.output = state.range(1) != 0 ? LoaderOutput::raw : LoaderOutput::normalized;
  Loader loader(samples, c);
  std::int64_t n = 0;
  auto t0 = std::chrono::steady_clock::now();
  for (auto _ : state) n += loader.next().size;
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  state.SetItemsProcessed(n);
  state.counters["img_per_s"] = n / seconds;
  state.counters["wait_s"] = loader.stats().wait_seconds;
  state.SetLabel(std::string(state.range(1) != 0 ? "raw (decode only)" : "float") + ", wall clock");
}
BENCHMARK(BM_Loader)->ArgsProduct({{1, 2}, {0, 1}})->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

// Google Benchmark's main, plus one flag of our own taken out before it parses the rest.
int main(int argc, char** argv) {
  const std::string flag = "--gpu-images-per-s=";
  int kept = 1;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a.rfind(flag, 0) == 0) g_gpu_images_per_s = std::stod(a.substr(flag.size()));
    else argv[kept++] = argv[i];
  }
  argc = kept;
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
