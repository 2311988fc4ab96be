// The oneDNN (CPU) backend's state, shared by its three source files: tensors and elementwise
// operations (dnnl_backend.cc), convolution and fully connected (dnnl_conv_fc.cc), batch norm,
// ReLU and pooling (dnnl_norm_pool.cc).
//
// Every layer (`op`) keeps its primitives and memory in a state struct that is built on first
// use and rebuilt only if the layer's descriptor changes, so a training loop creates each
// oneDNN primitive once. Activations stay in a blocked layout (nChw8c on AVX2, nChw16c on
// AVX-512) from the first conv to the fc; the only reorders are at the boundaries: the input
// image, plain-layout weights and weight gradients (the executor's flat buffers), the logits.
#pragma once

#include <basin/backend.h>

#include <dnnl.hpp>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

namespace basin::exec::cpu {

using dnnl::memory;
using tag = dnnl::memory::format_tag;

struct ConvState {
  ConvDesc desc;
  dnnl::convolution_forward::primitive_desc fwd_pd;
  dnnl::convolution_backward_data::primitive_desc bwd_data_pd;
  dnnl::convolution_backward_weights::primitive_desc bwd_weights_pd;
  dnnl::convolution_forward fwd;
  dnnl::convolution_backward_data bwd_data;
  dnnl::convolution_backward_weights bwd_weights;
  memory w_fwd, w_bwd, dw;  // weights as the kernels want them, weight gradient likewise
  dnnl::reorder to_w_fwd, to_w_bwd, from_dw;  // empty where the layouts already agree
  // x and dy in the layouts backward-weights wants, where that is not the tensors' own
  // (conv_state's fallback from oneDNN's reference kernel); empty otherwise.
  memory x_bwd_w, dy_bwd_w;
  dnnl::reorder to_x_bwd_w, to_dy_bwd_w;
  bool has_bwd_data = false;
};

struct FcState {
  FcDesc desc;
  dnnl::inner_product_forward::primitive_desc fwd_pd;
  dnnl::inner_product_backward_data::primitive_desc bwd_data_pd;
  dnnl::inner_product_backward_weights::primitive_desc bwd_weights_pd;
  dnnl::inner_product_forward fwd;
  dnnl::inner_product_backward_data bwd_data;
  dnnl::inner_product_backward_weights bwd_weights;
  memory w_fwd, w_bwd, dw;
  dnnl::reorder to_w_fwd, to_w_bwd, from_dw;
};

struct BatchNormState {
  BatchNormDesc desc;
  int format = 0;
  dnnl::batch_normalization_forward::primitive_desc train_pd, eval_pd;
  dnnl::batch_normalization_backward::primitive_desc bwd_pd;
  dnnl::batch_normalization_forward train, eval;
  dnnl::batch_normalization_backward bwd;
  std::vector<float> mean, variance;  // of the last training forward, for backward
  std::vector<float> zeros;           // a shift for backward, which oneDNN requires
  memory workspace;                   // fused ReLU: where the output was positive
};

struct ReluState {
  TensorDesc desc;
  int format = 0;
  dnnl::eltwise_forward fwd;
  dnnl::eltwise_backward bwd;
};

struct PoolState {
  PoolDesc desc;
  int format = 0;
  dnnl::pooling_forward::primitive_desc fwd_pd;
  dnnl::pooling_forward fwd;
  dnnl::pooling_backward bwd;
  memory workspace;  // max pooling: where each maximum came from
};

class DnnlBackend final : public Backend {
 public:
  explicit DnnlBackend(int threads);
  std::string name() const override;

  Tensor alloc(const TensorDesc& desc, Layout layout) override;
  Tensor view(const Tensor& storage, const TensorDesc& desc, Layout layout,
              long long offset) override;
  void write_nchw(const float* src, Tensor& dst) override;
  void read_nchw(const Tensor& src, float* dst) override;
  void copy(const Tensor& src, Tensor& dst) override;

  void conv_forward(int op, const ConvDesc& d, const Tensor& x, const float* w, Tensor& y) override;
  void conv_backward(int op, const ConvDesc& d, const Tensor& x, const float* w, const Tensor& dy,
                     Tensor* dx, float* dw, bool add_to_dx) override;
  void batchnorm_forward_training(int op, const BatchNormDesc& d, const Tensor& x,
                                  const float* gamma, const float* beta, Tensor& y,
                                  float* batch_mean, float* batch_var) override;
  void batchnorm_forward_eval(int op, const BatchNormDesc& d, const Tensor& x, const float* gamma,
                              const float* beta, const float* running_mean,
                              const float* running_var, Tensor& y) override;
  void batchnorm_backward(int op, const BatchNormDesc& d, const Tensor& x, const float* gamma,
                          Tensor& dy, Tensor& dx, float* dgamma, float* dbeta) override;
  void relu_forward(int op, const Tensor& x, Tensor& y) override;
  void relu_backward(int op, const Tensor& y, const Tensor& dy, Tensor& dx) override;
  void pool_forward(int op, const PoolDesc& d, const Tensor& x, Tensor& y) override;
  void pool_backward(int op, const PoolDesc& d, const Tensor& dy, Tensor& dx) override;
  void fc_forward(int op, const FcDesc& d, const Tensor& x, const float* w, const float* b,
                  Tensor& y) override;
  void fc_backward(int op, const FcDesc& d, const Tensor& x, const float* w, const Tensor& dy,
                   Tensor& dx, float* dw, float* db) override;
  void add(const Tensor& a, const Tensor& b, Tensor& y) override;
  double softmax_cross_entropy(const Tensor& logits, const int* labels, double divisor,
                               Tensor& dlogits, double grad_scale) override;

  // The memory descriptor of a tensor as allocated, and a oneDNN handle on its data.
  memory::desc md(const Tensor& t) const;
  memory mem(const Tensor& t) const { return memory(md(t), engine_, t.ptr()); }
  memory mem(const memory::desc& d, const float* p) const {
    return memory(d, engine_, const_cast<float*>(p));
  }
  // Runs a primitive and waits for it (the CPU stream is in order; waiting keeps host reads of
  // results, such as batch statistics, safe).
  void run(const dnnl::primitive& p, const std::unordered_map<int, memory>& args);
  // A reorder between two layouts, or an empty primitive when they are the same.
  dnnl::reorder reorder_if_needed(const memory& from, const memory& to) const;

 private:
  tag format_for(const TensorDesc& desc, Layout layout) const;  // the layout alloc picks
  ConvState& conv_state(int op, const ConvDesc& d, const Tensor& x, const Tensor& y);
  FcState& fc_state(int op, const FcDesc& d, const Tensor& x, const Tensor& y);
  BatchNormState& bn_state(int op, const BatchNormDesc& d, const Tensor& x);
  PoolState& pool_state(int op, const PoolDesc& d, const Tensor& x, const Tensor& y);
  // Weights and weight gradients in the layouts a conv's or fc's primitives chose, and the
  // reorders from and to the executor's plain OIHW buffers (dnnl_conv_fc.cc).
  template <class State>
  void prepare_weights(State& s, const memory::dims& plain_oihw);

  dnnl::engine engine_;
  dnnl::stream stream_;
  tag blocked_;  // the native activation layout
  std::unordered_map<int, ConvState> convs_;
  std::unordered_map<int, FcState> fcs_;
  std::unordered_map<int, BatchNormState> bns_;
  std::unordered_map<int, ReluState> relus_;
  std::unordered_map<int, PoolState> pools_;
  std::map<std::string, dnnl::primitive> shared_;  // reorders and adds, keyed by shape
};

}  // namespace basin::exec::cpu
