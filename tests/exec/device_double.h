// A test double of a device backend: the oneDNN CPU backend underneath, but on_device() is true,
// so the trainer and GradientSync take the path they take for a GPU (staged Gloo buckets, the
// backend's accumulate/copy_flat, host reads only through flat_to_host/flat_from_host), and
// every crossing of the host boundary is counted. It lets the CPU prove the GPU path's logic;
// the arithmetic is the CPU backend's, so results compare with CPU runs directly.
#pragma once

#include <basin/backend.h>

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

class DeviceDouble final : public Backend {
 public:
  DeviceDouble() : inner_(make_cpu_backend(1)) {}
  std::string name() const override { return "device double of " + inner_->name(); }
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
    inner_->prepare_weights(params, n);
  }

  // Everything else is the CPU backend's.
  std::shared_ptr<float> alloc_flat(long long n) override { return inner_->alloc_flat(n); }
  void update_running_stats(int c, double count, float m, const float* bm, const float* bv,
                            float* rm, float* rv) override {
    inner_->update_running_stats(c, count, m, bm, bv, rm, rv);
  }
  void sgd_step(float* w, float* v, const float* g, long long n, const FlatSgdStep& s) override {
    inner_->sgd_step(w, v, g, n, s);
  }
  long long tensor_allocations = 0;
  Tensor alloc(const TensorDesc& d, Layout l) override {
    ++tensor_allocations;
    return inner_->alloc(d, l);
  }
  Tensor view(const Tensor& s, const TensorDesc& d, Layout l, long long offset) override {
    return inner_->view(s, d, l, offset);
  }
  void write_nchw(const float* src, Tensor& dst) override { inner_->write_nchw(src, dst); }
  void read_nchw(const Tensor& src, float* dst) override { inner_->read_nchw(src, dst); }
  void copy(const Tensor& src, Tensor& dst) override { inner_->copy(src, dst); }
  void conv_forward(int op, const ConvDesc& d, const Tensor& x, const float* w, Tensor& y) override {
    inner_->conv_forward(op, d, x, w, y);
  }
  void conv_backward(int op, const ConvDesc& d, const Tensor& x, const float* w, const Tensor& dy,
                     Tensor* dx, float* dw, bool add_to_dx) override {
    inner_->conv_backward(op, d, x, w, dy, dx, dw, add_to_dx);
  }
  // Set, Net sums block inputs' gradients in conv_backward, as it does on a GPU.
  bool conv_adds_to_dx = false;
  bool accumulates_conv_dx() const override { return conv_adds_to_dx; }
  void batchnorm_forward_training(int op, const BatchNormDesc& d, const Tensor& x, const float* g,
                                  const float* b, Tensor& y, float* bm, float* bv) override {
    inner_->batchnorm_forward_training(op, d, x, g, b, y, bm, bv);
  }
  void batchnorm_forward_eval(int op, const BatchNormDesc& d, const Tensor& x, const float* g,
                              const float* b, const float* rm, const float* rv, Tensor& y) override {
    inner_->batchnorm_forward_eval(op, d, x, g, b, rm, rv, y);
  }
  void batchnorm_backward(int op, const BatchNormDesc& d, const Tensor& x, const float* g,
                          Tensor& dy, Tensor& dx, float* dg, float* db) override {
    inner_->batchnorm_backward(op, d, x, g, dy, dx, dg, db);
  }
  void relu_forward(int op, const Tensor& x, Tensor& y) override { inner_->relu_forward(op, x, y); }
  void relu_backward(int op, const Tensor& y, const Tensor& dy, Tensor& dx) override {
    inner_->relu_backward(op, y, dy, dx);
  }
  void pool_forward(int op, const PoolDesc& d, const Tensor& x, Tensor& y) override {
    inner_->pool_forward(op, d, x, y);
  }
  void pool_backward(int op, const PoolDesc& d, const Tensor& dy, Tensor& dx) override {
    inner_->pool_backward(op, d, dy, dx);
  }
  void fc_forward(int op, const FcDesc& d, const Tensor& x, const float* w, const float* b,
                  Tensor& y) override {
    inner_->fc_forward(op, d, x, w, b, y);
  }
  void fc_backward(int op, const FcDesc& d, const Tensor& x, const float* w, const Tensor& dy,
                   Tensor& dx, float* dw, float* db) override {
    inner_->fc_backward(op, d, x, w, dy, dx, dw, db);
  }
  void add(const Tensor& a, const Tensor& b, Tensor& y) override { inner_->add(a, b, y); }
  // Called with the logits (host memory underneath) before every loss: a test can plant what
  // a device's overflowed forward leaves there (the CPU backend's ReLU and pooling may stop an
  // infinity planted earlier from reaching the loss).
  std::function<void(const Tensor& logits)> before_loss;
  double softmax_cross_entropy(const Tensor& logits, const int* labels, double divisor,
                               Tensor& dlogits, double grad_scale = 1) override {
    if (before_loss) before_loss(logits);
    return inner_->softmax_cross_entropy(logits, labels, divisor, dlogits, grad_scale);
  }

 private:
  std::unique_ptr<Backend> inner_;
};

}  // namespace basin::exec::test
#endif
