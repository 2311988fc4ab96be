// JPEG decoding and encoding through libjpeg-turbo's TurboJPEG API, with DCT-domain scaling.
// (Decoding only a crop's region goes through the libjpeg API instead: jpeg_region.cc.)
//
// libjpeg can run its inverse DCT at M/8 of full size (M = 1..8) for less work than a full
// decode followed by a resize; the pipeline asks for the smallest M whose image still covers the
// crop at the output resolution, so the remaining resize never upsamples what a full decode
// would have resolved. One TurboJPEG handle per thread, reused.
#include "jpeg_internal.h"

#include <turbojpeg.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>

namespace basin::data {
namespace {

struct Handle {
  tjhandle h = nullptr;
  explicit Handle(tjhandle handle) : h(handle) {
    if (!h) throw std::runtime_error(std::string("TurboJPEG: cannot create a handle: ") + tjGetErrorStr2(nullptr));
  }
  ~Handle() { tjDestroy(h); }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
};

std::unique_ptr<Handle>& decompressor_slot() {
  thread_local std::unique_ptr<Handle> handle;
  return handle;
}

tjhandle decompressor() {
  std::unique_ptr<Handle>& slot = decompressor_slot();
  if (!slot) slot = std::make_unique<Handle>(tjInitDecompress());
  return slot->h;
}

// TurboJPEG 2.1 can leave a handle mid-stream after a fatal error in tjDecompressHeader3 (a
// header cut inside a Huffman table), and the next, good file then fails too. A fresh handle
// after every error keeps one bad file from condemning the ones after it.
[[noreturn]] void fail(const std::string& prefix) {
  std::string why = prefix + tjGetErrorStr2(decompressor());
  decompressor_slot().reset();
  throw DecodeError(why);
}

tjhandle compressor() {
  thread_local Handle handle(tjInitCompress());
  return handle.h;
}

struct FullHeader {
  int width = 0, height = 0, subsampling = 0, colorspace = 0;
};

FullHeader header_of(std::span<const std::uint8_t> jpeg) {
  FullHeader h;
  if (jpeg.empty()) throw DecodeError("not a JPEG: the file is empty");
  if (tjDecompressHeader3(decompressor(), jpeg.data(), static_cast<unsigned long>(jpeg.size()),
                          &h.width, &h.height, &h.subsampling, &h.colorspace) != 0)
    fail(std::string(tjGetErrorStr2(decompressor())).find("Premature end") != std::string::npos ? "truncated JPEG: "
                                                                                                : "not a JPEG: ");
  if (h.width <= 0 || h.height <= 0) throw DecodeError("not a JPEG: zero-sized image");
  return h;
}

}  // namespace

// libjpeg-turbo stores CMYK inverted (Adobe's convention), so white paper is C = M = Y = K = 255
// and each colour channel is the ink's complement times K (its cmyk_to_rgb in cdjpeg.h).
void cmyk_to_rgb(const std::uint8_t* cmyk, std::uint8_t* rgb, size_t pixels) {
  for (size_t i = 0; i < pixels; ++i) {
    unsigned k = cmyk[4 * i + 3];
    for (int c = 0; c < 3; ++c)
      rgb[3 * i + c] = static_cast<std::uint8_t>((cmyk[4 * i + c] * k + 127) / 255);
  }
}

JpegHeader read_jpeg_header(std::span<const std::uint8_t> jpeg) {
  FullHeader h = header_of(jpeg);
  return {h.width, h.height};
}

int scale_eighths_for(double crop_w, double crop_h, int out_w, int out_h) {
  if (crop_w <= 0 || crop_h <= 0) return 8;
  double need = std::max(out_w / crop_w, out_h / crop_h);
  // The tiny tolerance keeps an exact ratio such as 224/448 = 4/8 from rounding up to 5/8.
  int m = static_cast<int>(std::ceil(8 * need - 1e-9));
  return std::clamp(m, 1, 8);
}

int fastest_eighths(int smallest_eighths) { return smallest_eighths <= 4 ? std::max(smallest_eighths, 1) : 8; }

int scaled_size(int size, int eighths) { return (size * eighths + 7) / 8; }

void decode_into(std::span<const std::uint8_t> jpeg, int eighths, bool fast, Image& out) {
  FullHeader h = header_of(jpeg);
  eighths = std::clamp(eighths, 1, 8);
  int w = scaled_size(h.width, eighths), hh = scaled_size(h.height, eighths);
  int flags = fast ? (TJFLAG_FASTDCT | TJFLAG_FASTUPSAMPLE) : 0;
  bool cmyk = h.colorspace == TJCS_CMYK || h.colorspace == TJCS_YCCK;
  out.width = w;
  out.height = hh;
  out.rgb.resize(static_cast<size_t>(w) * hh * 3);
  thread_local std::vector<std::uint8_t> cmyk_buffer;
  if (cmyk) cmyk_buffer.resize(static_cast<size_t>(w) * hh * 4);
  unsigned char* dst = cmyk ? cmyk_buffer.data() : out.rgb.data();
  int rc = tjDecompress2(decompressor(), jpeg.data(), static_cast<unsigned long>(jpeg.size()), dst,
                         w, 0, hh, cmyk ? TJPF_CMYK : TJPF_RGB, flags);
  if (rc != 0) {
    std::string why = tjGetErrorStr2(decompressor());
    // A warning leaves a complete image, except when the data ran out: libjpeg then pads the
    // missing rows with grey, which would train on a picture that is not there.
    if (tjGetErrorCode(decompressor()) != TJERR_WARNING || why.find("Premature end") != std::string::npos)
      fail("corrupt JPEG: ");
  }
  if (cmyk) cmyk_to_rgb(cmyk_buffer.data(), out.rgb.data(), static_cast<size_t>(w) * hh);
}

Image decode_jpeg(std::span<const std::uint8_t> jpeg, int eighths, bool fast) {
  Image image;
  decode_into(jpeg, eighths, fast, image);
  return image;
}

std::vector<std::uint8_t> encode_jpeg(const Image& image, int quality) {
  if (image.width <= 0 || image.height <= 0 ||
      image.rgb.size() != static_cast<size_t>(image.width) * image.height * 3)
    throw std::invalid_argument("encode_jpeg: image size does not match its pixels");
  unsigned char* buffer = nullptr;
  unsigned long size = 0;
  if (tjCompress2(compressor(), image.rgb.data(), image.width, 0, image.height, TJPF_RGB, &buffer,
                  &size, TJSAMP_420, quality, 0) != 0) {
    tjFree(buffer);
    throw std::runtime_error(std::string("TurboJPEG: cannot encode: ") + tjGetErrorStr2(compressor()));
  }
  std::vector<std::uint8_t> bytes(buffer, buffer + size);
  tjFree(buffer);
  return bytes;
}

std::vector<std::uint8_t> read_file(const std::string& path) {
  std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!f) throw DecodeError("cannot open: " + std::string(std::strerror(errno)));
  std::vector<std::uint8_t> bytes;
  if (std::fseek(f.get(), 0, SEEK_END) == 0) {
    long size = std::ftell(f.get());
    if (size > 0) bytes.reserve(static_cast<size_t>(size));
    std::rewind(f.get());
  }
  std::uint8_t chunk[1 << 16];
  while (size_t n = std::fread(chunk, 1, sizeof chunk, f.get())) bytes.insert(bytes.end(), chunk, chunk + n);
  if (std::ferror(f.get())) throw DecodeError("cannot read: " + std::string(std::strerror(errno)));
  return bytes;
}

}  // namespace basin::data
