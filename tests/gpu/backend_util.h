// Helpers for the GPU backend's tests: the same calls on either backend (so one lambda runs a
// layer on the CPU and on the GPU), host data in and out through the backend's own boundary
// (write_nchw/read_nchw for tensors, flat_from_host/flat_to_host for parameters), and the
// max-relative error the comparisons state their bounds in.
#pragma once

#include <basin/backend.h>
#include <basin/data.h>
#include <basin/train.h>

#include "../exec/gradcheck.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <utility>
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

// What a layer test returns: named host arrays, compared name by name against a bound.
using Outputs = std::vector<std::pair<std::string, std::vector<float>>>;

inline void compare(const Outputs& g, const Outputs& c, double bound) {
  REQUIRE(g.size() == c.size());
  for (size_t i = 0; i < g.size(); ++i) {
    CAPTURE(g[i].first, bound);
    const double e = relative_max_error(g[i].second, c[i].second);
    CAPTURE(e);
    CHECK(e <= bound);
  }
}

// The learning test's run: a synthesized 10-class dataset written into `dir` and three epochs
// (93 steps) of a small ResNet on it, a recipe that reaches high accuracy on the CPU.
inline TrainConfig learning_run(const std::filesystem::path& dir) {
  data::write_synth_dataset(dir / "data", {.classes = 10, .train_per_class = 100,
                                           .val_per_class = 20, .seed = 7},
                            false);
  TrainConfig c;
  c.data = dir / "data";
  c.out = dir / "run";
  c.model = "resnet-custom";
  c.shape = {.blocks = {1, 1, 1}, .bottleneck = false, .width = 16, .image_size = 48};
  c.batch = 32;
  c.epochs = 3;  // 31 steps an epoch: 93 steps
  c.schedule = {.base_lr = 0.1, .base_batch = 32, .warmup_epochs = 1, .milestones = {2}};
  c.augment.min_scale = 0.35;
  c.loader_threads = 2;
  c.progress_every_s = 1e9;
  return c;
}

}  // namespace basin::exec::gpu_test
