// The oneDNN backend: tensors, layout boundaries, residual add and the loss. Layers with
// primitives of their own are in dnnl_conv_fc.cc and dnnl_norm_pool.cc.
#include "dnnl_backend.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

namespace basin::exec::cpu {
namespace {

std::string key(const char* what, const TensorDesc& d, int f1, int f2 = 0) {
  return std::string(what) + ":" + std::to_string(d.n) + "x" + std::to_string(d.c) + "x" +
         std::to_string(d.h) + "x" + std::to_string(d.w) + ":" + std::to_string(f1) + ":" +
         std::to_string(f2);
}

}  // namespace

DnnlBackend::DnnlBackend(int threads) : engine_(dnnl::engine::kind::cpu, 0), stream_(engine_) {
  if (threads > 0) omp_set_num_threads(threads);
  // The channel block that fills one vector register: 16 floats on AVX-512, 8 below.
  const auto isa = dnnl::get_effective_cpu_isa();
  blocked_ = isa >= dnnl::cpu_isa::avx512_core ? tag::nChw16c : tag::nChw8c;
}

std::string DnnlBackend::name() const {
  const auto* v = dnnl::version();
  return "oneDNN " + std::to_string(v->major) + "." + std::to_string(v->minor) + "." +
         std::to_string(v->patch) + (blocked_ == tag::nChw16c ? " (nChw16c, " : " (nChw8c, ") +
         std::to_string(omp_get_max_threads()) + " threads)";
}

memory::desc DnnlBackend::md(const Tensor& t) const {
  return memory::desc({t.desc.n, t.desc.c, t.desc.h, t.desc.w}, memory::data_type::f32,
                      static_cast<tag>(t.format));
}

tag DnnlBackend::format_for(const TensorDesc& desc, Layout layout) const {
  // Few channels (the RGB input, tiny test networks) gain nothing from blocking.
  return layout == Layout::native && desc.c >= 8 ? blocked_ : tag::nchw;
}

// Blocked layouts keep zeros in the channels padded up to the block, which a view of another
// shape would overwrite: memory is viewed as its own shape, or, where it holds exactly its own
// unpadded shape, as another shape that needs no padding either (the view's capacity is then
// its own size, so what once held a smaller view is not offered for a larger one). Always at
// offset 0: oneDNN's memory wants its own alignment.
Tensor DnnlBackend::view(const Tensor& storage, const TensorDesc& desc, Layout layout,
                         long long offset) {
  Tensor t{desc, layout, static_cast<int>(format_for(desc, layout))};
  if (!storage.data || offset != 0 || t.format != storage.format) return {};
  if (storage.desc == desc && storage.layout == layout) return storage;  // padding as it was
  if (storage.capacity != storage.desc.elements()) return {};
  const long long need = static_cast<long long>(md(t).get_size() / sizeof(float));
  if (need != desc.elements() || need > storage.capacity) return {};
  t.data = storage.data;
  t.capacity = need;
  return t;
}

Tensor DnnlBackend::alloc(const TensorDesc& desc, Layout layout) {
  if (desc.n < 1 || desc.c < 1 || desc.h < 1 || desc.w < 1)
    throw std::invalid_argument("tensor shape must be positive, got " + key("", desc, 0));
  Tensor t{desc, layout, static_cast<int>(format_for(desc, layout))};
  const size_t bytes = md(t).get_size();
  t.capacity = static_cast<long long>(bytes / sizeof(float));
  const size_t aligned = (bytes + 63) / 64 * 64;
  auto* p = static_cast<float*>(std::aligned_alloc(64, aligned));
  if (p == nullptr) throw std::bad_alloc();
  std::memset(p, 0, aligned);  // blocked layouts need zeros in the padded channels
  t.data = std::shared_ptr<float>(p, [](float* q) { std::free(q); });
  return t;
}

dnnl::reorder DnnlBackend::reorder_if_needed(const memory& from, const memory& to) const {
  if (from.get_desc() == to.get_desc()) return {};
  return dnnl::reorder(from, to);
}

void DnnlBackend::run(const dnnl::primitive& p, const std::unordered_map<int, memory>& args) {
  p.execute(stream_, args);
  stream_.wait();
}

void DnnlBackend::write_nchw(const float* src, Tensor& dst) {
  if (static_cast<tag>(dst.format) == tag::nchw) {
    std::memcpy(dst.ptr(), src, sizeof(float) * dst.desc.elements());
    return;
  }
  const auto& d = dst.desc;
  memory from = mem(memory::desc({d.n, d.c, d.h, d.w}, memory::data_type::f32, tag::nchw), src);
  memory to = mem(dst);
  auto& p = shared_[key("to", d, dst.format)];
  if (!p) p = dnnl::reorder(from, to);
  run(p, {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}});
}

void DnnlBackend::read_nchw(const Tensor& src, float* dst) {
  if (static_cast<tag>(src.format) == tag::nchw) {
    std::memcpy(dst, src.ptr(), sizeof(float) * src.desc.elements());
    return;
  }
  const auto& d = src.desc;
  memory from = mem(src);
  memory to = mem(memory::desc({d.n, d.c, d.h, d.w}, memory::data_type::f32, tag::nchw), dst);
  auto& p = shared_[key("from", d, src.format)];
  if (!p) p = dnnl::reorder(from, to);
  run(p, {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}});
}

void DnnlBackend::copy(const Tensor& src, Tensor& dst) {
  if (!(src.desc == dst.desc) || src.format != dst.format)
    throw std::invalid_argument("copy between tensors of different shapes or layouts");
  std::memcpy(dst.ptr(), src.ptr(), sizeof(float) * src.capacity);
}

void DnnlBackend::add(const Tensor& a, const Tensor& b, Tensor& y) {
  if (!(a.desc == b.desc) || !(a.desc == y.desc))
    throw std::invalid_argument("add of tensors of different shapes");
  auto& p = shared_[key("add", a.desc, a.format, b.format * 1000 + y.format)];
  if (!p) {
    dnnl::binary::desc d(dnnl::algorithm::binary_add, md(a), md(b), md(y));
    p = dnnl::binary(dnnl::binary::primitive_desc(d, engine_));
  }
  run(p, {{DNNL_ARG_SRC_0, mem(a)}, {DNNL_ARG_SRC_1, mem(b)}, {DNNL_ARG_DST, mem(y)}});
}

double DnnlBackend::softmax_cross_entropy(const Tensor& logits, const int* labels, double divisor,
                                          Tensor& dlogits, double grad_scale) {
  if (static_cast<tag>(logits.format) != tag::nchw || static_cast<tag>(dlogits.format) != tag::nchw)
    throw std::invalid_argument("softmax cross-entropy needs plain-layout logits");
  if (!(divisor > 0)) throw std::invalid_argument("loss divisor must be positive");
  const int n = logits.desc.n, k = logits.desc.c * logits.desc.h * logits.desc.w;
  double loss = 0;
  for (int i = 0; i < n; ++i) {
    if (labels[i] < 0 || labels[i] >= k)
      throw std::invalid_argument("label " + std::to_string(labels[i]) + " of image " +
                                  std::to_string(i) + " is outside [0, " + std::to_string(k) + ")");
    const float* z = logits.ptr() + 1LL * i * k;
    float* g = dlogits.ptr() + 1LL * i * k;
    // Shift by the maximum so exp() cannot overflow; sums in double for a stable log.
    const double zmax = *std::max_element(z, z + k);
    double sum = 0;
    for (int j = 0; j < k; ++j) sum += std::exp(z[j] - zmax);
    const double log_sum = std::log(sum);
    loss += -(z[labels[i]] - zmax - log_sum);
    for (int j = 0; j < k; ++j)
      // A power-of-two grad_scale is exact in double and commutes with the rounding to float,
      // so a scaled and unscaled run differ only where fp32 over- or underflows.
      g[j] = static_cast<float>((std::exp(z[j] - zmax - log_sum) - (j == labels[i])) / divisor *
                                grad_scale);
  }
  return loss / divisor;
}

}  // namespace basin::exec::cpu

namespace basin::exec {

std::unique_ptr<Backend> make_cpu_backend(int threads) {
  return std::make_unique<cpu::DnnlBackend>(threads);
}

}  // namespace basin::exec
