// Helpers for the GPU backend's tests: the same calls on either backend (so one lambda runs a
// layer on the CPU and on the GPU), host data in and out through the backend's own boundary
// (write_nchw/read_nchw for tensors, flat_from_host/flat_to_host for parameters), and the
// max-relative error the comparisons state their bounds in.
#pragma once

#include <basin/backend.h>

#include "../exec/gradcheck.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <random>
#include <span>
#include <vector>

namespace basin::exec::gpu_test {

using test::randn;  // normal random vectors, as the CPU tests draw them

// A flat array (weights, gradients, statistics) in the backend's memory.
struct Flat {
  std::shared_ptr<float> memory;
  long long n = 0;
  float* get() const { return memory.get(); }
};

inline Flat upload(Backend& b, const std::vector<float>& host) {
  Flat f{b.alloc_flat(static_cast<long long>(host.size())), static_cast<long long>(host.size())};
  b.flat_from_host(host.data(), f.get(), f.n);
  return f;
}

inline Flat zeros(Backend& b, long long n) { return {b.alloc_flat(n), n}; }

inline std::vector<float> download(Backend& b, const Flat& f) {
  std::vector<float> host(static_cast<size_t>(f.n));
  b.flat_to_host(f.get(), host.data(), f.n);
  return host;
}

inline Tensor tensor(Backend& b, const TensorDesc& d, const std::vector<float>& nchw,
                     Layout layout = Layout::native) {
  Tensor t = b.alloc(d, layout);
  b.write_nchw(nchw.data(), t);
  return t;
}

inline std::vector<float> read(Backend& b, const Tensor& t) {
  std::vector<float> host(static_cast<size_t>(t.desc.elements()));
  b.read_nchw(t, host.data());
  return host;
}

// max |ours - reference| / max |reference|: the error relative to the tensor's scale, so that
// entries near zero (where elementwise relative error means nothing) do not decide.
inline double relative_max_error(std::span<const float> ours, std::span<const float> reference) {
  if (ours.size() != reference.size()) return INFINITY;
  double diff = 0, scale = 0;
  for (size_t i = 0; i < ours.size(); ++i) {
    if (std::isnan(ours[i]) != std::isnan(reference[i])) return INFINITY;
    diff = std::max(diff, std::abs(1.0 * ours[i] - reference[i]));
    scale = std::max(scale, std::abs(1.0 * reference[i]));
  }
  return diff / std::max(scale, 1e-30);
}

// ||ours - reference||_2 / ||reference||_2, for the deep network whose gradients fp32 itself
// does not pin down elementwise.
inline double relative_norm_error(std::span<const float> ours, std::span<const float> reference) {
  if (ours.size() != reference.size()) return INFINITY;
  double diff = 0, scale = 0;
  for (size_t i = 0; i < ours.size(); ++i) {
    diff += (1.0 * ours[i] - reference[i]) * (1.0 * ours[i] - reference[i]);
    scale += 1.0 * reference[i] * reference[i];
  }
  return std::sqrt(diff) / std::max(std::sqrt(scale), 1e-30);
}

}  // namespace basin::exec::gpu_test
