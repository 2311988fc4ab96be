// Finite-difference gradient checks for the executor's tests.
//
// A layer's backward is checked against central differences of its forward: the objective is
// L = sum_i r_i y_i with a fixed random r, so dL/dy = r is what backward is fed, and
// dL/dv_k ~ (L(v + h e_k) - L(v - h e_k)) / 2h for sampled entries k of an input or parameter v.
// Forward runs in fp32; L is summed in double. For the linear layers (conv, fc, pooling) the
// difference quotient is exact up to fp32 rounding of the outputs, about 1e-7 * |y| * sqrt(n) / h;
// for batch norm the O(h^2) truncation adds a little. The tolerances in the tests (stated there)
// sit well above both and well below any real error (a wrong index or a missing term is O(1)).
#pragma once

#include <algorithm>
#include <cmath>
#include <functional>
#include <random>
#include <vector>

namespace basin::exec::test {

inline std::vector<float> randn(size_t n, std::mt19937& rng, float scale = 1.f) {
  std::normal_distribution<float> d(0.f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

inline double dot(const std::vector<float>& a, const std::vector<float>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += static_cast<double>(a[i]) * b[i];
  return s;
}

struct GradCheck {
  double relative_error = 0;  // ||fd - analytic|| / ||fd|| over the sampled entries
  double worst = 0;           // max |fd - analytic| / max |fd|
  int samples = 0;
};

// Perturbs `samples` random entries of v (restoring each) and compares the central difference
// of objective() with analytic[k]. objective() must read v.
inline GradCheck check_gradient(std::vector<float>& v, const std::vector<float>& analytic,
                                const std::function<double()>& objective, int samples,
                                std::mt19937& rng, double h) {
  double diff2 = 0, fd2 = 0, worst = 0, largest = 0;
  const int n = std::min<int>(samples, static_cast<int>(v.size()));
  std::vector<size_t> order(v.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::shuffle(order.begin(), order.end(), rng);
  for (int s = 0; s < n; ++s) {
    const size_t k = order[s];
    const float saved = v[k];
    v[k] = static_cast<float>(saved + h);
    const double up = objective();
    v[k] = static_cast<float>(saved - h);
    const double down = objective();
    v[k] = saved;
    const double fd = (up - down) / (2 * h);
    diff2 += (fd - analytic[k]) * (fd - analytic[k]);
    fd2 += fd * fd;
    worst = std::max(worst, std::abs(fd - analytic[k]));
    largest = std::max(largest, std::abs(fd));
  }
  return {std::sqrt(diff2 / std::max(fd2, 1e-30)), worst / std::max(largest, 1e-30), n};
}

}  // namespace basin::exec::test
