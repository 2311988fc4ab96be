// The oneDNN backend's layers without weights to reorder: batch normalization (training with
// batch statistics, eval with running statistics, optionally with the following ReLU fused
// in), ReLU and pooling (max, and the global average in front of the fc). All run on the
// activations' blocked layout.
#include <algorithm>
#include <stdexcept>

#include "dnnl_backend.h"

namespace basin::exec::cpu {
namespace {

using dnnl::algorithm;
using dnnl::normalization_flags;
using dnnl::prop_kind;

const auto scale_shift = normalization_flags::use_scale | normalization_flags::use_shift;

}  // namespace

BatchNormState& DnnlBackend::bn_state(int op, const BatchNormDesc& d, const Tensor& x) {
  auto it = bns_.find(op);
  if (it != bns_.end() && it->second.desc.io == d.io && it->second.desc.epsilon == d.epsilon &&
      it->second.desc.fused_relu == d.fused_relu && it->second.format == x.format)
    return it->second;
  if (!(x.desc == d.io)) throw std::invalid_argument("batchnorm tensor does not match its layer");
  BatchNormState s;
  s.desc = d;
  s.format = x.format;
  const memory::desc x_md = md(x);
  const auto flags = d.fused_relu ? scale_shift | normalization_flags::fuse_norm_relu : scale_shift;
  s.train_pd = dnnl::batch_normalization_forward::primitive_desc(
      {prop_kind::forward_training, x_md, d.epsilon, flags}, engine_);
  s.eval_pd = dnnl::batch_normalization_forward::primitive_desc(
      {prop_kind::forward_inference, x_md, d.epsilon,
       flags | normalization_flags::use_global_stats},
      engine_);
  s.bwd_pd = dnnl::batch_normalization_backward::primitive_desc(
      {prop_kind::backward, x_md, x_md, d.epsilon, flags}, engine_, s.train_pd);
  if (d.fused_relu) s.workspace = memory(s.train_pd.workspace_desc(), engine_);
  s.train = dnnl::batch_normalization_forward(s.train_pd);
  s.eval = dnnl::batch_normalization_forward(s.eval_pd);
  s.bwd = dnnl::batch_normalization_backward(s.bwd_pd);
  s.mean.assign(d.io.c, 0.f);
  s.variance.assign(d.io.c, 0.f);
  s.zeros.assign(d.io.c, 0.f);
  return bns_.insert_or_assign(op, std::move(s)).first->second;
}

void DnnlBackend::batchnorm_forward_training(int op, const BatchNormDesc& d, const Tensor& x,
                                             const float* gamma, const float* beta, Tensor& y,
                                             float* batch_mean, float* batch_var) {
  BatchNormState& s = bn_state(op, d, x);
  const memory::desc stat_md = s.train_pd.mean_desc();
  std::unordered_map<int, memory> args = {{DNNL_ARG_SRC, mem(x)},
                                          {DNNL_ARG_DST, mem(y)},
                                          {DNNL_ARG_SCALE, mem(stat_md, gamma)},
                                          {DNNL_ARG_SHIFT, mem(stat_md, beta)},
                                          {DNNL_ARG_MEAN, mem(stat_md, s.mean.data())},
                                          {DNNL_ARG_VARIANCE, mem(stat_md, s.variance.data())}};
  if (s.workspace) args.emplace(DNNL_ARG_WORKSPACE, s.workspace);
  run(s.train, args);
  std::copy(s.mean.begin(), s.mean.end(), batch_mean);
  std::copy(s.variance.begin(), s.variance.end(), batch_var);
}

void DnnlBackend::batchnorm_forward_eval(int op, const BatchNormDesc& d, const Tensor& x,
                                         const float* gamma, const float* beta,
                                         const float* running_mean, const float* running_var,
                                         Tensor& y) {
  BatchNormState& s = bn_state(op, d, x);
  const memory::desc stat_md = s.eval_pd.mean_desc();
  run(s.eval, {{DNNL_ARG_SRC, mem(x)},
               {DNNL_ARG_DST, mem(y)},
               {DNNL_ARG_SCALE, mem(stat_md, gamma)},
               {DNNL_ARG_SHIFT, mem(stat_md, beta)},
               {DNNL_ARG_MEAN, mem(stat_md, running_mean)},
               {DNNL_ARG_VARIANCE, mem(stat_md, running_var)}});
}

void DnnlBackend::batchnorm_backward(int op, const BatchNormDesc& d, const Tensor& x,
                                     const float* gamma, Tensor& dy, Tensor& dx, float* dgamma,
                                     float* dbeta) {
  BatchNormState& s = bn_state(op, d, x);
  const memory::desc stat_md = s.train_pd.mean_desc();
  std::unordered_map<int, memory> args = {
      {DNNL_ARG_SRC, mem(x)},
      {DNNL_ARG_MEAN, mem(stat_md, s.mean.data())},
      {DNNL_ARG_VARIANCE, mem(stat_md, s.variance.data())},
      {DNNL_ARG_DIFF_DST, mem(dy)},
      {DNNL_ARG_SCALE, mem(stat_md, gamma)},
      // oneDNN 2.6 asks for the shift in backward too, though no gradient depends on it.
      {DNNL_ARG_SHIFT, mem(stat_md, s.zeros.data())},
      {DNNL_ARG_DIFF_SRC, mem(dx)},
      {DNNL_ARG_DIFF_SCALE, mem(stat_md, dgamma)},
      {DNNL_ARG_DIFF_SHIFT, mem(stat_md, dbeta)}};
  if (s.workspace) args.emplace(DNNL_ARG_WORKSPACE, s.workspace);
  run(s.bwd, args);
}

void DnnlBackend::relu_forward(int op, const Tensor& x, Tensor& y) {
  auto it = relus_.find(op);
  if (it == relus_.end() || !(it->second.desc == x.desc) || it->second.format != x.format) {
    ReluState s{x.desc, x.format};
    // Backward reads the output, not the input, so the input may be freed or overwritten.
    const auto alg = algorithm::eltwise_relu_use_dst_for_bwd;
    dnnl::eltwise_forward::primitive_desc fpd({prop_kind::forward_training, alg, md(x), 0.f, 0.f},
                                              engine_);
    s.fwd = dnnl::eltwise_forward(fpd);
    s.bwd = dnnl::eltwise_backward(
        dnnl::eltwise_backward::primitive_desc({alg, md(x), md(x), 0.f, 0.f}, engine_, fpd));
    it = relus_.insert_or_assign(op, std::move(s)).first;
  }
  run(it->second.fwd, {{DNNL_ARG_SRC, mem(x)}, {DNNL_ARG_DST, mem(y)}});
}

void DnnlBackend::relu_backward(int op, const Tensor& y, const Tensor& dy, Tensor& dx) {
  auto it = relus_.find(op);
  if (it == relus_.end() || !(it->second.desc == y.desc))
    throw std::logic_error("relu backward of layer " + std::to_string(op) + " before its forward");
  run(it->second.bwd,
      {{DNNL_ARG_DST, mem(y)}, {DNNL_ARG_DIFF_DST, mem(dy)}, {DNNL_ARG_DIFF_SRC, mem(dx)}});
}

PoolState& DnnlBackend::pool_state(int op, const PoolDesc& d, const Tensor& x, const Tensor& y) {
  auto it = pools_.find(op);
  if (it != pools_.end() && it->second.desc.in == d.in && it->second.desc.out == d.out &&
      it->second.desc.kind == d.kind && it->second.desc.kernel == d.kernel &&
      it->second.desc.stride == d.stride && it->second.desc.padding == d.padding &&
      it->second.format == x.format)
    return it->second;
  if (!(x.desc == d.in) || !(y.desc == d.out))
    throw std::invalid_argument("pool tensors do not match the layer's shapes");
  PoolState s;
  s.desc = d;
  s.format = x.format;
  // Average pooling here is the global pool before the fc (no padding), where including or
  // excluding padding agree; excluding matches torch's AdaptiveAvgPool2d by construction.
  const auto alg =
      d.kind == PoolKind::max ? algorithm::pooling_max : algorithm::pooling_avg_exclude_padding;
  const memory::dims strides = {d.stride, d.stride}, kernel = {d.kernel, d.kernel},
                     pad = {d.padding, d.padding};
  s.fwd_pd = dnnl::pooling_forward::primitive_desc(
      {prop_kind::forward_training, alg, md(x), md(y), strides, kernel, pad, pad}, engine_);
  s.fwd = dnnl::pooling_forward(s.fwd_pd);
  s.bwd = dnnl::pooling_backward(dnnl::pooling_backward::primitive_desc(
      {alg, md(x), md(y), strides, kernel, pad, pad}, engine_, s.fwd_pd));
  if (d.kind == PoolKind::max) s.workspace = memory(s.fwd_pd.workspace_desc(), engine_);
  return pools_.insert_or_assign(op, std::move(s)).first->second;
}

void DnnlBackend::pool_forward(int op, const PoolDesc& d, const Tensor& x, Tensor& y) {
  PoolState& s = pool_state(op, d, x, y);
  std::unordered_map<int, memory> args = {{DNNL_ARG_SRC, mem(x)}, {DNNL_ARG_DST, mem(y)}};
  if (s.workspace) args.emplace(DNNL_ARG_WORKSPACE, s.workspace);
  run(s.fwd, args);
}

void DnnlBackend::pool_backward(int op, const PoolDesc& d, const Tensor& dy, Tensor& dx) {
  PoolState& s = pool_state(op, d, dx, dy);
  std::unordered_map<int, memory> args = {{DNNL_ARG_DIFF_DST, mem(dy)},
                                          {DNNL_ARG_DIFF_SRC, mem(dx)}};
  if (s.workspace) args.emplace(DNNL_ARG_WORKSPACE, s.workspace);
  run(s.bwd, args);
}

}  // namespace basin::exec::cpu
