// A test double of a device backend: the oneDNN CPU backend underneath, but on_device() is true,
// so the trainer and GradientSync take the path they take for a GPU (staged Gloo buckets, the
// backend's accumulate/copy_flat, host reads only through flat_to_host/flat_from_host), and
// every crossing of the host boundary is counted. It lets the CPU prove the GPU path's logic;
// the arithmetic is the CPU backend's, so results compare with CPU runs directly.
#pragma once

#include "cpu_forwarding.h"

#include <functional>
#include <memory>
#include <utility>
#include <vector>

#if BASIN_HAVE_DNNL
namespace basin::exec::test {

struct Crossing {
  const float* from;
  const float* to;
  long long n;
};

class DeviceDouble final : public CpuForwarding {
 public:
  std::string name() const override { return "device double of " + CpuForwarding::name(); }
  bool on_device() const override { return true; }

  // Counted boundary crossings, in order; `counting` turns recording on and off.
  bool counting = false;
  std::vector<Crossing> to_host, from_host;
  long long accumulates = 0, copies = 0, staging_allocations = 0;

  void flat_to_host(const float* flat, float* host, long long n) override {
    if (counting) to_host.push_back({flat, host, n});
    Backend::flat_to_host(flat, host, n);
  }
  // The copy is deferred to the returned wait, which the caller must run before it reads `host`
  // (a GPU's copy may not have happened yet either): a caller that forgot would read stale
  // values. Counted, like the crossings, at the call.
  long long async_waits = 0;
  std::function<void()> flat_to_host_async(const float* flat, float* host, long long n) override {
    if (counting) to_host.push_back({flat, host, n});
    return [this, flat, host, n] {
      ++async_waits;
      Backend::flat_to_host(flat, host, n);
    };
  }
  void flat_from_host(const float* host, float* flat, long long n) override {
    if (counting) from_host.push_back({host, flat, n});
    Backend::flat_from_host(host, flat, n);
  }
  void accumulate(float* dst, const float* src, long long n) override {
    ++accumulates;
    Backend::accumulate(dst, src, n);
  }
  void copy_flat(float* dst, const float* src, long long n) override {
    ++copies;
    Backend::copy_flat(dst, src, n);
  }
  std::shared_ptr<float> alloc_host_staging(long long n) override {
    ++staging_allocations;
    return Backend::alloc_host_staging(n);
  }
  // A device backend in a lower precision casts its weight copy here before every forward.
  long long weight_preparations = 0;
  void prepare_weights(const float* params, long long n) override {
    ++weight_preparations;
    CpuForwarding::prepare_weights(params, n);
  }

  // Everything else is the CPU backend's (CpuForwarding).
  long long tensor_allocations = 0;
  Tensor alloc(const TensorDesc& d, Layout l) override {
    ++tensor_allocations;
    return CpuForwarding::alloc(d, l);
  }
  // Set, Net sums block inputs' gradients in conv_backward, as it does on a GPU.
  bool conv_adds_to_dx = false;
  bool accumulates_conv_dx() const override { return conv_adds_to_dx; }
  // Called with the logits (host memory underneath) before every loss: a test can plant what
  // a device's overflowed forward leaves there (the CPU backend's ReLU and pooling may stop an
  // infinity planted earlier from reaching the loss).
  std::function<void(const Tensor& logits)> before_loss;
  double softmax_cross_entropy(const Tensor& logits, const int* labels, double divisor,
                               Tensor& dlogits, double grad_scale = 1) override {
    if (before_loss) before_loss(logits);
    return CpuForwarding::softmax_cross_entropy(logits, labels, divisor, dlogits, grad_scale);
  }
};

}  // namespace basin::exec::test
#endif
