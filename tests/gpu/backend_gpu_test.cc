// The GPU backend's layers, one by one, against the oneDNN CPU backend on the same random
// inputs, on awkward shapes (batch 3, odd channel counts, stride 2, the 7x7 stem, 1x1 convs,
// spatial fc input). Each comparison states its bound as a max-relative error (error over the
// reference tensor's largest entry): fp32 on both sides, differing only in summation order and
// algorithm (cuDNN may pick Winograd or FFT), so 1e-4 for sums over hundreds of terms and 1e-5
// or exact where little or nothing is summed. TF32 is off (GpuOptions default).
#include "../catch.h"
#include "backend_util.h"

#include <basin/backend.h>

#include <functional>
#include <random>
#include <vector>

#if BASIN_HAVE_DNNL

using namespace basin::exec;
using namespace basin::exec::gpu_test;

namespace {

Backend& cpu() {
  static std::unique_ptr<Backend> b = make_cpu_backend(0);
  return *b;
}
Backend& gpu(bool persistent_batchnorm = false) {
  static std::unique_ptr<Backend> plain = make_gpu_backend();
  static std::unique_ptr<Backend> persistent = make_gpu_backend({.persistent_batchnorm = true});
  return persistent_batchnorm ? *persistent : *plain;
}


struct ConvCase {
  const char* what;
  TensorDesc in;
  int out_c, kernel, stride, padding;
  // Floats the weights and their gradient sit past an aligned start, as in Net's flat arrays
  // (a 10-class fc's bias leaves every later parameter 8 bytes off 16-byte alignment).
  int offset = 0;
};

// The input gradient: none (the stem), written, or added to what dx holds (a block input's
// gradient summed in the convolution's backward).
enum class Dx { none, written, added };

Outputs run_conv(Backend& b, const ConvCase& k, Dx dx_mode, std::uint32_t seed) {
  std::mt19937 rng(seed);
  const int oh = (k.in.h + 2 * k.padding - k.kernel) / k.stride + 1;
  const int ow = (k.in.w + 2 * k.padding - k.kernel) / k.stride + 1;
  const ConvDesc d{k.in, {k.in.n, k.out_c, oh, ow}, k.kernel, k.stride, k.padding};
  const auto x_host = randn(k.in.elements(), rng);
  const auto w_host = randn(1LL * k.out_c * k.in.c * k.kernel * k.kernel, rng, 0.3f);
  const auto dy_host = randn(d.out.elements(), rng);
  Tensor x = tensor(b, k.in, x_host), y = b.alloc(d.out);
  std::vector<float> w_flat(k.offset, 0.f);
  w_flat.insert(w_flat.end(), w_host.begin(), w_host.end());
  Flat w = upload(b, w_flat), dw = zeros(b, w.n);
  b.conv_forward(0, d, x, w.get() + k.offset, y);
  Tensor dy = tensor(b, d.out, dy_host);
  Tensor dx = dx_mode == Dx::added ? tensor(b, k.in, randn(k.in.elements(), rng)) : b.alloc(k.in);
  b.conv_backward(0, d, x, w.get() + k.offset, dy, dx_mode == Dx::none ? nullptr : &dx,
                  dw.get() + k.offset, dx_mode == Dx::added);
  std::vector<float> dw_host = download(b, dw);
  dw_host.erase(dw_host.begin(), dw_host.begin() + k.offset);
  Outputs out = {{"y", read(b, y)}, {"dw", dw_host}};
  if (dx_mode != Dx::none) out.push_back({"dx", read(b, dx)});
  return out;
}

}  // namespace

TEST_CASE("GPU convolution forward and backward match the CPU backend", "[exec][gpu][conv]") {
  const ConvCase k = GENERATE(
      ConvCase{"3x3 stride 1", {3, 5, 13, 11}, 7, 3, 1, 1},
      ConvCase{"3x3 stride 2", {3, 6, 13, 13}, 9, 3, 2, 1},
      ConvCase{"7x7 stem stride 2", {3, 3, 29, 29}, 8, 7, 2, 3},
      ConvCase{"1x1", {3, 12, 9, 7}, 5, 1, 1, 0},
      // Right after the aligned 1x1 of the same shape: its algorithms must not be reused blindly.
      ConvCase{"1x1 weights 8 bytes off alignment", {3, 12, 9, 7}, 5, 1, 1, 0, 2},
      ConvCase{"3x3 weights 4 bytes off alignment", {3, 5, 13, 11}, 7, 3, 1, 1, 1},
      ConvCase{"1x1 stride 2 (downsample)", {3, 6, 9, 9}, 10, 1, 2, 0},
      ConvCase{"3x3 wide", {2, 64, 14, 14}, 64, 3, 1, 1});
  // Added first: the algorithm search for each shape then runs with dx holding a sum it must
  // not overwrite.
  const Dx dx = GENERATE(Dx::added, Dx::written, Dx::none);
  CAPTURE(k.what, static_cast<int>(dx));
  // Bound 1e-4: sums of up to 576 products in fp32 (and Winograd/FFT where cuDNN picks them).
  compare(run_conv(gpu(), k, dx, 5), run_conv(cpu(), k, dx, 5), 1e-4);
  // Twice on the GPU: the second run reuses the cached algorithms and converted-weight buffers.
  compare(run_conv(gpu(), k, dx, 6), run_conv(cpu(), k, dx, 6), 1e-4);
}

TEST_CASE("GPU batch norm matches the CPU backend in training and eval", "[exec][gpu][bn]") {
  // {8, 3, 1, 1}: 1x1 maps, 8 values a channel. Not 2: with two values per channel dx is what is
  // left of dy after removing its mean and its projection on x-hat, which span both values, so
  // dx is ~eps/var of dy, a difference of O(1) terms that cuDNN's and oneDNN's formulas round
  // differently by ~1e-2 of it.
  const TensorDesc io = GENERATE(TensorDesc{3, 5, 7, 9}, TensorDesc{3, 64, 8, 8},
                                 TensorDesc{8, 3, 1, 1});
  const bool fused_relu = GENERATE(false, true);
  // cuDNN's legacy spatial mode, and its persistent Ex mode (GpuOptions::persistent_batchnorm)
  // with the per-channel vectors aligned, and 4 bytes off as Net's flat arrays may put them.
  const bool persistent = GENERATE(false, true);
  const int offset = persistent ? GENERATE(0, 1) : 0;
  CAPTURE(io.n, io.c, io.h, io.w, fused_relu, persistent, offset);
  const BatchNormDesc d{io, 1e-5f, fused_relu};
  auto run = [&](Backend& b) {
    std::mt19937 rng(11);
    const auto x_host = randn(io.elements(), rng, 2.f);
    const auto gamma_host = randn(io.c, rng), beta_host = randn(io.c, rng);
    const auto dy_host = randn(io.elements(), rng);
    std::vector<float> mean_host(io.c), var_host(io.c);
    for (int k = 0; k < io.c; ++k) mean_host[k] = 0.1f * k, var_host[k] = 0.5f + 0.2f * k;
    // Each per-channel vector `offset` floats into its own flat array.
    auto padded = [&](const std::vector<float>& v) {
      std::vector<float> p(offset, 0.f);
      p.insert(p.end(), v.begin(), v.end());
      return upload(b, p);
    };
    auto unpadded = [&](const Flat& f) {
      std::vector<float> v = download(b, f);
      return std::vector<float>(v.begin() + offset, v.end());
    };
    const std::vector<float> zero(io.c, 0.f);
    Tensor x = tensor(b, io, x_host), y = b.alloc(io), ye = b.alloc(io), dx = b.alloc(io);
    Tensor dy = tensor(b, io, dy_host);
    Flat gamma = padded(gamma_host), beta = padded(beta_host);
    Flat batch_mean = padded(zero), batch_var = padded(zero);
    Flat running_mean = padded(mean_host), running_var = padded(var_host);
    Flat dgamma = padded(zero), dbeta = padded(zero);
    b.batchnorm_forward_eval(0, d, x, gamma.get() + offset, beta.get() + offset,
                             running_mean.get() + offset, running_var.get() + offset, ye);
    b.batchnorm_forward_training(0, d, x, gamma.get() + offset, beta.get() + offset, y,
                                 batch_mean.get() + offset, batch_var.get() + offset);
    b.update_running_stats(io.c, 1.0 * io.n * io.h * io.w, 0.1f, batch_mean.get() + offset,
                           batch_var.get() + offset, running_mean.get() + offset,
                           running_var.get() + offset);
    b.batchnorm_backward(0, d, x, gamma.get() + offset, dy, dx, dgamma.get() + offset,
                         dbeta.get() + offset);
    return Outputs{{"eval y", read(b, ye)},
                   {"training y", read(b, y)},
                   {"batch mean", unpadded(batch_mean)},
                   {"batch variance (biased)", unpadded(batch_var)},
                   {"running mean", unpadded(running_mean)},
                   {"running variance", unpadded(running_var)},
                   {"dx", read(b, dx)},
                   {"dgamma", unpadded(dgamma)},
                   {"dbeta", unpadded(dbeta)}};
  };
  // Bound 1e-4: per-channel sums over N*H*W values (up to 192) in fp32, and backward's
  // difference of two such sums.
  compare(run(gpu(persistent)), run(cpu()), 1e-4);
}

TEST_CASE("GPU pooling matches the CPU backend", "[exec][gpu][pool]") {
  struct Case {
    const char* what;
    PoolDesc d;
  };
  const Case k = GENERATE(
      Case{"max 3x3 stride 2 pad 1 (the stem's)", {PoolKind::max, {3, 6, 11, 11}, {3, 6, 6, 6}, 3, 2, 1}},
      Case{"max 3x3 stride 2 pad 1 even input", {PoolKind::max, {3, 5, 12, 12}, {3, 5, 6, 6}, 3, 2, 1}},
      Case{"global average 5x5", {PoolKind::average, {3, 7, 5, 5}, {3, 7, 1, 1}, 5, 1, 0}});
  CAPTURE(k.what);
  auto run = [&](Backend& b) {
    std::mt19937 rng(3);
    Tensor x = tensor(b, k.d.in, randn(k.d.in.elements(), rng)), y = b.alloc(k.d.out);
    Tensor dy = tensor(b, k.d.out, randn(k.d.out.elements(), rng)), dx = b.alloc(k.d.in);
    b.pool_forward(0, k.d, x, y);
    b.pool_backward(0, k.d, dy, dx);
    return Outputs{{"y", read(b, y)}, {"dx", read(b, dx)}};
  };
  // Bound 1e-5: a maximum is exact; an average sums 25 values.
  compare(run(gpu()), run(cpu()), 1e-5);
}

TEST_CASE("GPU fully connected matches the CPU backend", "[exec][gpu][fc]") {
  const TensorDesc in = GENERATE(TensorDesc{3, 10, 1, 1}, TensorDesc{3, 4, 3, 2});
  CAPTURE(in.n, in.c, in.h, in.w);
  const FcDesc d{in, {in.n, 7, 1, 1}};
  auto run = [&](Backend& b) {
    std::mt19937 rng(8);
    const long long fan_in = 1LL * in.c * in.h * in.w;
    Tensor x = tensor(b, in, randn(in.elements(), rng));
    Tensor y = b.alloc(d.out, Layout::plain), dx = b.alloc(in);
    Flat w = upload(b, randn(7 * fan_in, rng)), bias = upload(b, randn(7, rng));
    Flat dw = zeros(b, w.n), db = zeros(b, 7);
    Tensor dy = tensor(b, d.out, randn(d.out.elements(), rng), Layout::plain);
    b.fc_forward(0, d, x, w.get(), bias.get(), y);
    b.fc_backward(0, d, x, w.get(), dy, dx, dw.get(), db.get());
    return Outputs{{"y", read(b, y)}, {"dx", read(b, dx)}, {"dw", download(b, dw)},
                   {"db", download(b, db)}};
  };
  // Bound 1e-5: dot products of at most 24 terms.
  compare(run(gpu()), run(cpu()), 1e-5);
}

TEST_CASE("GPU ReLU add copy and tensor boundaries match the CPU backend",
          "[exec][gpu][elementwise]") {
  const TensorDesc d{3, 5, 7, 3};
  auto run = [&](Backend& b) {
    std::mt19937 rng(21);
    const auto a_host = randn(d.elements(), rng), b_host = randn(d.elements(), rng);
    Tensor a = tensor(b, d, a_host), c = tensor(b, d, b_host), y = b.alloc(d), r = b.alloc(d);
    Outputs out = {{"round trip", read(b, a)}};
    b.add(a, c, y);
    out.push_back({"a + b", read(b, y)});
    Tensor a2 = b.alloc(d);
    b.copy(a, a2);
    b.add(a2, c, a2);  // in place into the first input
    out.push_back({"a += b", read(b, a2)});
    b.copy(a, a2);
    b.add(c, a2, a2);  // in place into the second input
    out.push_back({"b + a into a", read(b, a2)});
    b.relu_forward(0, a, r);
    out.push_back({"relu", read(b, r)});
    Tensor g = tensor(b, d, b_host);
    b.relu_backward(0, r, g, g);  // in place, as the executor runs it
    out.push_back({"relu backward", read(b, g)});
    return out;
  };
  // Exact up to one rounding of the sum (the same IEEE add on both).
  compare(run(gpu()), run(cpu()), 1e-7);
}

TEST_CASE("GPU softmax cross-entropy matches the CPU backend", "[exec][gpu][loss]") {
  const TensorDesc d{5, 11, 1, 1};
  auto run = [&](Backend& b, double* loss) {
    std::mt19937 rng(2);
    Tensor logits = tensor(b, d, randn(d.elements(), rng, 3.f), Layout::plain);
    Tensor dlogits = b.alloc(d, Layout::plain);
    const std::vector<int> labels = {0, 10, 3, 3, 7};
    *loss = b.softmax_cross_entropy(logits, labels.data(), 12.0, dlogits);
    return Outputs{{"dlogits", read(b, dlogits)}};
  };
  double gpu_loss = 0, cpu_loss = 0;
  // Bound 1e-5: fp32 softmax on the GPU against the CPU's double sums.
  compare(run(gpu(), &gpu_loss), run(cpu(), &cpu_loss), 1e-5);
  CHECK_THAT(gpu_loss, WithinRel(cpu_loss, 1e-5));
  Tensor logits = gpu().alloc(d, Layout::plain), dl = gpu().alloc(d, Layout::plain);
  const std::vector<int> bad = {0, 11, 0, 0, 0};
  CHECK_THROWS_AS(gpu().softmax_cross_entropy(logits, bad.data(), 1.0, dl), std::invalid_argument);
}

TEST_CASE("GPU flat SGD step matches the CPU step with no-decay ranges", "[exec][gpu][sgd]") {
  const long long n = 1000;
  std::mt19937 rng(4);
  const auto w = randn(n, rng), v = randn(n, rng), g = randn(n, rng);
  const FlatSgdStep step{.lr = 0.3f, .momentum = 0.9f, .weight_decay = 0.01f, .nesterov = true,
                         .no_decay = {{0, 10}, {10, 17}, {500, 999}}};
  auto run = [&](Backend& b) {
    Flat fw = upload(b, w), fv = upload(b, v), fg = upload(b, g);
    b.sgd_step(fw.get(), fv.get(), fg.get(), n, step);
    b.sgd_step(fw.get(), fv.get(), fg.get(), n, step);
    return Outputs{{"weights", download(b, fw)}, {"velocity", download(b, fv)}};
  };
  // The same few fp32 operations per element (the GPU may contract them into FMAs).
  compare(run(gpu()), run(cpu()), 1e-6);
}

#else

TEST_CASE("GPU backend comparisons against the CPU need oneDNN", "[exec][gpu]") {
  WARN("skipped: built without oneDNN, so there is no CPU backend to compare the GPU with");
}

#endif
