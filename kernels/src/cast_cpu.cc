// CPU reference of the precision casts (see basin/kernels.h): round-to-nearest-even done on the
// bit patterns, written to be read against IEEE 754 rather than copied from CUDA's headers, so
// the GPU test that compares the two compares independent implementations.
#include "storage.h"

#include <cmath>
#include <cstring>
#include <stdexcept>

namespace basin::kernels {
namespace {

std::uint32_t bits_of(float x) {
  std::uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  return u;
}

float float_of(std::uint32_t u) {
  float x;
  std::memcpy(&x, &u, sizeof x);
  return x;
}

// Drops the low `shift` bits of `value`, rounding to nearest with ties to the even result.
std::uint32_t shift_right_round_even(std::uint32_t value, unsigned shift) {
  const std::uint32_t kept = value >> shift;
  const std::uint32_t rest = value & ((1u << shift) - 1);
  const std::uint32_t half = 1u << (shift - 1);
  return kept + ((rest > half || (rest == half && (kept & 1))) ? 1 : 0);
}

constexpr std::uint16_t kCanonicalNan = 0x7FFF;

}  // namespace

size_t bytes_per_element(Precision p) { return p == Precision::fp32 ? 4 : 2; }

std::uint16_t float_to_bf16_bits(float x) {
  const std::uint32_t u = bits_of(x);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return kCanonicalNan;
  // bf16 is the top half of an fp32, so rounding the low 16 bits away is the whole conversion;
  // a carry out of the mantissa moves to the next binade (or to infinity), which is correct.
  // Subnormals need no case of their own: they share the exponent field 0 with bf16's.
  return static_cast<std::uint16_t>(shift_right_round_even(u, 16));
}

std::uint16_t float_to_fp16_bits(float x) {
  const std::uint32_t u = bits_of(x);
  const std::uint32_t sign = (u >> 16) & 0x8000u;
  const std::uint32_t magnitude = u & 0x7FFFFFFFu;
  if (magnitude > 0x7F800000u) return kCanonicalNan;
  // 65520 = 0x477FF000 is halfway between fp16's largest finite value 65504 (odd mantissa
  // 0x3FF) and 65536 = infinity's slot, so it and everything above round to infinity.
  if (magnitude >= 0x477FF000u) return static_cast<std::uint16_t>(sign | 0x7C00u);
  if (magnitude >= 0x38800000u) {
    // A normal fp16 (>= 2^-14): rebias the exponent (127 -> 15) and round away 13 mantissa bits.
    return static_cast<std::uint16_t>(sign | shift_right_round_even(magnitude - (112u << 23), 13));
  }
  // Below 2^-14 fp16 is subnormal, in units of 2^-24. 2^-25 (0x33000000) is the tie between 0
  // and one unit and goes to 0, as does everything smaller (fp32 subnormals included).
  if (magnitude <= 0x33000000u) return static_cast<std::uint16_t>(sign);
  const std::uint32_t exponent = magnitude >> 23;  // 102..112 here
  const std::uint32_t significand = (magnitude & 0x7FFFFFu) | 0x800000u;
  // value = significand * 2^(exponent - 150); in units of 2^-24 that is a right shift by
  // 126 - exponent (14..24). Rounding up from 0x3FF.8 gives 0x400, the smallest normal: correct.
  return static_cast<std::uint16_t>(sign | shift_right_round_even(significand, 126 - exponent));
}

float bf16_bits_to_float(std::uint16_t b) { return float_of(std::uint32_t{b} << 16); }

float fp16_bits_to_float(std::uint16_t h) {
  const std::uint32_t sign = std::uint32_t{h & 0x8000u} << 16;
  const std::uint32_t exponent = (h >> 10) & 0x1Fu;
  const std::uint32_t mantissa = h & 0x3FFu;
  if (exponent == 0x1F) return float_of(sign | 0x7F800000u | (mantissa << 13));  // inf, NaN
  if (exponent == 0) {
    // Zero or subnormal: mantissa units of 2^-24, exact in fp32.
    const float value = std::ldexp(static_cast<float>(mantissa), -24);
    return sign ? -value : value;
  }
  return float_of(sign | ((exponent + 112u) << 23) | (mantissa << 13));
}

void cast_cpu(const void* src, Precision from, void* dst, Precision to, size_t n) {
  for (size_t i = 0; i < n; ++i) detail::store_float(dst, to, i, detail::load_float(src, from, i));
}

void nchw_to_nhwc_cpu(const float* src, void* dst, Precision to, int n, int c, int hw) {
  for (int image = 0; image < n; ++image)
    for (int channel = 0; channel < c; ++channel)
      for (int pixel = 0; pixel < hw; ++pixel) {
        const size_t from = (static_cast<size_t>(image) * c + channel) * hw + pixel;
        const size_t into = (static_cast<size_t>(image) * hw + pixel) * c + channel;
        detail::store_float(dst, to, into, src[from]);
      }
}

}  // namespace basin::kernels
