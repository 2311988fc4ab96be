// Whole-array comparisons for the GPU tests. Arrays here reach 50 million elements, so each
// comparison is one assertion on a string naming the first bad element ("" when there is none):
// per-element REQUIREs would take minutes, and a failing REQUIRE on two vectors would print both.
#pragma once

#include <cmath>
#include <cstddef>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

// got is within tolerance of want when |got - want| <= max(abs, rel * |want|); NaN must meet
// NaN, and an infinity must be met exactly.
inline bool within(double got, double want, double rel, double abs) {
  if (std::isnan(want) || std::isnan(got)) return std::isnan(want) && std::isnan(got);
  if (got == want) return true;
  const double diff = std::fabs(got - want);
  return diff <= abs || diff <= rel * std::fabs(want);
}

inline std::string first_mismatch(const std::vector<float>& got, const std::vector<float>& want,
                                  double rel, double abs) {
  if (got.size() != want.size())
    return "sizes differ: " + std::to_string(got.size()) + " vs " + std::to_string(want.size());
  for (size_t i = 0; i < got.size(); ++i)
    if (!within(got[i], want[i], rel, abs)) {
      std::ostringstream s;
      s.precision(9);
      s << "element " << i << ": GPU " << got[i] << ", CPU " << want[i] << " (rel " << rel
        << ", abs " << abs << ")";
      return s.str();
    }
  return "";
}

// Equal values, element by element. Two NaNs count as equal: a GPU's arithmetic returns the
// canonical NaN (0x7fffffff) where the CPU keeps the NaN it was given, so neither == nor the bits
// would match.
template <class T>
std::string first_difference(const std::vector<T>& got, const std::vector<T>& want) {
  if (got.size() != want.size())
    return "sizes differ: " + std::to_string(got.size()) + " vs " + std::to_string(want.size());
  auto same = [](T a, T b) {
    if constexpr (std::is_floating_point_v<T>)
      if (std::isnan(a) && std::isnan(b)) return true;
    return a == b;
  };
  for (size_t i = 0; i < got.size(); ++i)
    if (!same(got[i], want[i])) {
      std::ostringstream s;
      s.precision(9);
      s << "element " << i << ": GPU " << +got[i] << ", CPU " << +want[i];
      return s.str();
    }
  return "";
}
