// The GPU backend in bf16 and fp16 (GpuOptions::precision) against the fp32 CPU backend.
//
// Unit roundoff u (round to nearest, relative to the value): 2^-8 = 3.9e-3 in bf16 (8
// significant bits), 2^-11 = 4.9e-4 in fp16 (11).
//
// Layers: the CPU reference gets the inputs and weights already rounded to the compute
// precision (kernels' CPU cast, bit-identical to the GPU's), so what remains between the two is
// the GPU's one rounding of each output (at most u of the element, so of the tensor's largest)
// and the fp32 summation order. Bounds, max-relative: 4u, 1.6e-2 bf16 and 2e-3 fp16, room for a
// second rounding inside cuDNN (an algorithm that transforms in the data's type). Weight
// gradients are rounded once too (cuDNN returns them in the compute precision before the cast
// into fp32).
//
// Networks: a small ResNet (two stages, perturbed batch norm so nothing is an identity) with
// unrounded fp32 inputs on the CPU, so every layer's rounding accumulates. Each activation and
// activation gradient is rounded once per layer, about 30 roundings on the longest path forward
// and back. One rounding's relative error has an RMS of about 0.43u (uniform within half a unit
// in the last place, which is u to u/2 of the value), and independent errors add like a random
// walk: sqrt(30) x 0.43u = 9e-3 in bf16 and 1.2e-3 in fp16, norm-relative, with batch norm
// renormalizing after every conv so they do not compound. Bounds, norm-relative per tensor,
// about three times that: 3e-2 bf16, 4e-3 fp16 (logits, loss, running statistics, every
// gradient tensor). A wrong layout, index or formula is off by order 1.
#include "../catch.h"
#include "../temp_dir.h"
#include "backend_util.h"

#include <basin/data.h>
#include <basin/kernels.h>
#include <basin/train.h>

#include <cmath>
#include <functional>
#include <map>
#include <span>
#include <tuple>
#include <random>
#include <vector>

using namespace basin;
using namespace basin::exec;
using namespace basin::exec::gpu_test;

namespace {

// `persistent`: cuDNN's persistent batch norm (GpuOptions::persistent_batchnorm), which fuses
// the ReLU into batch norm in fp16. `fp32_copies`: batch norm and pooling on fp32 copies, the
// way out when cuDNN refuses their 16-bit type (GpuOptions::fp32_copies).
Backend& gpu(Precision p, bool persistent = false, bool fp32_copies = false) {
  static std::map<std::tuple<Precision, bool, bool>, std::unique_ptr<Backend>> backends;
  auto& b = backends[{p, persistent, fp32_copies}];
  if (!b)
    b = make_gpu_backend({.persistent_batchnorm = persistent, .fp32_copies = fp32_copies, .precision = p});
  return *b;
}

kernels::Precision kernel_precision(Precision p) {
  return p == Precision::bf16 ? kernels::Precision::bf16 : kernels::Precision::fp16;
}

// v rounded to precision p and widened back (exact), as the GPU stores it.
std::vector<float> rounded(const std::vector<float>& v, Precision p) {
  std::vector<std::uint16_t> bits(v.size());
  std::vector<float> out(v.size());
  kernels::cast_cpu(v.data(), kernels::Precision::fp32, bits.data(), kernel_precision(p), v.size());
  kernels::cast_cpu(bits.data(), kernel_precision(p), out.data(), kernels::Precision::fp32, v.size());
  return out;
}

double layer_bound(Precision p) { return p == Precision::bf16 ? 1.6e-2 : 2e-3; }
double network_bound(Precision p) { return p == Precision::bf16 ? 3e-2 : 4e-3; }
// A network's gradients also meet gate flips: a ReLU input (or a max-pool window's top two
// values) within the 16-bit error of each other goes the other way on the GPU than on the fp32
// CPU, and moves one element's whole gradient. About 1-3 such flips are expected per network in
// fp16 and over 10 in bf16; one, in a layer of 400-800 active positions, is 3-5e-2 of that
// layer's weight gradient. The forward is continuous, so logits, loss and statistics keep the
// rounding bound above.
double network_gradient_bound(Precision p) { return p == Precision::bf16 ? 0.15 : 0.05; }


// `round` is identity for the GPU (it rounds its inputs itself) and rounding for the CPU.
using Round = std::function<std::vector<float>(const std::vector<float>&)>;

// `offset`: floats the weights sit past an aligned start, as in Net's flat arrays (in bf16/fp16
// the weight copy is then offset by 2 bytes a float). `add_to_dx`: dx starts as random values
// (a block input's gradient begun by its other reader) and the input gradient is added to it.
Outputs run_conv(Backend& b, const ConvDesc& d, const Round& round, int offset = 0,
                 bool add_to_dx = false) {
  std::mt19937 rng(5);
  const auto x = round(randn(d.in.elements(), rng));
  std::vector<float> w(offset, 0.f);
  const auto w_host = round(randn(1LL * d.out.c * d.in.c * d.kernel * d.kernel, rng, 0.3f));
  w.insert(w.end(), w_host.begin(), w_host.end());
  const auto dy = round(randn(d.out.elements(), rng));
  const auto dx_before = round(randn(d.in.elements(), rng));
  Tensor tx = tensor(b, d.in, x), ty = b.alloc(d.out);
  Tensor tdx = add_to_dx ? tensor(b, d.in, dx_before) : b.alloc(d.in);
  Flat fw = upload(b, w), fdw = zeros(b, fw.n);
  // As Net does before a forward: the layer then reads its weights from the backend's copy.
  b.prepare_weights(fw.get(), fw.n);
  b.conv_forward(0, d, tx, fw.get() + offset, ty);
  Tensor tdy = tensor(b, d.out, dy);
  b.conv_backward(0, d, tx, fw.get() + offset, tdy, &tdx, fdw.get() + offset, add_to_dx);
  std::vector<float> dw = download(b, fdw);
  dw.erase(dw.begin(), dw.begin() + offset);
  return {{"y", read(b, ty)}, {"dx", read(b, tdx)}, {"dw", dw}};
}

Outputs run_bn(Backend& b, const BatchNormDesc& d, const Round& round) {
  std::mt19937 rng(11);
  const TensorDesc& io = d.io;
  const auto x = round(randn(io.elements(), rng, 2.f));
  const auto gamma = randn(io.c, rng), beta = randn(io.c, rng);
  const auto dy = round(randn(io.elements(), rng));
  Tensor tx = tensor(b, io, x), y = b.alloc(io), ye = b.alloc(io), dx = b.alloc(io);
  Tensor tdy = tensor(b, io, dy);
  Flat g = upload(b, gamma), be = upload(b, beta), mean = zeros(b, io.c), var = zeros(b, io.c);
  Flat rmean = upload(b, std::vector<float>(io.c, 0.1f)), rvar = upload(b, std::vector<float>(io.c, 0.7f));
  Flat dgamma = zeros(b, io.c), dbeta = zeros(b, io.c);
  b.batchnorm_forward_eval(0, d, tx, g.get(), be.get(), rmean.get(), rvar.get(), ye);
  b.batchnorm_forward_training(0, d, tx, g.get(), be.get(), y, mean.get(), var.get());
  b.batchnorm_backward(0, d, tx, g.get(), tdy, dx, dgamma.get(), dbeta.get());
  return {{"eval y", read(b, ye)},      {"training y", read(b, y)},
          {"batch mean", download(b, mean)}, {"batch variance", download(b, var)},
          {"dx", read(b, dx)},          {"dgamma", download(b, dgamma)},
          {"dbeta", download(b, dbeta)}};
}

Outputs run_fc(Backend& b, const FcDesc& d, const Round& round) {
  std::mt19937 rng(8);
  const long long fan_in = 1LL * d.in.c * d.in.h * d.in.w;
  const auto x = round(randn(d.in.elements(), rng));
  const auto w = round(randn(d.out.c * fan_in, rng));
  const auto dy = round(randn(d.out.elements(), rng));
  Tensor tx = tensor(b, d.in, x), y = b.alloc(d.out, Layout::plain), dx = b.alloc(d.in);
  Flat fw = upload(b, w), bias = upload(b, randn(d.out.c, rng));
  Flat dw = zeros(b, fw.n), db = zeros(b, d.out.c);
  Tensor tdy = tensor(b, d.out, dy, Layout::plain);
  b.fc_forward(0, d, tx, fw.get(), bias.get(), y);
  b.fc_backward(0, d, tx, fw.get(), tdy, dx, dw.get(), db.get());
  return {{"y", read(b, y)}, {"dx", read(b, dx)}, {"dw", download(b, dw)}, {"db", download(b, db)}};
}

}  // namespace

TEST_CASE("The GPU backend stores bf16 and fp16 activations and rounds at the host boundary",
          "[exec][gpu][precision]") {
  const Precision p = GENERATE(Precision::bf16, Precision::fp16);
  CAPTURE(precision_name(p));
  Backend& b = gpu(p);
  CHECK(b.precision() == p);
  std::mt19937 rng(2);
  const TensorDesc d{3, 5, 7, 3};
  const auto host = randn(d.elements(), rng);
  // An activation holds the rounded values; the logits (plain, one pixel) stay fp32.
  CHECK(read(b, tensor(b, d, host)) == rounded(host, p));
  const TensorDesc logits{3, 10, 1, 1};
  const auto z = randn(logits.elements(), rng);
  CHECK(read(b, tensor(b, logits, z, Layout::plain)) == z);
}

TEST_CASE("The GPU backend unscales and checks gradients as the CPU reference does",
          "[exec][gpu][loss_scale]") {
  Backend& b = gpu(Precision::fp32);
  std::mt19937 rng(17);
  auto host = randn(1000003, rng, 3000.f);
  const float factor = 1.f / 4096;
  // Clean, then an infinity in the last element, then clean again: the device flag must be
  // cleared between calls, and the unscaled values equal the reference's bit for bit.
  for (const bool plant : {false, true, false}) {
    CAPTURE(plant);
    std::vector<float> g = host;
    if (plant) g.back() = INFINITY;
    Flat f = upload(b, g);
    const bool finite = b.unscale_gradients(f.get(), f.n, factor);
    const bool want = kernels::unscale_check_finite_cpu(g.data(), g.size(), factor);
    CHECK(finite == want);
    CHECK(finite == !plant);
    CHECK(download(b, f) == g);
  }
}

#if BASIN_HAVE_DNNL
TEST_CASE("bf16 and fp16 GPU layers match the CPU backend on rounded inputs",
          "[exec][gpu][precision]") {
  static std::unique_ptr<Backend> cpu = make_cpu_backend(0);
  const Precision p = GENERATE(Precision::bf16, Precision::fp16);
  CAPTURE(precision_name(p));
  const Round same = [](const std::vector<float>& v) { return v; };
  const Round round = [p](const std::vector<float>& v) { return rounded(v, p); };
  for (const ConvDesc& d : {ConvDesc{{3, 5, 13, 11}, {3, 7, 13, 11}, 3, 1, 1},
                            ConvDesc{{3, 3, 29, 29}, {3, 8, 15, 15}, 7, 2, 3},
                            ConvDesc{{3, 12, 9, 7}, {3, 5, 9, 7}, 1, 1, 0},
                            ConvDesc{{2, 64, 14, 14}, {2, 64, 14, 14}, 3, 1, 1}}) {
    CAPTURE(d.in.c, d.out.c, d.kernel);
    compare(run_conv(gpu(p), d, same), run_conv(*cpu, d, round), layer_bound(p));
  }
  {
    // The 1x1 above again, its weight copy 2 bytes off alignment (conv algorithms by alignment).
    const ConvDesc d{{3, 12, 9, 7}, {3, 5, 9, 7}, 1, 1, 0};
    compare(run_conv(gpu(p), d, same, 1), run_conv(*cpu, d, round, 1), layer_bound(p));
  }
  {
    // Adding into dx, on a shape not seen before, so cuDNN's search runs with dx holding a sum
    // it must not overwrite; the blend is in fp32, rounded once.
    const ConvDesc d{{3, 6, 10, 10}, {3, 6, 10, 10}, 3, 1, 1};
    compare(run_conv(gpu(p), d, same, 0, true), run_conv(*cpu, d, round, 0, true), layer_bound(p));
  }
  // 64 channels: the shape cuDNN's fused fp16 BN + ReLU takes (persistent mode, C % 4 == 0);
  // 5: one it may turn down, which must fall back to the legacy mode and still match.
  for (const TensorDesc& io : {TensorDesc{3, 5, 7, 9}, TensorDesc{3, 64, 8, 8}})
    for (const bool relu : {false, true})
      for (const bool persistent : {false, true}) {
        const BatchNormDesc d{io, 1e-5f, relu};
        CAPTURE(io.c, relu, persistent);
        compare(run_bn(gpu(p, persistent), d, same), run_bn(*cpu, d, round), layer_bound(p));
      }
  // The way out should cuDNN refuse 16-bit batch norm: the same layers on fp32 copies, which
  // the count of such calls shows ran (training forward, eval forward and backward each time).
  for (const bool relu : {false, true}) {
    const BatchNormDesc d{{3, 5, 7, 9}, 1e-5f, relu};
    CAPTURE(relu);
    const long long before = fp32_copy_calls();
    compare(run_bn(gpu(p, false, true), d, same), run_bn(*cpu, d, round), layer_bound(p));
    CHECK(fp32_copy_calls() - before == 3);
  }
  for (const TensorDesc& in : {TensorDesc{3, 10, 1, 1}, TensorDesc{3, 4, 3, 2}}) {
    const FcDesc d{in, {in.n, 7, 1, 1}};
    compare(run_fc(gpu(p), d, same), run_fc(*cpu, d, round), layer_bound(p));
  }
}

TEST_CASE("A small ResNet in bf16 and fp16 on the GPU matches the fp32 CPU backend",
          "[exec][gpu][precision][net]") {
  const Precision p = GENERATE(Precision::bf16, Precision::fp16);
  const bool bottleneck = GENERATE(false, true);
  // Net's flat arrays put batch norm's vectors at any 4-byte offset: the persistent mode's
  // aligned copies are exercised here as training uses them.
  const bool persistent = GENERATE(false, true);
  // And the plain mode with batch norm and pooling on fp32 copies (GpuOptions::fp32_copies).
  const bool fp32_copies = persistent ? false : GENERATE(false, true);
  CAPTURE(precision_name(p), bottleneck, persistent, fp32_copies);
  const double bound = network_bound(p);
  const auto network = model::resnet({.blocks = {1, 1}, .bottleneck = bottleneck, .width = 8,
                                      .image_size = 32, .classes = 10});
  auto cpu = make_cpu_backend(0);
  const int batch = 3;
  Net on_cpu(network, *cpu, batch), on_gpu(network, gpu(p, persistent, fp32_copies), batch);
  for (Net* net : {&on_cpu, &on_gpu}) net->init({.seed = 3, .zero_init_residual = false});
  // Batch norm's gamma and beta away from 1 and 0 (as net_gpu_test's perturb), same on both.
  std::vector<float> params = on_cpu.to_host(on_cpu.params());
  std::mt19937 rng(9);
  for (const auto& info : on_cpu.param_info())
    if (info.no_weight_decay)
      for (long long k = 0; k < info.count; ++k) params[info.offset + k] += 0.2f * randn(1, rng)[0];
  on_cpu.from_host(params, on_cpu.params());
  on_gpu.from_host(params, on_gpu.params());
  const auto images = randn(1LL * batch * 3 * 32 * 32, rng);
  std::vector<int> labels = {1, 4, 7};
  // fp16 runs backward with a loss scale, as training does, and unscales on the host.
  const double scale = p == Precision::fp16 ? 1024 : 1;
  struct Result {
    std::vector<float> logits, buffers, grads;
    double loss = 0;
  };
  auto step = [&](Net& net, double grad_scale) {
    Result r;
    net.forward(images.data(), Mode::training);
    r.logits = net.logits();
    r.buffers = net.to_host(net.buffers());
    r.loss = net.loss(labels.data(), 2.0 * batch, grad_scale);
    net.backward();
    r.grads = net.to_host(net.grads());
    for (float& g : r.grads) g = static_cast<float>(g / grad_scale);
    return r;
  };
  const long long copies_before = fp32_copy_calls();
  const Result c = step(on_cpu, 1), g = step(on_gpu, scale);
  // With fp32_copies every batch norm and pooling call of the step ran on copies.
  if (fp32_copies) CHECK(fp32_copy_calls() > copies_before);
  CHECK(relative_norm_error(g.logits, c.logits) <= bound);
  CHECK_THAT(g.loss, WithinRel(c.loss, bound));
  CHECK(relative_norm_error(g.buffers, c.buffers) <= bound);
  double worst = 0;
  for (const auto& info : on_cpu.param_info()) {
    CAPTURE(info.name);
    const double e = relative_norm_error(std::span(g.grads).subspan(info.offset, info.count),
                                         std::span(c.grads).subspan(info.offset, info.count));
    worst = std::max(worst, e);
    CHECK(e <= network_gradient_bound(p));
  }
  WARN(precision_name(p) << (bottleneck ? " bottleneck" : " basic")
                         << ": worst gradient tensor against fp32 CPU (norm-relative) " << worst);
}
#endif

TEST_CASE("A small ResNet learns a synthesized dataset on the GPU in bf16 and fp16",
          "[exec][gpu][precision][train]") {
  const Precision p = GENERATE(Precision::bf16, Precision::fp16);
  CAPTURE(precision_name(p));
  basin::test::TempDir dir("gpu-mixed-learn");
  TrainConfig c = learning_run(dir.path);
  c.loss_scale.enabled = p == Precision::fp16;  // what basin train --precision fp16 does
  const TrainSummary s = train(c, gpu(p));
  REQUIRE(s.finished);
  // As the fp32 GPU test: chance is 10% top-1 and a loss of ln 10.
  CHECK(s.epochs.back().train_loss < s.epochs.front().train_loss * 0.75);
  CHECK(s.epochs.back().top1 >= 0.5);
  // From 2^16 each overflow halves the scale: a handful of skips, not a tenth of the run.
  CHECK(s.skipped_steps <= 9);
  WARN(precision_name(p) << " GPU training: epoch losses " << s.epochs.front().train_loss
                         << " -> " << s.epochs.back().train_loss << ", top-1 "
                         << s.epochs.back().top1 << ", " << s.skipped_steps << " skipped steps, "
                         << s.epochs.back().images_per_s << " images/s");
}
