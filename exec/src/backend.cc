// The Backend interface's host-memory defaults for the flat arrays (backend.h): what every
// CPU backend shares, and what a device backend overrides. Running statistics keep exactly the
// arithmetic Net used before the arrays moved behind the backend, so CPU runs are unchanged.
// The input stage of raw batches defaults to the kernels' CPU reference (input_staging.cc).
#include <basin/backend.h>
#include <basin/kernels.h>

#include "input_staging.h"

#include <cstdlib>
#include <cstring>
#include <new>
#include <stdexcept>
#include <string>

namespace basin::exec {
namespace {

std::shared_ptr<float> aligned_host_floats(long long n, const char* what) {
  if (n < 0) throw std::invalid_argument(std::string(what) + " size must not be negative");
  // One float at least, so an empty network still has a valid pointer.
  const size_t bytes = (static_cast<size_t>(n > 0 ? n : 1) * sizeof(float) + 63) / 64 * 64;
  auto* p = static_cast<float*>(std::aligned_alloc(64, bytes));
  if (p == nullptr) throw std::bad_alloc();
  std::memset(p, 0, bytes);
  return std::shared_ptr<float>(p, [](float* q) { std::free(q); });
}

}  // namespace

void Backend::add_relu(int relu_op, const Tensor& a, const Tensor& b, Tensor& y) {
  add(a, b, y);
  relu_forward(relu_op, y, y);
}

Tensor Backend::view(const Tensor& storage, const TensorDesc& desc, Layout layout,
                     long long offset) {
  if (storage.data && offset == 0 && storage.desc == desc && storage.layout == layout)
    return storage;
  return {};
}

std::shared_ptr<float> Backend::alloc_flat(long long n) {
  return aligned_host_floats(n, "flat array");
}

std::shared_ptr<float> Backend::alloc_host_staging(long long n) {
  return aligned_host_floats(n, "host staging array");
}

void Backend::accumulate(float* dst, const float* src, long long n) {
  for (long long i = 0; i < n; ++i) dst[i] += src[i];
}

void Backend::copy_flat(float* dst, const float* src, long long n) {
  if (n > 0 && dst != src) std::memcpy(dst, src, sizeof(float) * static_cast<size_t>(n));
}

void Backend::flat_to_host(const float* flat, float* host, long long n) {
  if (n > 0 && flat != host) std::memcpy(host, flat, sizeof(float) * static_cast<size_t>(n));
}

std::function<void()> Backend::flat_to_host_async(const float* flat, float* host, long long n) {
  flat_to_host(flat, host, n);
  return [] {};
}

void Backend::flat_from_host(const float* host, float* flat, long long n) {
  if (n > 0 && flat != host) std::memcpy(flat, host, sizeof(float) * static_cast<size_t>(n));
}

void Backend::update_running_stats(int channels, double count, float momentum,
                                   const float* batch_mean, const float* batch_var,
                                   float* running_mean, float* running_var) {
  const double unbias = count > 1 ? count / (count - 1) : 1.0;
  const float m = momentum;
  for (int k = 0; k < channels; ++k) {
    running_mean[k] = (1 - m) * running_mean[k] + m * batch_mean[k];
    running_var[k] = (1 - m) * running_var[k] + m * static_cast<float>(batch_var[k] * unbias);
  }
}

void Backend::sgd_step(float* weights, float* velocity, const float* grads, long long n,
                       const FlatSgdStep& step) {
  std::vector<kernels::FlatRange> ranges;
  ranges.reserve(step.no_decay.size());
  for (const auto& [begin, end] : step.no_decay)
    ranges.push_back({static_cast<size_t>(begin), static_cast<size_t>(end)});
  kernels::check_flat_ranges(ranges.data(), ranges.size(), static_cast<size_t>(n));
  const kernels::SgdParams p{.lr = step.lr, .momentum = step.momentum,
                             .weight_decay = step.weight_decay, .nesterov = step.nesterov};
  kernels::sgd_flat_step_cpu(weights, velocity, grads, static_cast<size_t>(n), p, ranges.data(),
                             ranges.size());
}

bool Backend::unscale_gradients(float* grads, long long n, float factor) {
  if (n < 0) throw std::invalid_argument("unscale_gradients: negative size");
  return kernels::unscale_check_finite_cpu(grads, static_cast<size_t>(n), factor);
}

const char* precision_name(Precision p) {
  switch (p) {
    case Precision::fp32: return "fp32";
    case Precision::bf16: return "bf16";
    case Precision::fp16: return "fp16";
  }
  return "unknown";
}

void Backend::stage_input(const data::Batch& raw, const data::Normalization& norm, Tensor& dst) {
  std::vector<float> nchw(static_cast<size_t>(dst.desc.elements()));
  detail::stage_on_host(raw, norm, dst.desc, nchw.data());
  write_nchw(nchw.data(), dst);
}

}  // namespace basin::exec
