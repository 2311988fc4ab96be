// Element access by runtime precision for the CPU references: load any storage type as fp32 and
// store fp32 with one round-to-nearest-even, so each reference is written once for all three.
// (Speed is not the point of the references; one switch per element is fine.)
#pragma once

#include <basin/kernels.h>

#include <cstring>

namespace basin::kernels::detail {

inline float load_float(const void* base, Precision p, size_t i) {
  switch (p) {
    case Precision::fp32: return static_cast<const float*>(base)[i];
    case Precision::bf16: return bf16_bits_to_float(static_cast<const std::uint16_t*>(base)[i]);
    case Precision::fp16: return fp16_bits_to_float(static_cast<const std::uint16_t*>(base)[i]);
  }
  return 0;
}

inline void store_float(void* base, Precision p, size_t i, float x) {
  switch (p) {
    case Precision::fp32: static_cast<float*>(base)[i] = x; return;
    case Precision::bf16: static_cast<std::uint16_t*>(base)[i] = float_to_bf16_bits(x); return;
    case Precision::fp16: static_cast<std::uint16_t*>(base)[i] = float_to_fp16_bits(x); return;
  }
}

// Copies one element unchanged (a selection needs no rounding, so none is done).
inline void copy_element(const void* src, void* dst, Precision p, size_t i) {
  const size_t bytes = bytes_per_element(p);
  std::memcpy(static_cast<char*>(dst) + i * bytes, static_cast<const char*>(src) + i * bytes,
              bytes);
}

inline void zero_element(void* dst, Precision p, size_t i) {
  const size_t bytes = bytes_per_element(p);
  std::memset(static_cast<char*>(dst) + i * bytes, 0, bytes);
}

}  // namespace basin::kernels::detail
