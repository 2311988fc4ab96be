// basin data: the ImageNet-layout JPEG input pipeline.
//
// This is the one public header of the data layer. The executor feeds its trainers through it:
// an ImageNet folder tree (root/train/<class>/*.JPEG, root/val/<class>/*.JPEG) is scanned into
// samples, each sample is decoded with libjpeg-turbo (DCT-scaled where the crop allows) and
// augmented the way torchvision's reference recipe does (RandomResizedCrop + flip for training,
// resize + center crop for validation), and a multi-threaded loader hands out batches whose
// content depends only on (seed, epoch, position), never on the number of threads. It also
// writes small synthetic datasets in the same layout for tests and demos. It depends on no other
// basin layer.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace basin::data {

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

// Bad input (a folder, a flag): names where it came from, the field and what was expected.
// The command line maps it to exit code 2, as it does the topology layer's InputError.
struct InputError : std::runtime_error {
  InputError(std::string origin, std::string field, std::string expected);
  std::string origin;    // a path, or a flag such as "--classes"
  std::string field;     // what inside it ("train/", "class directories"), or ""
  std::string expected;  // what was expected, and what was found
};

// A file that is not a decodable JPEG. The loader skips such files; direct callers see this.
struct DecodeError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// ---------------------------------------------------------------------------------------------
// The ImageNet folder layout
// ---------------------------------------------------------------------------------------------

struct Sample {
  std::string path;
  int label = 0;  // index into ImageFolder::classes
};

// One split: class names sorted byte-wise (torchvision's ImageFolder order), so the label of a
// class is the same in train/ and val/ and the same as PyTorch's.
struct ImageFolder {
  std::filesystem::path dir;
  std::vector<std::string> classes;
  std::vector<Sample> samples;  // sorted by class, then by file name
};

struct ImageNetLayout {
  std::filesystem::path root;
  ImageFolder train, val;
};

// .JPEG, .jpg, .jpeg in any letter case.
bool is_jpeg_name(std::string_view filename);
// Scans one split. Throws InputError for a missing directory, one without class directories, or
// a class directory without JPEG images (as torchvision's ImageFolder refuses it).
ImageFolder scan_image_folder(const std::filesystem::path& dir);
// Scans root/train and root/val and checks that val has exactly train's classes.
// `with_val` false: a root without val/ is accepted (a run that does not validate), its val empty.
ImageNetLayout open_imagenet(const std::filesystem::path& root, bool with_val = true);

// ---------------------------------------------------------------------------------------------
// JPEG (libjpeg-turbo's TurboJPEG API)
// ---------------------------------------------------------------------------------------------

// 8-bit RGB, rows top to bottom, pixels interleaved (HWC).
struct Image {
  int width = 0, height = 0;
  std::vector<std::uint8_t> rgb;
};

struct JpegHeader {
  int width = 0, height = 0;
};

// Throws DecodeError when the bytes do not start a JPEG.
JpegHeader read_jpeg_header(std::span<const std::uint8_t> jpeg);
// The smallest DCT scaling factor M/8 (M in 1..8) at which a crop of crop_w x crop_h source
// pixels still spans at least out_w x out_h pixels: M = ceil(8 * max(out_w/crop_w,
// out_h/crop_h)), clamped to 1..8. Returns M.
int scale_eighths_for(double crop_w, double crop_h, int out_w, int out_h);
// Size of a width x height image decoded at M/8 (libjpeg rounds up).
int scaled_size(int size, int eighths);
// Decodes at M/8 of full size. Grayscale and CMYK files come out as RGB. A truncated file is an
// error (as Pillow treats it); libjpeg's other warnings (extraneous bytes) are not. `fast`:
// TurboJPEG's fast integer IDCT and plain (non-fancy) chroma upsampling.
Image decode_jpeg(std::span<const std::uint8_t> jpeg, int eighths = 8, bool fast = false);
// Part of an image decoded at M/8 (libjpeg's API: only the rows down to the region's last one
// are entropy-decoded, and only the region's columns, widened to whole iMCUs, are inverse-DCT'd,
// upsampled and colour-converted).
struct ImageRegion {
  Image pixels;                        // the decoded rectangle
  int x = 0, y = 0;                    // its top-left corner in the scaled image
  int full_width = 0, full_height = 0;  // the scaled image's size
};
// Decodes at M/8 at least the columns [x, x + w) and rows [y, y + h) of the scaled image (the
// request is clipped to it). Inside the request the pixels are exactly decode_jpeg(jpeg,
// eighths, fast)'s at the same places (tests/data/jpeg_region_test.cc); the columns libjpeg adds
// around it (up to an iMCU on the left, one on the right) may differ at the region's edges. Same
// errors as decode_jpeg: a file without an end-of-image marker counts as truncated even when the
// region ends above the cut.
ImageRegion decode_jpeg_region(std::span<const std::uint8_t> jpeg, int eighths, int x, int y, int w, int h,
                               bool fast = false);
// 4:2:0 chroma subsampling, the way nearly all ImageNet photographs are stored.
std::vector<std::uint8_t> encode_jpeg(const Image& image, int quality = 90);
// The whole file; throws DecodeError naming it when it cannot be read.
std::vector<std::uint8_t> read_file(const std::string& path);

// ---------------------------------------------------------------------------------------------
// Random numbers: one stream per sample, a pure function of (seed, epoch, position)
// ---------------------------------------------------------------------------------------------

// SplitMix64 (Steele, Lea, Flood 2014). Written out rather than taken from <random> so that the
// same seed gives the same augmentations with every standard library.
struct Rng {
  std::uint64_t state = 0;
  std::uint64_t next();
  double uniform();                          // [0, 1)
  double uniform(double lo, double hi);      // [lo, hi)
  std::int64_t integer(std::int64_t n);      // 0 .. n-1, n > 0
};
Rng sample_rng(std::uint64_t seed, std::int64_t epoch, std::int64_t position);

// ---------------------------------------------------------------------------------------------
// Transforms
// ---------------------------------------------------------------------------------------------

// A region of the source image in source pixels; fractional where a resize maps it there.
struct CropBox {
  double x = 0, y = 0, width = 0, height = 0;
};

// torchvision.transforms.RandomResizedCrop + RandomHorizontalFlip.
struct TrainAugment {
  int output = 224;
  double min_scale = 0.08, max_scale = 1.0;             // of the image area
  double min_ratio = 3.0 / 4.0, max_ratio = 4.0 / 3.0;  // width / height, drawn log-uniform
  double flip_probability = 0.5;
};

// torchvision.transforms.Resize(resize) + CenterCrop(crop).
struct ValTransform {
  int resize = 256;  // the shorter side
  int crop = 224;
};

struct Normalization {  // ImageNet's, on [0, 1] pixel values
  std::array<float, 3> mean{0.485f, 0.456f, 0.406f};
  std::array<float, 3> std{0.229f, 0.224f, 0.225f};
};

// How load_sample picks the DCT scale. `smallest`: scale_eighths_for's M. `fastest` (default):
// the same, except that 5/8, 6/8 and 7/8 become 8/8: libjpeg-turbo 2.1 runs those inverse DCTs
// in plain C, slower than its SIMD full-size path (measured in reports/data-pipeline-*.md).
// `off`: always full size (the benchmark's comparison).
enum class DctScaling { off, smallest, fastest };
int fastest_eighths(int smallest_eighths);  // 1..4 stay, 5..8 become 8

struct Transform {
  enum class Kind { train, val } kind = Kind::train;
  TrainAugment train;
  ValTransform val;
  Normalization normalization;
  // TurboJPEG's fast integer IDCT and non-fancy chroma upsampling: faster, slightly less exact.
  bool fast_decode = false;
  DctScaling scaling = DctScaling::fastest;
  // Decode only the crop's region (decode_jpeg_region) rather than the whole image: the same
  // pixels, less work. Off: the whole image through TurboJPEG (the benchmark's comparison).
  bool region_decode = true;
  int output_size() const { return kind == Kind::train ? train.output : val.crop; }
};

// torchvision's algorithm: 10 attempts at a random area and log-uniform aspect ratio, integer
// sizes rounded, then the center crop at the nearest allowed ratio. Integer box.
CropBox random_resized_crop(int width, int height, const TrainAugment& a, Rng& rng);
// The source region that Resize(resize) then CenterCrop(crop) shows, with torchvision's rounding.
CropBox resize_center_crop(int width, int height, const ValTransform& v);

// Bilinear resampling (pixel centres at +0.5, edges clamped: OpenCV's INTER_LINEAR, PyTorch's
// align_corners=False without antialiasing) of `crop` (in `image`'s pixels) to out_w x out_h,
// mirrored left-right when `flip`, normalized, written as float CHW to `out`.
void resample_normalize(const Image& image, const CropBox& crop, int out_w, int out_h, bool flip,
                        const Normalization& n, float* out);
// Bilinear resampling to 8-bit RGB (tests and the benchmark's reference path).
Image resample(const Image& image, const CropBox& crop, int out_w, int out_h);

// What one sample's transform did, for tests and statistics.
struct SampleTrace {
  int width = 0, height = 0;  // of the source
  CropBox crop;               // in source pixels
  bool flipped = false;
  int eighths = 8;            // DCT scaling used
};

// Decodes one JPEG and applies `t` with `rng`: output_size^2 x 3 floats, CHW, into `out`.
// Throws DecodeError for a file that is not a decodable JPEG.
SampleTrace load_sample(std::span<const std::uint8_t> jpeg, const Transform& t, Rng& rng,
                        float* out);

// One sample of a raw batch (LoaderOutput::raw): the decoded source pixels that the float path
// resamples, and where. Resampling `crop` of this region with the rules of resample_normalize
// (kernels::input_stage_cpu / input_stage_gpu follow them) gives load_sample's floats.
struct RawImage {
  size_t offset = 0;          // into the batch's rgb bytes: the region's first pixel
  int width = 0, height = 0;  // 8-bit RGB, rows of width * 3 bytes back to back
  CropBox crop;               // in the region's pixels (the DCT-scaled image's, shifted)
  bool flip = false;          // mirrored left-right after the crop
};

// load_sample's work up to the resampling: the same random draws, DCT scale and region decode,
// then only the source rectangle the bilinear taps read (nothing more) appended to `rgb`, and
// `image` describing it. On DecodeError `rgb` is left as it was.
SampleTrace decode_sample(std::span<const std::uint8_t> jpeg, const Transform& t, Rng& rng,
                          std::vector<std::uint8_t>& rgb, RawImage& image);

// ---------------------------------------------------------------------------------------------
// The loader
// ---------------------------------------------------------------------------------------------

// Where a rank is in its stream of samples: the epoch and the next sample of its shard. Saved
// with a checkpoint and passed back to resume exactly.
struct Position {
  std::int64_t epoch = 0;
  std::int64_t next_sample = 0;
  bool operator==(const Position&) const = default;
};

// What a batch carries. `normalized`: float CHW images, ready for a network. `raw`: the workers
// only decode (decode_sample), and a later input stage on the GPU crops, resamples, flips and
// normalizes (exec feeds kernels::input_stage_gpu from it); the same samples in the same order.
enum class LoaderOutput { normalized, raw };

struct LoaderConfig {
  Transform transform;
  LoaderOutput output = LoaderOutput::normalized;
  int batch_size = 32;
  int threads = 4;
  int prefetch_batches = 0;  // ready batches kept ahead; 0: twice the threads
  std::uint64_t seed = 0;
  bool shuffle = true;       // a fresh permutation every epoch (false: file order)
  int rank = 0, world_size = 1;
  bool drop_last = false;    // drop an epoch's last, short batch
  // Called once per unreadable file, from a worker thread; default: a line on stderr.
  std::function<void(const std::string& message)> warn;
};

struct Batch {
  std::int64_t epoch = 0;
  std::int64_t first_sample = 0;  // position in the shard of the first image
  int size = 0, channels = 3, height = 0, width = 0;
  std::vector<float> pixels;            // size x channels x height x width; empty when raw
  // LoaderOutput::raw: the decoded regions packed back to back, and per image where its region
  // is and what to do with it (height x width is still the output size). Empty when normalized.
  std::vector<std::uint8_t> rgb;
  std::vector<RawImage> raw;
  std::vector<int> labels;
  std::vector<std::int64_t> samples;    // index into the sample list, per image
  int substituted = 0;                  // slots filled from a later sample (unreadable files)
  std::vector<std::uint8_t> stand_in;   // per image: 1 where it fills an unreadable file's slot
};

struct LoaderStats {
  std::int64_t batches = 0, images = 0;
  double wait_seconds = 0;                  // next() blocked waiting for a batch
  std::int64_t substitutions = 0;           // in the batches returned so far
  // Each unreadable file once, in discovery order; workers run ahead, so this can name files of
  // batches not yet returned.
  std::vector<std::string> skipped_files;
};

// The permutation of an epoch (identity without shuffle) and a rank's share of it: positions
// rank, rank + world, rank + 2 world, ... so shards are disjoint, cover the epoch and differ in
// size by at most one.
std::vector<std::int64_t> epoch_order(std::int64_t n, std::uint64_t seed, std::int64_t epoch,
                                      bool shuffle);
std::int64_t shard_size(std::int64_t n, int rank, int world_size);

// N worker threads build whole batches ahead of the consumer into a bounded window. A corrupt,
// unreadable or non-JPEG file is reported once through `warn`, counted, and its slot is filled
// by the next readable sample of the shard (wrapping), transformed with the slot's own random
// stream, so batches stay full and their content does not depend on thread timing.
class Loader {
 public:
  Loader(std::vector<Sample> samples, LoaderConfig config, Position start = {});
  ~Loader();
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;

  Batch next();                 // blocks until the next batch is ready
  Position position() const;    // just after the last batch next() returned
  LoaderStats stats() const;
  std::int64_t shard_size() const;
  std::int64_t batches_per_epoch() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// ---------------------------------------------------------------------------------------------
// Synthetic datasets
// ---------------------------------------------------------------------------------------------

// Each class is one combination of a hue (8), a shape or stripe orientation (8) and a fill
// (solid or checkered): up to 128 classes. Every image jitters position, size, rotation and
// colour and adds a random background and noise, so the task is learnable but not trivial.
constexpr int kMaxSynthClasses = 128;

struct SynthConfig {
  int classes = 10;
  int train_per_class = 100, val_per_class = 20;
  int width = 64, height = 64;
  std::uint64_t seed = 0;
  int quality = 90;
};

std::string synth_class_name(int label);  // "c007_blue_triangle_solid": sorts in label order
Image render_synth_image(int label, int width, int height, std::uint64_t image_seed);
// Writes out/train/<class>/*.JPEG and out/val/<class>/*.JPEG through a temporary sibling
// directory renamed into place at the end: no partial dataset on failure. Refuses an existing
// non-empty `out` unless `force`. `progress(done, total)` is called after each image.
void write_synth_dataset(const std::filesystem::path& out, const SynthConfig& config, bool force,
                         const std::function<void(int done, int total)>& progress = {});

}  // namespace basin::data
