// Stragglers: a synchronous step waits for its slowest GPU.
//
// Every bucket's allreduce needs that bucket's gradients from every GPU, so the iteration runs at
// the pace of the slowest of N GPUs. When one GPU's compute time varies from step to step (OS
// noise, clocks, host-side framework work) with coefficient of variation cv, and the variations
// are independent across GPUs and roughly normal, the expected slowest of N takes
// mean x (1 + cv x e_N), where e_N is the expected maximum of N standard normal draws (Tippett
// 1925; Harter 1961 tabulates it). The model stretches the whole compute timeline by that factor,
// relative to the number of GPUs the profile's throughput was measured on, which already contains
// its own e_M.
#include <basin/training.h>

#include <cmath>
#include <map>
#include <mutex>

namespace basin::sim {
namespace {

double normal_pdf(double x) { return std::exp(-0.5 * x * x) / std::sqrt(2 * M_PI); }
double normal_cdf(double x) { return 0.5 * std::erfc(-x / std::sqrt(2.0)); }

// E[max] = integral of x n phi(x) Phi(x)^(n-1) dx, by Simpson's rule over [-12, 12]: beyond
// that the integrand is below 1e-30 for any n up to millions.
double integrate_expected_max(int n) {
  const int steps = 4800;
  const double lo = -12, hi = 12, h = (hi - lo) / steps;
  auto f = [n](double x) {
    const double cdf = normal_cdf(x);
    return cdf <= 0 ? 0.0 : x * n * normal_pdf(x) * std::exp((n - 1) * std::log(cdf));
  };
  double sum = f(lo) + f(hi);
  for (int i = 1; i < steps; ++i) sum += (i % 2 ? 4 : 2) * f(lo + i * h);
  return sum * h / 3;
}

}  // namespace

double expected_max_of_standard_normals(int n) {
  if (n <= 1) return 0;
  // The planner asks for the same few counts thousands of times.
  static std::mutex mutex;
  static std::map<int, double> cache;
  std::lock_guard<std::mutex> lock(mutex);
  auto [it, fresh] = cache.try_emplace(n, 0.0);
  if (fresh) it->second = integrate_expected_max(n);
  return it->second;
}

double straggler_stretch(double cv, int gpus, int measured_gpus) {
  if (!(cv > 0)) return 1;
  return (1 + cv * expected_max_of_standard_normals(gpus)) /
         (1 + cv * expected_max_of_standard_normals(measured_gpus));
}

}  // namespace basin::sim
