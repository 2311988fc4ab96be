// The oneDNN backend's layers with weights: convolution and fully connected (inner product).
//
// Weights arrive in plain layout (OIHW, [out][in]) from the executor's flat parameter buffer.
// Each primitive is created with `any` weights so oneDNN picks its fastest blocked layout; the
// plain weights are reordered into it once per forward (and once more for backward-data when
// that kernel wants another blocking), and the weight gradient is reordered back into the plain
// gradient buffer. Those reorders touch each weight a few times per step, against the hundreds
// of multiply-adds per weight that the convolution itself does.
#include <stdexcept>
#include <string>

#include "dnnl_backend.h"

namespace basin::exec::cpu {
namespace {

using dnnl::algorithm;
using dnnl::prop_kind;

bool same(const ConvDesc& a, const ConvDesc& b) {
  return a.in == b.in && a.out == b.out && a.kernel == b.kernel && a.stride == b.stride &&
         a.padding == b.padding;
}

memory::desc any(const memory::dims& d) {
  return memory::desc(d, memory::data_type::f32, tag::any);
}

// oneDNN's reference kernels ("ref:any"), its last resort, run hundreds of times slower than its
// JIT and GEMM ones.
bool is_reference(const std::string& impl) { return impl.rfind("ref", 0) == 0; }

}  // namespace

template <class State>
void DnnlBackend::prepare_weights(State& s, const memory::dims& plain_oihw) {
  const memory plain(memory::desc(plain_oihw, memory::data_type::f32, tag::oihw), engine_,
                     DNNL_MEMORY_NONE);
  s.w_fwd = memory(s.fwd_pd.weights_desc(), engine_);
  s.w_bwd = memory(s.bwd_data_pd.weights_desc(), engine_);
  s.dw = memory(s.bwd_weights_pd.diff_weights_desc(), engine_);
  s.to_w_fwd = reorder_if_needed(plain, s.w_fwd);
  s.to_w_bwd = reorder_if_needed(plain, s.w_bwd);
  s.from_dw = reorder_if_needed(s.dw, plain);
}

ConvState& DnnlBackend::conv_state(int op, const ConvDesc& d, const Tensor& x, const Tensor& y) {
  auto it = convs_.find(op);
  if (it != convs_.end() && same(it->second.desc, d)) return it->second;
  if (!(x.desc == d.in) || !(y.desc == d.out))
    throw std::invalid_argument("conv tensors do not match the layer's shapes");

  ConvState s;
  s.desc = d;
  const memory::dims w_dims = {d.out.c, d.in.c, d.kernel, d.kernel};
  const memory::dims strides = {d.stride, d.stride}, pad = {d.padding, d.padding};
  const memory::desc x_md = md(x), y_md = md(y);
  dnnl::convolution_forward::desc fd(prop_kind::forward_training, algorithm::convolution_direct,
                                     x_md, any(w_dims), y_md, strides, pad, pad);
  s.fwd_pd = dnnl::convolution_forward::primitive_desc(fd, engine_);
  dnnl::convolution_backward_data::desc bdd(algorithm::convolution_direct, x_md, any(w_dims), y_md,
                                            strides, pad, pad);
  s.bwd_data_pd = dnnl::convolution_backward_data::primitive_desc(bdd, engine_, s.fwd_pd);
  dnnl::convolution_backward_weights::desc bwd(algorithm::convolution_direct, x_md, any(w_dims),
                                               y_md, strides, pad, pad);
  s.bwd_weights_pd = dnnl::convolution_backward_weights::primitive_desc(bwd, engine_, s.fwd_pd);
  if (is_reference(s.bwd_weights_pd.impl_info_str())) {
    // oneDNN 2.6's JIT backward-weights kernels turn down some shapes in the activations'
    // blocked layout (a 3x3 kernel over a 2x2 image: ResNet's last stage at 64x64 inputs), and
    // its reference kernel then took 1.1 s of a 1.2 s step. Its GEMM kernel takes plain
    // layouts: let it choose x's and dy's layouts too (`any`), else name plain NCHW, and reorder
    // x and dy into them for this one primitive.
    const memory::dims x_dims = x_md.dims(), y_dims = y_md.dims();
    for (const tag t : {tag::any, tag::nchw}) {
      const memory::desc xt(x_dims, memory::data_type::f32, t), yt(y_dims, memory::data_type::f32, t);
      dnnl::convolution_backward_weights::desc free(algorithm::convolution_direct, xt, any(w_dims),
                                                    yt, strides, pad, pad);
      dnnl::convolution_backward_weights::primitive_desc pd(free, engine_, s.fwd_pd, true);
      if (!pd || is_reference(pd.impl_info_str())) continue;
      s.bwd_weights_pd = pd;
      s.x_bwd_w = memory(pd.src_desc(), engine_);
      s.dy_bwd_w = memory(pd.diff_dst_desc(), engine_);
      s.to_x_bwd_w = reorder_if_needed(memory(x_md, engine_, DNNL_MEMORY_NONE), s.x_bwd_w);
      s.to_dy_bwd_w = reorder_if_needed(memory(y_md, engine_, DNNL_MEMORY_NONE), s.dy_bwd_w);
      break;
    }
  }
  s.fwd = dnnl::convolution_forward(s.fwd_pd);
  s.bwd_data = dnnl::convolution_backward_data(s.bwd_data_pd);
  s.bwd_weights = dnnl::convolution_backward_weights(s.bwd_weights_pd);

  prepare_weights(s, w_dims);
  return convs_.insert_or_assign(op, std::move(s)).first->second;
}

void DnnlBackend::conv_forward(int op, const ConvDesc& d, const Tensor& x, const float* w,
                               Tensor& y) {
  ConvState& s = conv_state(op, d, x, y);
  memory user_w = mem(
      memory::desc({d.out.c, d.in.c, d.kernel, d.kernel}, memory::data_type::f32, tag::oihw), w);
  memory weights = user_w;
  if (s.to_w_fwd) {
    run(s.to_w_fwd, {{DNNL_ARG_FROM, user_w}, {DNNL_ARG_TO, s.w_fwd}});
    weights = s.w_fwd;
  }
  run(s.fwd, {{DNNL_ARG_SRC, mem(x)}, {DNNL_ARG_WEIGHTS, weights}, {DNNL_ARG_DST, mem(y)}});
}

// add_to_dx: oneDNN's backward-data has no sum into its output, so the gradient goes to a
// tensor of its own and is added (what Net does itself here: accumulates_conv_dx is false).
void DnnlBackend::conv_backward(int op, const ConvDesc& d, const Tensor& x, const float* w,
                                const Tensor& dy, Tensor* dx, float* dw, bool add_to_dx) {
  if (add_to_dx && dx != nullptr) {
    Tensor part = alloc(dx->desc, dx->layout);
    conv_backward(op, d, x, w, dy, &part, dw, false);
    add(*dx, part, *dx);
    return;
  }
  ConvState& s = conv_state(op, d, x, dy);
  const memory::desc plain({d.out.c, d.in.c, d.kernel, d.kernel}, memory::data_type::f32,
                           tag::oihw);
  if (dx != nullptr) {
    memory user_w = mem(plain, w), weights = user_w;
    if (s.to_w_bwd) {
      run(s.to_w_bwd, {{DNNL_ARG_FROM, user_w}, {DNNL_ARG_TO, s.w_bwd}});
      weights = s.w_bwd;
    }
    run(s.bwd_data,
        {{DNNL_ARG_DIFF_DST, mem(dy)}, {DNNL_ARG_WEIGHTS, weights}, {DNNL_ARG_DIFF_SRC, mem(*dx)}});
  }
  memory user_dw = mem(plain, dw), src = mem(x), diff_dst = mem(dy);
  if (s.to_x_bwd_w) {
    run(s.to_x_bwd_w, {{DNNL_ARG_FROM, src}, {DNNL_ARG_TO, s.x_bwd_w}});
    src = s.x_bwd_w;
  }
  if (s.to_dy_bwd_w) {
    run(s.to_dy_bwd_w, {{DNNL_ARG_FROM, diff_dst}, {DNNL_ARG_TO, s.dy_bwd_w}});
    diff_dst = s.dy_bwd_w;
  }
  run(s.bwd_weights, {{DNNL_ARG_SRC, src},
                      {DNNL_ARG_DIFF_DST, diff_dst},
                      {DNNL_ARG_DIFF_WEIGHTS, s.from_dw ? s.dw : user_dw}});
  if (s.from_dw) run(s.from_dw, {{DNNL_ARG_FROM, s.dw}, {DNNL_ARG_TO, user_dw}});
}

FcState& DnnlBackend::fc_state(int op, const FcDesc& d, const Tensor& x, const Tensor& y) {
  auto it = fcs_.find(op);
  if (it != fcs_.end() && it->second.desc.in == d.in && it->second.desc.out == d.out)
    return it->second;
  if (!(x.desc == d.in) || !(y.desc == d.out))
    throw std::invalid_argument("fc tensors do not match the layer's shapes");
  if (static_cast<tag>(y.format) != tag::nchw)
    throw std::invalid_argument("fc output must be a plain-layout tensor");

  FcState s;
  s.desc = d;
  const memory::dims w_dims = {d.out.c, d.in.c, d.in.h, d.in.w};
  const memory::desc x_md = md(x);
  const memory::desc y_md({d.out.n, d.out.c}, memory::data_type::f32, tag::nc);
  const memory::desc b_md({d.out.c}, memory::data_type::f32, tag::x);
  dnnl::inner_product_forward::desc fd(prop_kind::forward_training, x_md, any(w_dims), b_md, y_md);
  s.fwd_pd = dnnl::inner_product_forward::primitive_desc(fd, engine_);
  dnnl::inner_product_backward_data::desc bdd(x_md, any(w_dims), y_md);
  s.bwd_data_pd = dnnl::inner_product_backward_data::primitive_desc(bdd, engine_, s.fwd_pd);
  dnnl::inner_product_backward_weights::desc bwd(x_md, any(w_dims), b_md, y_md);
  s.bwd_weights_pd = dnnl::inner_product_backward_weights::primitive_desc(bwd, engine_, s.fwd_pd);
  s.fwd = dnnl::inner_product_forward(s.fwd_pd);
  s.bwd_data = dnnl::inner_product_backward_data(s.bwd_data_pd);
  s.bwd_weights = dnnl::inner_product_backward_weights(s.bwd_weights_pd);

  // [out][in] row-major is OIHW of the flattened input, whatever its H and W.
  prepare_weights(s, w_dims);
  return fcs_.insert_or_assign(op, std::move(s)).first->second;
}

void DnnlBackend::fc_forward(int op, const FcDesc& d, const Tensor& x, const float* w,
                             const float* b, Tensor& y) {
  FcState& s = fc_state(op, d, x, y);
  const memory::desc plain({d.out.c, d.in.c, d.in.h, d.in.w}, memory::data_type::f32, tag::oihw);
  memory user_w = mem(plain, w), weights = user_w;
  if (s.to_w_fwd) {
    run(s.to_w_fwd, {{DNNL_ARG_FROM, user_w}, {DNNL_ARG_TO, s.w_fwd}});
    weights = s.w_fwd;
  }
  run(s.fwd, {{DNNL_ARG_SRC, mem(x)},
              {DNNL_ARG_WEIGHTS, weights},
              {DNNL_ARG_BIAS, mem(s.fwd_pd.bias_desc(), b)},
              {DNNL_ARG_DST, mem(s.fwd_pd.dst_desc(), y.ptr())}});
}

void DnnlBackend::fc_backward(int op, const FcDesc& d, const Tensor& x, const float* w,
                              const Tensor& dy, Tensor& dx, float* dw, float* db) {
  FcState& s = fc_state(op, d, x, dy);
  const memory::desc plain({d.out.c, d.in.c, d.in.h, d.in.w}, memory::data_type::f32, tag::oihw);
  memory user_w = mem(plain, w), weights = user_w;
  if (s.to_w_bwd) {
    run(s.to_w_bwd, {{DNNL_ARG_FROM, user_w}, {DNNL_ARG_TO, s.w_bwd}});
    weights = s.w_bwd;
  }
  const memory dy_mem = mem(s.fwd_pd.dst_desc(), dy.ptr());
  run(s.bwd_data,
      {{DNNL_ARG_DIFF_DST, dy_mem}, {DNNL_ARG_WEIGHTS, weights}, {DNNL_ARG_DIFF_SRC, mem(dx)}});
  memory user_dw = mem(plain, dw);
  run(s.bwd_weights, {{DNNL_ARG_SRC, mem(x)},
                      {DNNL_ARG_DIFF_DST, dy_mem},
                      {DNNL_ARG_DIFF_WEIGHTS, s.from_dw ? s.dw : user_dw},
                      {DNNL_ARG_DIFF_BIAS, mem(s.bwd_weights_pd.diff_bias_desc(), db)}});
  if (s.from_dw) run(s.from_dw, {{DNNL_ARG_FROM, s.dw}, {DNNL_ARG_TO, user_dw}});
}

}  // namespace basin::exec::cpu
