// Each backend operation's backward against finite differences of its forward (gradcheck.h),
// on small random shapes in both the blocked layout (8 or more channels) and the plain one,
// plus closed forms for batch norm's eval mode and the loss.
//
// Tolerances: relative error over the sampled entries under 1e-2 and every entry within 3% of
// the largest gradient seen; h = 1e-2 on inputs of unit scale (see gradcheck.h for why).
#include <basin/backend.h>

#include <cmath>
#include <memory>
#include <random>

#include "../catch.h"
#include "gradcheck.h"

#if BASIN_HAVE_DNNL

using namespace basin::exec;
using basin::exec::test::check_gradient;
using basin::exec::test::dot;
using basin::exec::test::randn;

namespace {

constexpr double kH = 1e-2;
constexpr int kSamples = 24;

// One thread: these shapes are too small to share, and a busy machine makes threads wait.
Backend& cpu() {
  static std::unique_ptr<Backend> b = make_cpu_backend(1);
  return *b;
}

std::vector<float> read(const Tensor& t) {
  std::vector<float> v(t.desc.elements());
  cpu().read_nchw(t, v.data());
  return v;
}

void expect_close(const test::GradCheck& c) {
  CHECK(c.relative_error < 1e-2);
  CHECK(c.worst < 3e-2);
}

// Values with every two at least 0.05 apart, shuffled: max pooling's argmax and ReLU's sign
// cannot flip under a perturbation of kH.
std::vector<float> spread(size_t n, std::mt19937& rng) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = 0.05f * (static_cast<float>(i) - n / 2.f) + 0.025f;
  std::shuffle(v.begin(), v.end(), rng);
  return v;
}

struct ConvCase {
  int n, c, h, k_out, kernel, stride, padding;
};

}  // namespace

TEST_CASE("Conv backward matches finite differences of its forward", "[exec]") {
  const ConvCase cc = GENERATE(ConvCase{2, 8, 9, 16, 3, 2, 1},  // blocked, strided, padded
                               ConvCase{2, 16, 6, 8, 1, 1, 0},  // 1x1, blocked
                               ConvCase{2, 3, 15, 8, 7, 2, 3},  // the stem: plain RGB input
                               ConvCase{2, 4, 5, 4, 3, 1, 1},   // plain in and out
                               // 3x3 over 2x2, blocked: oneDNN's JIT backward-weights turns it
                               // down, and the backend reorders x and dy for its GEMM kernel.
                               ConvCase{2, 16, 2, 16, 3, 1, 1});
  CAPTURE(cc.c, cc.h, cc.k_out, cc.kernel, cc.stride);
  std::mt19937 rng(7);
  const int out_h = (cc.h + 2 * cc.padding - cc.kernel) / cc.stride + 1;
  ConvDesc d{
      {cc.n, cc.c, cc.h, cc.h}, {cc.n, cc.k_out, out_h, out_h}, cc.kernel, cc.stride, cc.padding};
  Backend& b = cpu();
  Tensor x = b.alloc(d.in), y = b.alloc(d.out), dy = b.alloc(d.out), dx = b.alloc(d.in);
  std::vector<float> xv = randn(d.in.elements(), rng);
  std::vector<float> w = randn(1LL * cc.k_out * cc.c * cc.kernel * cc.kernel, rng, 0.3f);
  const std::vector<float> r = randn(d.out.elements(), rng);
  auto objective = [&] {
    b.write_nchw(xv.data(), x);
    b.conv_forward(1, d, x, w.data(), y);
    return dot(read(y), r);
  };
  objective();
  b.write_nchw(r.data(), dy);
  std::vector<float> dw(w.size());
  b.conv_backward(1, d, x, w.data(), dy, &dx, dw.data(), false);
  const std::vector<float> dxv = read(dx);
  expect_close(check_gradient(xv, dxv, objective, kSamples, rng, kH));
  expect_close(check_gradient(w, dw, objective, kSamples, rng, kH));
}

TEST_CASE("Batchnorm training backward matches finite differences for input gamma and beta",
          "[exec]") {
  // Blocked and plain; the last shape is ResNet-50's layer4 at 64x64 pixels, batch 2.
  const TensorDesc shape = GENERATE(TensorDesc{3, 8, 4, 5}, TensorDesc{3, 4, 4, 5},
                                    TensorDesc{2, 2048, 2, 2}, TensorDesc{4, 8, 8, 8});
  const int c = shape.c;
  CAPTURE(c, shape.n, shape.h);
  std::mt19937 rng(11);
  BatchNormDesc d{shape};
  Backend& b = cpu();
  Tensor x = b.alloc(d.io), y = b.alloc(d.io), dy = b.alloc(d.io), dx = b.alloc(d.io);
  std::vector<float> xv = randn(d.io.elements(), rng, 2.f);
  for (size_t i = 0; i < xv.size(); ++i)  // channels with different means
    xv[i] += static_cast<float>(i / (d.io.h * d.io.w) % c % 5);
  std::vector<float> gamma = randn(c, rng), beta = randn(c, rng);
  const std::vector<float> r = randn(d.io.elements(), rng);
  std::vector<float> mean(c), var(c);
  auto objective = [&] {
    b.write_nchw(xv.data(), x);
    b.batchnorm_forward_training(2, d, x, gamma.data(), beta.data(), y, mean.data(), var.data());
    return dot(read(y), r);
  };
  objective();
  b.write_nchw(r.data(), dy);
  std::vector<float> dgamma(c), dbeta(c);
  b.batchnorm_backward(2, d, x, gamma.data(), dy, dx, dgamma.data(), dbeta.data());
  const std::vector<float> dxv = read(dx);
  expect_close(check_gradient(xv, dxv, objective, kSamples, rng, kH));
  expect_close(check_gradient(gamma, dgamma, objective, c, rng, kH));
  expect_close(check_gradient(beta, dbeta, objective, c, rng, kH));

  // The batch statistics it reports: mean and biased variance of each channel.
  const int per_channel = d.io.n * d.io.h * d.io.w;
  for (int k = 0; k < c; ++k) {
    double s = 0, s2 = 0;
    for (int i = 0; i < d.io.n; ++i)
      for (int j = 0; j < d.io.h * d.io.w; ++j) {
        const double v = xv[(1LL * i * c + k) * d.io.h * d.io.w + j];
        s += v, s2 += v * v;
      }
    const double m = s / per_channel;
    CHECK_THAT(mean[k], WithinAbs(m, 1e-4 * (1 + std::abs(m))));
    CHECK_THAT(var[k], WithinRel(s2 / per_channel - m * m, 1e-4));
  }
}

TEST_CASE("Batchnorm with a fused ReLU equals batchnorm then ReLU", "[exec]") {
  const int c = GENERATE(8, 4);
  CAPTURE(c);
  std::mt19937 rng(29);
  BatchNormDesc plain{{3, c, 4, 4}}, fused = plain;
  fused.fused_relu = true;
  Backend& b = cpu();
  const TensorDesc d = plain.io;
  Tensor x = b.alloc(d), y = b.alloc(d), z = b.alloc(d), yf = b.alloc(d), dy = b.alloc(d),
         dz = b.alloc(d), dx = b.alloc(d), dxf = b.alloc(d);
  const std::vector<float> xv = randn(d.elements(), rng), gamma = randn(c, rng),
                           beta = randn(c, rng), r = randn(d.elements(), rng);
  std::vector<float> mean(c), var(c);
  b.write_nchw(xv.data(), x);
  // Unfused: batchnorm, ReLU, and backward through both.
  b.batchnorm_forward_training(30, plain, x, gamma.data(), beta.data(), y, mean.data(), var.data());
  b.relu_forward(31, y, z);
  b.write_nchw(r.data(), dz);
  b.relu_backward(31, z, dz, dy);
  std::vector<float> dgamma(c), dbeta(c), dgamma_f(c), dbeta_f(c);
  b.batchnorm_backward(30, plain, x, gamma.data(), dy, dx, dgamma.data(), dbeta.data());
  // Fused: one layer, fed the gradient of the ReLU's output.
  b.batchnorm_forward_training(32, fused, x, gamma.data(), beta.data(), yf, mean.data(),
                               var.data());
  b.batchnorm_backward(32, fused, x, gamma.data(), dz, dxf, dgamma_f.data(), dbeta_f.data());
  const std::vector<float> zv = read(z), yfv = read(yf), dxv = read(dx), dxfv = read(dxf);
  for (size_t i = 0; i < zv.size(); ++i) {
    CHECK_THAT(yfv[i], WithinAbs(zv[i], 1e-6));
    CHECK_THAT(dxfv[i], WithinAbs(dxv[i], 1e-5));
  }
  for (int k = 0; k < c; ++k) {
    CHECK_THAT(dgamma_f[k], WithinAbs(dgamma[k], 1e-5));
    CHECK_THAT(dbeta_f[k], WithinAbs(dbeta[k], 1e-5));
  }
}

TEST_CASE("Batchnorm eval normalises with the running statistics", "[exec]") {
  std::mt19937 rng(3);
  const int c = 8;
  BatchNormDesc d{{2, c, 3, 3}};
  Backend& b = cpu();
  Tensor x = b.alloc(d.io), y = b.alloc(d.io);
  const std::vector<float> xv = randn(d.io.elements(), rng), gamma = randn(c, rng),
                           beta = randn(c, rng), mean = randn(c, rng);
  std::vector<float> var = randn(c, rng);
  for (auto& v : var) v = v * v + 0.1f;
  b.write_nchw(xv.data(), x);
  b.batchnorm_forward_eval(4, d, x, gamma.data(), beta.data(), mean.data(), var.data(), y);
  const std::vector<float> yv = read(y);
  for (size_t i = 0; i < yv.size(); ++i) {
    const int k = static_cast<int>(i / 9 % c);
    const double want = (xv[i] - mean[k]) / std::sqrt(var[k] + 1e-5) * gamma[k] + beta[k];
    CHECK_THAT(yv[i], WithinAbs(want, 1e-5 * (1 + std::abs(want))));
  }
}

TEST_CASE("ReLU backward passes the gradient where the output is positive", "[exec]") {
  std::mt19937 rng(5);
  TensorDesc d{2, 8, 5, 5};
  Backend& b = cpu();
  Tensor x = b.alloc(d), y = b.alloc(d), dy = b.alloc(d), dx = b.alloc(d);
  std::vector<float> xv = spread(d.elements(), rng);
  const std::vector<float> r = randn(d.elements(), rng);
  auto objective = [&] {
    b.write_nchw(xv.data(), x);
    b.relu_forward(5, x, y);
    return dot(read(y), r);
  };
  objective();
  b.write_nchw(r.data(), dy);
  b.relu_backward(5, y, dy, dx);
  const std::vector<float> dxv = read(dx);
  expect_close(check_gradient(xv, dxv, objective, kSamples, rng, kH));
  for (size_t i = 0; i < xv.size(); ++i) CHECK(dxv[i] == (xv[i] > 0 ? r[i] : 0.f));
}

TEST_CASE("Pooling backward matches finite differences of its forward", "[exec]") {
  const int c = GENERATE(8, 4);
  const bool max = GENERATE(true, false);
  CAPTURE(c, max);
  std::mt19937 rng(13);
  // Max: ResNet's 3x3 stride 2 pad 1 on an odd size; average: the global pool before the fc.
  PoolDesc d = max ? PoolDesc{PoolKind::max, {2, c, 9, 9}, {2, c, 5, 5}, 3, 2, 1}
                   : PoolDesc{PoolKind::average, {2, c, 5, 5}, {2, c, 1, 1}, 5, 1, 0};
  Backend& b = cpu();
  Tensor x = b.alloc(d.in), y = b.alloc(d.out), dy = b.alloc(d.out), dx = b.alloc(d.in);
  std::vector<float> xv = spread(d.in.elements(), rng);
  const std::vector<float> r = randn(d.out.elements(), rng);
  auto objective = [&] {
    b.write_nchw(xv.data(), x);
    b.pool_forward(6, d, x, y);
    return dot(read(y), r);
  };
  objective();
  b.write_nchw(r.data(), dy);
  b.pool_backward(6, d, dy, dx);
  expect_close(check_gradient(xv, read(dx), objective, 3 * kSamples, rng, kH));
}

TEST_CASE("Fc backward matches finite differences for input weights and bias", "[exec]") {
  // Blocked 1x1 input (after the global pool) and a plain input with spatial size.
  const TensorDesc in = GENERATE(TensorDesc{3, 16, 1, 1}, TensorDesc{2, 4, 2, 2});
  CAPTURE(in.c, in.h);
  std::mt19937 rng(17);
  const int out = 5;
  FcDesc d{in, {in.n, out, 1, 1}};
  Backend& b = cpu();
  Tensor x = b.alloc(d.in), y = b.alloc(d.out, Layout::plain), dy = b.alloc(d.out, Layout::plain),
         dx = b.alloc(d.in);
  std::vector<float> xv = randn(in.elements(), rng);
  std::vector<float> w = randn(1LL * out * in.c * in.h * in.w, rng), bias = randn(out, rng);
  const std::vector<float> r = randn(d.out.elements(), rng);
  auto objective = [&] {
    b.write_nchw(xv.data(), x);
    b.fc_forward(7, d, x, w.data(), bias.data(), y);
    return dot(read(y), r);
  };
  objective();
  // y = x W^T + b, checked directly for the first output.
  double y00 = bias[0];
  for (int k = 0; k < in.c * in.h * in.w; ++k) y00 += static_cast<double>(xv[k]) * w[k];
  CHECK_THAT(read(y)[0], WithinAbs(y00, 1e-4));
  b.write_nchw(r.data(), dy);
  std::vector<float> dw(w.size()), db(out);
  b.fc_backward(7, d, x, w.data(), dy, dx, dw.data(), db.data());
  expect_close(check_gradient(xv, read(dx), objective, kSamples, rng, kH));
  expect_close(check_gradient(w, dw, objective, kSamples, rng, kH));
  expect_close(check_gradient(bias, db, objective, out, rng, kH));
}

TEST_CASE("Add sums its inputs in any layout", "[exec]") {
  const int c = GENERATE(8, 4);
  std::mt19937 rng(19);
  TensorDesc d{2, c, 3, 3};
  Backend& b = cpu();
  Tensor x = b.alloc(d), z = b.alloc(d);
  const std::vector<float> a = randn(d.elements(), rng), bv = randn(d.elements(), rng);
  b.write_nchw(a.data(), x);
  b.write_nchw(bv.data(), z);
  b.add(x, z, x);  // in place, as the executor sums gradients
  const std::vector<float> s = read(x);
  for (size_t i = 0; i < s.size(); ++i) CHECK(s[i] == a[i] + bv[i]);
}

TEST_CASE("Softmax cross-entropy matches its closed form and finite differences", "[exec]") {
  std::mt19937 rng(23);
  const int n = 4, k = 6;
  const double divisor = 16;  // a global batch larger than this rank's
  Backend& b = cpu();
  TensorDesc d{n, k, 1, 1};
  Tensor z = b.alloc(d, Layout::plain), dz = b.alloc(d, Layout::plain);
  const std::vector<int> labels = {0, 5, 2, 2};

  // Equal logits: every class has probability 1/k, so the loss is n log k / divisor.
  std::vector<float> zv(d.elements(), 0.5f);
  b.write_nchw(zv.data(), z);
  CHECK_THAT(b.softmax_cross_entropy(z, labels.data(), divisor, dz),
             WithinRel(n * std::log(k) / divisor, 1e-6));

  zv = randn(d.elements(), rng, 3.f);
  auto objective = [&] {
    b.write_nchw(zv.data(), z);
    return b.softmax_cross_entropy(z, labels.data(), divisor, dz);
  };
  objective();
  std::vector<float> g(d.elements());
  b.read_nchw(dz, g.data());
  auto c = check_gradient(zv, g, objective, n * k, rng, 1e-3);
  CHECK(c.relative_error < 1e-3);
  // Bad labels are an error, not a silent read outside the row.
  const std::vector<int> bad = {0, 6, 0, 0};
  CHECK_THROWS_AS(b.softmax_cross_entropy(z, bad.data(), divisor, dz), std::invalid_argument);
}

#endif  // BASIN_HAVE_DNNL
