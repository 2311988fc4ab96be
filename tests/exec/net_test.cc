// The whole executor network: the flat parameter layout against torchvision's published counts
// and tensor lists, initialization against its closed-form distributions, the gradient of the
// whole small ResNet against central differences of the loss, the batch divisor, and a few
// SGD steps that must lower the loss.
#include <basin/exec.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <random>

#include "../catch.h"
#include "gradcheck.h"

#if BASIN_HAVE_DNNL

using namespace basin;
using namespace basin::exec;

namespace {

// One thread: these shapes are too small to share, and a busy machine makes threads wait.
Backend& cpu() {
  static std::unique_ptr<Backend> b = make_cpu_backend(1);
  return *b;
}

// Two stages of basic blocks, 8 and 16 channels, on 16x16 images: every kind of layer,
// a projection shortcut and an identity one, small enough for thousands of forwards.
model::Network tiny() {
  return model::resnet(model::ResNetShape{
      .blocks = {1, 1}, .bottleneck = false, .width = 8, .image_size = 16, .classes = 5});
}

struct Batch {
  std::vector<float> images;
  std::vector<int> labels;
};

Batch random_batch(const model::Network& n, int batch, std::mt19937& rng) {
  Batch b{test::randn(1LL * batch * 3 * n.image_size * n.image_size, rng), {}};
  std::uniform_int_distribution<int> cls(0, n.classes - 1);
  for (int i = 0; i < batch; ++i) b.labels.push_back(cls(rng));
  return b;
}

double mean_of(std::span<const float> v) {
  double s = 0;
  for (float x : v) s += x;
  return s / v.size();
}

}  // namespace

TEST_CASE("Executor parameter counts equal torchvision's", "[exec]") {
  // torchvision.models documentation: ResNet-50 25,557,032 and ResNet-18 11,689,512 parameters;
  // state_dict: 161 and 62 parameter tensors (convs, batchnorm gamma and beta, fc weight and bias).
  auto [depth, params, tensors, blocks] =
      GENERATE(std::tuple{50, 25557032LL, 161, 16}, std::tuple{18, 11689512LL, 62, 8});
  CAPTURE(depth);
  Net net(model::resnet(depth, 32), cpu(), 1);
  CHECK(static_cast<long long>(net.params().size()) == params);
  CHECK(net.grads().size() == net.params().size());
  const auto& info = net.param_info();
  REQUIRE(static_cast<int>(info.size()) == tensors);

  // Backward order: contiguous from the fc to conv1, steps never decreasing.
  CHECK(info.front().name == "fc.weight");
  CHECK(info[1].name == "fc.bias");
  CHECK(info.back().name == "conv1.weight");
  long long offset = 0;
  for (size_t i = 0; i < info.size(); ++i) {
    CAPTURE(info[i].name);
    CHECK(info[i].offset == offset);
    long long shape = 1;
    for (long long d : tensor_shape(net.network(), info[i])) shape *= d;
    CHECK(shape == info[i].count);
    offset += info[i].count;
    if (i > 0) CHECK(info[i].backward_step >= info[i - 1].backward_step);
  }
  // No weight decay on batchnorm (2 tensors per conv) or the fc bias; the last batchnorm of
  // each residual block starts at zero: one gamma per block.
  const auto no_decay =
      std::count_if(info.begin(), info.end(), [](auto& p) { return p.no_weight_decay; });
  const int convs = (tensors - 2) / 3;
  CHECK(no_decay == 2 * convs + 1);
  std::vector<std::string> zero;
  for (const auto& p : info)
    if (p.last_bn_of_block) zero.push_back(p.name);
  CHECK(static_cast<int>(zero.size()) == blocks);
  for (const auto& z : zero) CHECK(z.ends_with(depth == 50 ? ".bn3.weight" : ".bn2.weight"));
  // Running mean and variance per batchnorm channel, not parameters.
  CHECK(net.buffer_info().size() == 2u * convs);
}

TEST_CASE("Initialization follows torchvision's distributions", "[exec]") {
  Net net(model::resnet(18, 32), cpu(), 1);
  net.init({.seed = 42});
  // kaiming_normal_(fan_out): std sqrt(2 / (512 * 9)) over 2.4 M samples (sampling error 0.05%).
  const ParamInfo& conv = net.param("layer4.1.conv2.weight");
  std::span<const float> w = std::as_const(net).params().subspan(conv.offset, conv.count);
  double s2 = 0;
  for (float x : w) s2 += 1.0 * x * x;
  CHECK_THAT(std::sqrt(s2 / w.size()), WithinRel(std::sqrt(2.0 / (512 * 9)), 5e-3));
  CHECK_THAT(mean_of(w), WithinAbs(0, 1e-4));
  // torch.nn.Linear: uniform in +-1/sqrt(512); its variance is bound^2 / 3.
  const ParamInfo& fc = net.param("fc.weight");
  std::span<const float> f = std::as_const(net).params().subspan(fc.offset, fc.count);
  const double bound = 1 / std::sqrt(512.0);
  CHECK(*std::max_element(f.begin(), f.end()) <= bound);
  CHECK(*std::min_element(f.begin(), f.end()) >= -bound);
  double f2 = 0;
  for (float x : f) f2 += 1.0 * x * x;
  CHECK_THAT(f2 / f.size(), WithinRel(bound * bound / 3, 2e-2));
  // Batchnorm: gamma 1 except the zero-initialised last of each block, beta 0; stats 0 and 1.
  auto value = [&](const std::string& name) { return net.params()[net.param(name).offset]; };
  CHECK(value("bn1.weight") == 1.f);
  CHECK(value("layer1.0.bn1.weight") == 1.f);
  CHECK(value("layer1.0.bn2.weight") == 0.f);
  CHECK(value("layer1.0.bn2.bias") == 0.f);
  for (const auto& b : net.buffer_info())
    CHECK(net.buffers()[b.offset] == (b.name.ends_with("var") ? 1.f : 0.f));

  // The same seed gives the same weights, another seed others.
  Net again(model::resnet(18, 32), cpu(), 1);
  again.init({.seed = 42});
  CHECK(std::equal(net.params().begin(), net.params().end(), again.params().begin()));
  again.init({.seed = 43});
  CHECK(!std::equal(net.params().begin(), net.params().end(), again.params().begin()));
  again.init({.seed = 42, .zero_init_residual = false});
  CHECK(again.params()[again.param("layer1.0.bn2.weight").offset] == 1.f);
}

TEST_CASE("Small ResNet gradients match central differences of the loss", "[exec]") {
  std::mt19937 rng(2024);
  const int batch = 4;
  Net net(tiny(), cpu(), batch);
  net.init({.seed = 1, .zero_init_residual = false});
  // Batchnorm gammas and betas away from 1 and 0, so no term of their gradient vanishes.
  for (const auto& p : net.param_info())
    if (p.no_weight_decay)
      for (long long k = 0; k < p.count; ++k)
        net.params()[p.offset + k] += 0.3f * test::randn(1, rng)[0];
  const Batch data = random_batch(net.network(), batch, rng);
  auto loss = [&] {
    net.forward(data.images.data(), Mode::training);
    return net.loss(data.labels.data(), batch);
  };
  loss();
  net.backward();
  const std::vector<float> grads(net.grads().begin(), net.grads().end());

  // In each tensor, the three entries with the largest gradients (differences of tiny gradients
  // are all rounding). ReLU and max pooling are piecewise linear: a step that crosses a kink
  // gives a wrong difference quotient by design, so each entry is tried at step sizes from 1e-3
  // down to 1e-5 and must agree at one of them, and three quarters must agree at the largest.
  // fp32 forward: the loss (about 1.6) carries ~1e-6 of rounding, 5e-4 after dividing by 2h.
  int checked = 0, agree_at_first = 0;
  for (const auto& p : net.param_info()) {
    std::vector<long long> idx(p.count);
    for (long long k = 0; k < p.count; ++k) idx[k] = p.offset + k;
    std::partial_sort(
        idx.begin(), idx.begin() + std::min<long long>(3, p.count), idx.end(),
        [&](long long a, long long b) { return std::abs(grads[a]) > std::abs(grads[b]); });
    for (int s = 0; s < std::min<long long>(3, p.count); ++s) {
      const long long k = idx[s];
      bool agree = false;
      std::vector<double> fds;
      for (double h : {1e-3, 3e-4, 1e-4, 3e-5, 1e-5}) {
        const float saved = net.params()[k];
        net.params()[k] = static_cast<float>(saved + h);
        const double up = loss();
        net.params()[k] = static_cast<float>(saved - h);
        const double down = loss();
        net.params()[k] = saved;
        fds.push_back((up - down) / (2 * h));
        const double tolerance = 2e-2 * std::abs(grads[k]) + 5e-4 * (1e-3 / h);
        if (std::abs(fds.back() - grads[k]) <= tolerance) {
          agree = true;
          agree_at_first += fds.size() == 1;
          break;
        }
      }
      CAPTURE(p.name, k - p.offset, fds, grads[k]);
      CHECK(agree);
      ++checked;
    }
  }
  CHECK(agree_at_first >= 3 * checked / 4);
  CHECK(checked == 3 * static_cast<int>(net.param_info().size()));
}

TEST_CASE("Gradients finish in buffer order and scale with the batch divisor", "[exec]") {
  std::mt19937 rng(9);
  const int batch = 2;
  Net net(tiny(), cpu(), batch);
  net.init({.seed = 5});
  const Batch data = random_batch(net.network(), batch, rng);
  net.forward(data.images.data(), Mode::training);
  const double l1 = net.loss(data.labels.data(), batch);
  // Copy the finished prefix at every callback; none of it may change later in backward.
  std::vector<std::vector<float>> snapshots;
  long long last = 0;
  int last_step = -1;
  net.backward([&](int step, long long ready) {
    CHECK(ready > last);
    CHECK(step > last_step);
    last = ready, last_step = step;
    snapshots.emplace_back(net.grads().begin(), net.grads().begin() + ready);
  });
  CHECK(last == static_cast<long long>(net.grads().size()));
  for (const auto& s : snapshots) CHECK(std::equal(s.begin(), s.end(), net.grads().begin()));
  const std::vector<float> g1(net.grads().begin(), net.grads().end());

  // Dividing by a global batch four times larger quarters the loss and every gradient.
  net.forward(data.images.data(), Mode::training);
  CHECK_THAT(net.loss(data.labels.data(), 4.0 * batch), WithinRel(l1 / 4, 1e-6));
  net.backward();
  for (size_t k = 0; k < g1.size(); k += 97)
    CHECK_THAT(net.grads()[k], WithinAbs(g1[k] / 4, 1e-6 + 1e-5 * std::abs(g1[k])));
}

TEST_CASE("A few SGD steps lower the loss of a small ResNet", "[exec]") {
  std::mt19937 rng(77);
  const int batch = 8;
  Net net(tiny(), cpu(), batch);
  net.init({.seed = 3});
  const Batch data = random_batch(net.network(), batch, rng);
  std::vector<double> losses;
  for (int step = 0; step < 8; ++step) {
    net.forward(data.images.data(), Mode::training);
    losses.push_back(net.loss(data.labels.data(), batch));
    net.backward();
    for (size_t k = 0; k < net.params().size(); ++k) net.params()[k] -= 0.1f * net.grads()[k];
  }
  CAPTURE(losses);
  // One fixed batch: plain SGD must fit it, from about log(5) = 1.6, lower at every step.
  CHECK_THAT(losses.front(), WithinAbs(std::log(5.0), 0.5));
  for (size_t i = 1; i < losses.size(); ++i) CHECK(losses[i] < losses[i - 1]);
  CHECK(losses.back() < 0.7 * losses.front());
}

TEST_CASE("The executor refuses misuse with clear errors", "[exec]") {
  CHECK_THROWS_AS(Net(tiny(), cpu(), 0), std::invalid_argument);
  Net net(tiny(), cpu(), 1);
  CHECK_THROWS_AS(net.backward(), std::logic_error);
  CHECK_THROWS_AS(net.param("fc.running_mean"), std::out_of_range);
  std::mt19937 rng(1);
  const Batch data = random_batch(net.network(), 1, rng);
  net.forward(data.images.data(), Mode::eval);
  net.loss(data.labels.data(), 1);
  CHECK_THROWS_AS(net.backward(), std::logic_error);  // eval mode has no batch statistics
  // One backward per forward: the first lends the forward's outputs to gradients.
  net.forward(data.images.data(), Mode::training);
  net.loss(data.labels.data(), 1);
  net.backward();
  net.loss(data.labels.data(), 1);
  CHECK_THROWS_WITH(net.backward(), Catch::Matchers::Contains("run forward again"));
  model::Network broken = tiny();
  broken.layers[3].inputs = {7};  // reads a later layer
  CHECK_THROWS_AS(Net(broken, cpu(), 1), std::invalid_argument);
}

#endif  // BASIN_HAVE_DNNL
