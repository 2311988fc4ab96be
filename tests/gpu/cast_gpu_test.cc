// The GPU casts (CUDA's conversion intrinsics) against the CPU reference's bit arithmetic:
// bit-exact for every input that is not NaN, NaN for NaN. The 16-bit sources are checked
// exhaustively; fp32 sources over the top 24 bits of every pattern plus hand-picked ties.
#include "../catch.h"
#include "device_buffer.h"

#include <basin/kernels.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace bk = basin::kernels;

namespace {

bool is_nan_bits(std::uint32_t bits, bk::Precision p) {
  switch (p) {
    case bk::Precision::fp32: return (bits & 0x7FFFFFFFu) > 0x7F800000u;
    case bk::Precision::bf16: return (bits & 0x7FFFu) > 0x7F80u;
    case bk::Precision::fp16: return (bits & 0x7FFFu) > 0x7C00u;
  }
  return false;
}

// Element i of a host array of precision p, as its bit pattern.
std::uint32_t bits_at(const std::vector<std::uint8_t>& bytes, bk::Precision p, size_t i) {
  if (p == bk::Precision::fp32) {
    std::uint32_t u;
    std::memcpy(&u, bytes.data() + i * 4, 4);
    return u;
  }
  std::uint16_t h;
  std::memcpy(&h, bytes.data() + i * 2, 2);
  return h;
}

// Runs the cast both ways and compares bits; a NaN must stay a NaN (its payload may differ).
void compare_cast(const std::vector<std::uint8_t>& src, bk::Precision from, bk::Precision to,
                  size_t n) {
  CAPTURE(int(from), int(to), n);
  std::vector<std::uint8_t> cpu(n * bk::bytes_per_element(to));
  bk::cast_cpu(src.data(), from, cpu.data(), to, n);
  DeviceBuffer<std::uint8_t> dsrc(src), ddst(cpu.size());
  bk::cast_gpu(dsrc.get(), from, ddst.get(), to, n);
  const std::vector<std::uint8_t> gpu = ddst.download();
  std::string mismatch;
  for (size_t i = 0; i < n && mismatch.empty(); ++i) {
    const std::uint32_t c = bits_at(cpu, to, i), g = bits_at(gpu, to, i);
    const bool ok = is_nan_bits(c, to) ? is_nan_bits(g, to) : g == c;
    if (!ok)
      mismatch = "element " + std::to_string(i) + ": source bits " +
                 std::to_string(bits_at(src, from, i)) + ", GPU " + std::to_string(g) +
                 ", CPU " + std::to_string(c);
  }
  REQUIRE(mismatch == "");
}

std::vector<std::uint8_t> as_bytes(const std::vector<std::uint32_t>& words) {
  std::vector<std::uint8_t> bytes(words.size() * 4);
  if (!words.empty()) std::memcpy(bytes.data(), words.data(), bytes.size());
  return bytes;
}

}  // namespace

TEST_CASE("GPU casts from bf16 and fp16 match the CPU reference on all 65536 patterns",
          "[kernels][gpu][cast]") {
  std::vector<std::uint8_t> all(65536 * 2);
  for (std::uint32_t b = 0; b < 65536; ++b) {
    const auto h = static_cast<std::uint16_t>(b);
    std::memcpy(all.data() + b * 2, &h, 2);
  }
  for (bk::Precision from : {bk::Precision::bf16, bk::Precision::fp16})
    for (bk::Precision to : {bk::Precision::fp32, bk::Precision::bf16, bk::Precision::fp16})
      compare_cast(all, from, to, 65536);
}

TEST_CASE("GPU casts from fp32 match the CPU reference bit for bit", "[kernels][gpu][cast]") {
  const size_t n = GENERATE(size_t{0}, size_t{1}, size_t{1000003}, kBeyondOneGrid);
  std::vector<std::uint32_t> words(n);
  // Hand-picked: bf16 and fp16 ties, the fp16 overflow and subnormal boundaries, fp32
  // subnormals, infinities, NaNs with payload only in the dropped bits.
  const std::vector<std::uint32_t> special = {
      0x3F800000, 0x3F808000, 0x3F818000, 0x3F808001, 0x7F7FFFFF, 0x7F7F7FFF, 0x00008000,
      0x00018000, 0x3F801000, 0x3F803000, 0x477FE000, 0x477FEFFF, 0x477FF000, 0x38800000,
      0x387FFFFF, 0x33800000, 0x33000000, 0x33000001, 0x33C00000, 0x00000001, 0x80000000,
      0x7F800000, 0xFF800000, 0x7FC00000, 0x7F80FFFF, 0xFF800001, 0x3DCCCCCD};
  std::mt19937 rng(23);
  std::uniform_int_distribution<std::uint32_t> low_byte(0, 255);
  for (size_t k = 0; k < n; ++k) {
    if (k < special.size())
      words[k] = special[k];
    else if (k < (size_t{1} << 24))
      // Every top-24-bit pattern once; a zero low byte a third of the time makes exact ties.
      words[k] = static_cast<std::uint32_t>(k << 8) | (k % 3 == 0 ? 0 : low_byte(rng));
    else
      words[k] = static_cast<std::uint32_t>(rng());
  }
  const std::vector<std::uint8_t> bytes = as_bytes(words);
  for (bk::Precision to : {bk::Precision::bf16, bk::Precision::fp16, bk::Precision::fp32})
    compare_cast(bytes, bk::Precision::fp32, to, n);
}

TEST_CASE("GPU NCHW to NHWC matches the CPU reference bit for bit", "[kernels][gpu][cast]") {
  // Awkward sizes: the network's 3-channel input, one pixel, one channel, and more elements
  // than one grid covers.
  struct Shape {
    int n, c, hw;
  };
  const Shape shape = GENERATE(Shape{3, 3, 7 * 5}, Shape{5, 17, 1}, Shape{2, 1, 13},
                               Shape{4, 3, 224 * 224}, Shape{0, 3, 4});
  CAPTURE(shape.n, shape.c, shape.hw);
  const size_t total = static_cast<size_t>(shape.n) * shape.c * shape.hw;
  std::mt19937 rng(31);
  std::normal_distribution<float> normal(0.f, 3.f);
  std::vector<float> src(total);
  for (auto& x : src) x = normal(rng);
  for (bk::Precision to : {bk::Precision::fp32, bk::Precision::bf16, bk::Precision::fp16}) {
    CAPTURE(int(to));
    std::vector<std::uint8_t> cpu(total * bk::bytes_per_element(to));
    bk::nchw_to_nhwc_cpu(src.data(), cpu.data(), to, shape.n, shape.c, shape.hw);
    DeviceBuffer<float> dsrc(src);
    DeviceBuffer<std::uint8_t> ddst(cpu.size());
    bk::nchw_to_nhwc_gpu(dsrc.get(), ddst.get(), to, shape.n, shape.c, shape.hw);
    CHECK(ddst.download() == cpu);
  }
}
