// Region decoding through libjpeg-turbo's libjpeg API: decode only the part of a JPEG that a crop
// reads. TurboJPEG 2.1 has no region decode, but the libjpeg API underneath it does:
// jpeg_crop_scanline limits the inverse DCT, upsampling and colour conversion to the crop's
// columns (widened to whole iMCUs), jpeg_skip_scanlines skips those steps for the rows above the
// crop, and stopping after the crop's last row (destroying the decompressor) leaves the rows
// below it not even entropy-decoded. With DCT scaling on top, this is the least work libjpeg can do for a crop.
//
// libjpeg reports fatal errors through error_exit, whose default calls exit(); here it longjmps
// back to a frame that turns libjpeg's message into a DecodeError. No C++ object with a
// destructor lives in the frames a longjmp crosses: each libjpeg step runs inside `guarded`,
// and buffers are resized between steps, outside it.
#include "jpeg_internal.h"

#include <algorithm>
#include <csetjmp>
#include <cstdio>  // jpeglib.h needs FILE
#include <stdexcept>
#include <string>

#include <jerror.h>
#include <jpeglib.h>

namespace basin::data {
namespace {

struct ErrorManager {
  jpeg_error_mgr mgr;  // first member: libjpeg hands back a pointer to it
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

[[noreturn]] void on_error(j_common_ptr cinfo) {
  auto* e = reinterpret_cast<ErrorManager*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, e->message);
  std::longjmp(e->jump, 1);
}

// Warnings (msg_level -1) are not printed. Running out of data is made fatal, as TurboJPEG's
// caller in jpeg.cc does: libjpeg would pad the missing rows with grey.
void on_message(j_common_ptr cinfo, int msg_level) {
  if (msg_level < 0 && cinfo->err->msg_code == JWRN_JPEG_EOF) on_error(cinfo);
}

// A fresh decompressor per file. Reusing one across files (jpeg_abort between them, as TurboJPEG
// does) is not safe with jpeg_skip_scanlines in libjpeg-turbo 2.1.5: valgrind saw the next
// file's skip read and write memory that the previous file's abort had freed. Creating one
// costs a few small allocations, nothing beside a decode.
struct Decompressor {
  jpeg_decompress_struct cinfo{};
  ErrorManager err{};
  Decompressor() {
    cinfo.err = jpeg_std_error(&err.mgr);
    err.mgr.error_exit = on_error;
    err.mgr.emit_message = on_message;
    // Fails only when the headers and the library disagree (a struct size).
    if (setjmp(err.jump)) throw std::runtime_error(std::string("libjpeg: ") + err.message);
    jpeg_create_decompress(&cinfo);
  }
  ~Decompressor() { jpeg_destroy_decompress(&cinfo); }
  Decompressor(const Decompressor&) = delete;
  Decompressor& operator=(const Decompressor&) = delete;
};

// Runs one libjpeg step; false when libjpeg gave up (its message is in err.message). `step`
// must not own anything with a destructor: a longjmp skips them.
template <class Step>
bool guarded(Decompressor& d, Step step) {
  if (setjmp(d.err.jump)) return false;
  step();
  return true;
}

// A JPEG ends with an EOI marker (FF D9), possibly followed by junk. Entropy-coded data cannot
// contain FF D9 (an FF there is stuffed as FF 00), so a file without one anywhere was cut
// short. This catches truncation below the decoded region, which libjpeg never reaches.
bool has_end_marker(std::span<const std::uint8_t> jpeg) {
  for (size_t i = jpeg.size(); i >= 2; --i)
    if (jpeg[i - 1] == 0xD9 && jpeg[i - 2] == 0xFF) return true;
  return false;
}

}  // namespace

void decode_region_into(std::span<const std::uint8_t> jpeg, bool fast,
                        const std::function<RegionRequest(const JpegHeader&)>& choose, ImageRegion& out) {
  // Destroyed however the decode ends: after the last row, which leaves the rows below it
  // unread, or after an error.
  Decompressor d;
  jpeg_decompress_struct* cinfo = &d.cinfo;
  if (jpeg.empty()) throw DecodeError("not a JPEG: the file is empty");
  if (!guarded(d, [&] {
        jpeg_mem_src(cinfo, jpeg.data(), static_cast<unsigned long>(jpeg.size()));
        jpeg_read_header(cinfo, TRUE);
      }))
    // A header cut short is a JPEG that was truncated, not another kind of file.
    throw DecodeError(std::string(std::string(d.err.message).find("Premature end") != std::string::npos
                                      ? "truncated JPEG: "
                                      : "not a JPEG: ") +
                      d.err.message);
  if (!has_end_marker(jpeg)) throw DecodeError("corrupt JPEG: Premature end of JPEG file (no end-of-image marker)");

  RegionRequest r = choose(JpegHeader{static_cast<int>(cinfo->image_width), static_cast<int>(cinfo->image_height)});
  const bool cmyk = cinfo->jpeg_color_space == JCS_CMYK || cinfo->jpeg_color_space == JCS_YCCK;
  // TurboJPEG's settings (turbojpeg.c), so that the pixels match decode_jpeg's.
  cinfo->out_color_space = cmyk ? JCS_CMYK : JCS_RGB;
  cinfo->scale_num = static_cast<unsigned>(std::clamp(r.eighths, 1, 8));
  cinfo->scale_denom = 8;
  cinfo->dct_method = fast ? JDCT_IFAST : JDCT_ISLOW;
  cinfo->do_fancy_upsampling = fast ? FALSE : TRUE;
  if (!guarded(d, [&] { jpeg_calc_output_dimensions(cinfo); }))
    throw DecodeError(std::string("corrupt JPEG: ") + d.err.message);
  const int full_w = static_cast<int>(cinfo->output_width), full_h = static_cast<int>(cinfo->output_height);
  const int x0 = std::clamp(r.x0, 0, full_w - 1), x1 = std::clamp(r.x1, x0 + 1, full_w);
  const int y0 = std::clamp(r.y0, 0, full_h - 1), y1 = std::clamp(r.y1, y0 + 1, full_h);
  // Fancy upsampling treats the cropped row's ends as the image's edges, so the first and last
  // decoded columns can differ from a full decode's wherever they are not the image's own edges
  // (tests/data/jpeg_region_test.cc finds exactly those two columns). One column more on each
  // side keeps them outside the request.
  const int decode_x0 = std::max(x0 - 1, 0), decode_x1 = std::min(x1 + 1, full_w);
  JDIMENSION x_offset = static_cast<JDIMENSION>(decode_x0), width = static_cast<JDIMENSION>(decode_x1 - decode_x0);
  if (!guarded(d, [&] {
        jpeg_start_decompress(cinfo);
        jpeg_crop_scanline(cinfo, &x_offset, &width);
        if (y0 > 0) jpeg_skip_scanlines(cinfo, static_cast<JDIMENSION>(y0));
      }))
    throw DecodeError(std::string("corrupt JPEG: ") + d.err.message);

  // jpeg_crop_scanline moved the left edge down to an iMCU boundary and widened the row.
  const int w = static_cast<int>(width), h = y1 - y0;
  const int channels = cmyk ? 4 : 3;
  out.x = static_cast<int>(x_offset);
  out.y = y0;
  out.full_width = full_w;
  out.full_height = full_h;
  out.pixels.width = w;
  out.pixels.height = h;
  out.pixels.rgb.resize(static_cast<size_t>(w) * h * 3);
  thread_local std::vector<std::uint8_t> cmyk_buffer;
  if (cmyk) cmyk_buffer.resize(static_cast<size_t>(w) * h * 4);
  std::uint8_t* const dst = cmyk ? cmyk_buffer.data() : out.pixels.rgb.data();
  const size_t stride = static_cast<size_t>(w) * channels;
  if (!guarded(d, [&] {
        JSAMPROW rows[16];
        while (static_cast<int>(cinfo->output_scanline) < y1) {
          int done = static_cast<int>(cinfo->output_scanline) - y0;
          int n = std::min(y1 - y0 - done, 16);
          for (int i = 0; i < n; ++i) rows[i] = dst + static_cast<size_t>(done + i) * stride;
          jpeg_read_scanlines(cinfo, rows, static_cast<JDIMENSION>(n));
        }
      }))
    throw DecodeError(std::string("corrupt JPEG: ") + d.err.message);
  if (cmyk) cmyk_to_rgb(cmyk_buffer.data(), out.pixels.rgb.data(), static_cast<size_t>(w) * h);
}

ImageRegion decode_jpeg_region(std::span<const std::uint8_t> jpeg, int eighths, int x, int y, int w, int h,
                               bool fast) {
  ImageRegion region;
  decode_region_into(
      jpeg, fast, [&](const JpegHeader&) { return RegionRequest{eighths, x, y, x + w, y + h}; }, region);
  return region;
}

}  // namespace basin::data
