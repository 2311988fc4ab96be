// A test backend that hands every operation to the oneDNN CPU backend: the base of the test
// doubles that watch or steer a backend (device_double.h's stand-in for a GPU, torch_test.cc's
// ReLU recorder), which override only what they look at.
#pragma once

#include <basin/backend.h>

#include <memory>
#include <string>

#if BASIN_HAVE_DNNL
namespace basin::exec::test {

class CpuForwarding : public Backend {
 public:
  CpuForwarding() : inner_(make_cpu_backend(1)) {}
  std::string name() const override { return inner_->name(); }

  std::shared_ptr<float> alloc_flat(long long n) override { return inner_->alloc_flat(n); }
  void update_running_stats(int c, double count, float m, const float* bm, const float* bv, float* rm,
                            float* rv) override {
    inner_->update_running_stats(c, count, m, bm, bv, rm, rv);
  }
  void sgd_step(float* w, float* v, const float* g, long long n, const FlatSgdStep& s) override {
    inner_->sgd_step(w, v, g, n, s);
  }
  void prepare_weights(const float* params, long long n) override { inner_->prepare_weights(params, n); }
  Tensor alloc(const TensorDesc& d, Layout l) override { return inner_->alloc(d, l); }
  Tensor view(const Tensor& s, const TensorDesc& d, Layout l, long long offset) override {
    return inner_->view(s, d, l, offset);
  }
  void write_nchw(const float* src, Tensor& dst) override { inner_->write_nchw(src, dst); }
  void read_nchw(const Tensor& src, float* dst) override { inner_->read_nchw(src, dst); }
  void copy(const Tensor& src, Tensor& dst) override { inner_->copy(src, dst); }
  void conv_forward(int op, const ConvDesc& d, const Tensor& x, const float* w, Tensor& y) override {
    inner_->conv_forward(op, d, x, w, y);
  }
  void conv_backward(int op, const ConvDesc& d, const Tensor& x, const float* w, const Tensor& dy, Tensor* dx,
                     float* dw, bool add_to_dx) override {
    inner_->conv_backward(op, d, x, w, dy, dx, dw, add_to_dx);
  }
  void batchnorm_forward_training(int op, const BatchNormDesc& d, const Tensor& x, const float* g, const float* b,
                                  Tensor& y, float* bm, float* bv) override {
    inner_->batchnorm_forward_training(op, d, x, g, b, y, bm, bv);
  }
  void batchnorm_forward_eval(int op, const BatchNormDesc& d, const Tensor& x, const float* g, const float* b,
                              const float* rm, const float* rv, Tensor& y) override {
    inner_->batchnorm_forward_eval(op, d, x, g, b, rm, rv, y);
  }
  void batchnorm_backward(int op, const BatchNormDesc& d, const Tensor& x, const float* g, Tensor& dy, Tensor& dx,
                          float* dg, float* db) override {
    inner_->batchnorm_backward(op, d, x, g, dy, dx, dg, db);
  }
  void relu_forward(int op, const Tensor& x, Tensor& y) override { inner_->relu_forward(op, x, y); }
  void relu_backward(int op, const Tensor& y, const Tensor& dy, Tensor& dx) override {
    inner_->relu_backward(op, y, dy, dx);
  }
  void pool_forward(int op, const PoolDesc& d, const Tensor& x, Tensor& y) override { inner_->pool_forward(op, d, x, y); }
  void pool_backward(int op, const PoolDesc& d, const Tensor& dy, Tensor& dx) override {
    inner_->pool_backward(op, d, dy, dx);
  }
  void fc_forward(int op, const FcDesc& d, const Tensor& x, const float* w, const float* b, Tensor& y) override {
    inner_->fc_forward(op, d, x, w, b, y);
  }
  void fc_backward(int op, const FcDesc& d, const Tensor& x, const float* w, const Tensor& dy, Tensor& dx, float* dw,
                   float* db) override {
    inner_->fc_backward(op, d, x, w, dy, dx, dw, db);
  }
  void add(const Tensor& a, const Tensor& b, Tensor& y) override { inner_->add(a, b, y); }
  double softmax_cross_entropy(const Tensor& logits, const int* labels, double divisor, Tensor& dlogits,
                               double grad_scale = 1) override {
    return inner_->softmax_cross_entropy(logits, labels, divisor, dlogits, grad_scale);
  }

 private:
  std::unique_ptr<Backend> inner_;
};

}  // namespace basin::exec::test
#endif
