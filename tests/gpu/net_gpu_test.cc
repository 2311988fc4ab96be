// Whole networks on the GPU backend: small ResNets (basic and bottleneck blocks) and ResNet-50
// forward and backward against the CPU backend on the same weights and images, the flat arrays'
// host boundary (checkpoints, .npy state), and a small ResNet learning a synthesized dataset
// through train() on the GPU.
#include "../catch.h"
#include "../temp_dir.h"
#include "backend_util.h"

#include <basin/data.h>
#include <basin/train.h>

#include <random>
#include <utility>
#include <vector>

using namespace basin;
using namespace basin::exec;
using namespace basin::exec::gpu_test;

namespace {

Backend& gpu() {
  static std::unique_ptr<Backend> b = make_gpu_backend();
  return *b;
}

// Weights from init() plus noise on batch norm's gamma and beta and the running statistics, so
// no block starts as the identity and every gradient is nonzero (as the torchvision tests do).
void perturb(Net& net, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.f, 1.f);
  std::uniform_real_distribution<float> uniform(0.5f, 1.5f);
  std::vector<float> p = net.to_host(net.params()), b = net.to_host(net.buffers());
  for (const auto& info : net.param_info())
    if (info.no_weight_decay)
      for (long long k = 0; k < info.count; ++k) p[info.offset + k] += 0.2f * normal(rng);
  for (const auto& info : net.buffer_info())
    for (long long k = 0; k < info.count; ++k)
      b[info.offset + k] = info.name.ends_with("var") ? uniform(rng) : 0.1f * normal(rng);
  net.from_host(p, net.params());
  net.from_host(b, net.buffers());
}

struct StepResult {
  std::vector<float> eval_logits, train_logits, buffers, grads;
  double loss = 0;
};

StepResult one_step(Net& net, const std::vector<float>& images, const std::vector<int>& labels) {
  StepResult r;
  net.forward(images.data(), Mode::eval);
  r.eval_logits = net.logits();
  net.forward(images.data(), Mode::training);
  r.train_logits = net.logits();
  r.buffers = net.to_host(net.buffers());
  r.loss = net.loss(labels.data(), 2.0 * net.batch());
  net.backward();
  r.grads = net.to_host(net.grads());
  return r;
}

#if BASIN_HAVE_DNNL
// Runs one step on the CPU and on the GPU from identical weights; checks outputs, statistics and
// (with `norm`, norm-relative) the whole gradient against `bound`, and each gradient tensor
// (max-relative, or norm-relative when `norm`) against `tensor_bound`.
void compare_networks(const model::Network& network, int batch, bool zero_init_residual,
                      double bound, bool norm, double tensor_bound) {
  auto cpu = make_cpu_backend(0);
  Net on_cpu(network, *cpu, batch), on_gpu(network, gpu(), batch);
  for (Net* net : {&on_cpu, &on_gpu}) {
    net->init({.seed = 3, .zero_init_residual = zero_init_residual});
    if (!zero_init_residual) perturb(*net, 9);
  }
  REQUIRE(on_cpu.to_host(on_cpu.params()) == on_gpu.to_host(on_gpu.params()));
  std::mt19937 rng(12);
  const int image = network.image_size;
  const auto images = randn(1LL * batch * 3 * image * image, rng);
  std::vector<int> labels(batch);
  for (int i = 0; i < batch; ++i) labels[i] = (7 * i + 3) % network.classes;

  const StepResult c = one_step(on_cpu, images, labels), g = one_step(on_gpu, images, labels);
  CHECK(relative_max_error(g.eval_logits, c.eval_logits) <= bound);
  CHECK(relative_max_error(g.train_logits, c.train_logits) <= bound);
  CHECK_THAT(g.loss, WithinRel(c.loss, bound));
  for (const auto& b : on_cpu.buffer_info()) {
    CAPTURE(b.name);
    CHECK(relative_max_error(std::span(g.buffers).subspan(b.offset, b.count),
                             std::span(c.buffers).subspan(b.offset, b.count)) <= bound);
  }
  double worst = 0;
  for (const auto& p : on_cpu.param_info()) {
    CAPTURE(p.name);
    const auto gg = std::span(g.grads).subspan(p.offset, p.count);
    const auto cg = std::span(c.grads).subspan(p.offset, p.count);
    const double e = norm ? relative_norm_error(gg, cg) : relative_max_error(gg, cg);
    worst = std::max(worst, e);
    CHECK(e <= tensor_bound);
  }
  const double whole = relative_norm_error(g.grads, c.grads);
  if (norm) CHECK(whole <= bound);
  WARN(network.name << " on " << gpu().name() << ": worst gradient tensor against the CPU ("
                    << (norm ? "norm" : "max") << "-relative) " << worst << "; the whole gradient "
                    << whole << " norm-relative");
}
#endif

}  // namespace

#if BASIN_HAVE_DNNL
TEST_CASE("Small ResNets forward and backward on the GPU match the CPU backend",
          "[exec][gpu][net]") {
  const bool bottleneck = GENERATE(false, true);
  CAPTURE(bottleneck);
  const auto network = model::resnet({.blocks = {1, 1}, .bottleneck = bottleneck, .width = 8,
                                      .image_size = 32, .classes = 10});
  // Bound 1e-3 max-relative on every output, statistic and gradient tensor: a few layers deep,
  // fp32 on both sides, sums in different orders.
  compare_networks(network, 3, false, 1e-3, false, 1e-3);
}

TEST_CASE("ResNet-50 forward and backward on the GPU match the CPU backend within 1e-3",
          "[exec][gpu][net][resnet50]") {
  // torchvision's initialization with zero-init residuals (what training starts from), batch 2
  // at 224x224. Bound 1e-3 relative: logits, loss and running statistics max-relative, and each
  // gradient tensor norm-relative: the two backends each decide ReLU ties (pre-activations
  // within rounding of zero) for themselves, and one tie decided differently moves single
  // entries of its channel's gradients by percents (tests/exec/torch_test.cc, which therefore
  // hands basin's decisions to its float64 reference). Zero-init residuals keep this test clear
  // of them: every block's last gamma is zero, so no gradient reaches the ReLUs inside the
  // branches, and only the stem's and the downsampling blocks' ReLUs can gate differently. The
  // same step on the CPU backend under two instruction sets, which round differently as the GPU
  // does (oneDNN's AVX-512 against ONEDNN_MAX_CPU_ISA=AVX2, 2026-12-07), differed by at most
  // 3.6e-5 norm-relative per gradient tensor. With perturbed gammas, as the small ResNets' test
  // has, ResNet-50 differed by 4.7e-2 (ties), the small ResNets by 1.2e-5 max-relative.
  // Left are about 3M downsampling-block ReLUs and 0.4M stem max-pool windows: with the backends
  // ~1e-7 to 5e-7 apart, about one may still go the other way, moving its block's gradient
  // tensors by ~1/sqrt(their size), ~1.1e-3. So 1e-3 holds for the whole gradient (and every
  // output), 5e-3 for each tensor: one flip passes, a wrong layer does not.
  compare_networks(model::network_by_name("resnet50", 224, 1000), 2, true, 1e-3, true, 5e-3);
}
#endif

TEST_CASE("Checkpoints and state files carry GPU parameters through the host",
          "[exec][gpu][state]") {
  basin::test::TempDir dir("gpu-state");
  const auto network = model::resnet({.blocks = {1}, .width = 8, .image_size = 16, .classes = 4});
  Net a(network, gpu(), 2), b(network, gpu(), 2);
  a.init({.seed = 5});
  perturb(a, 1);
  const long long n = static_cast<long long>(a.params().size());
  const Flat velocity = upload(gpu(), std::vector<float>(n, 0.25f));
  const Flat velocity2 = zeros(gpu(), n);
  write_checkpoint(dir.path / "c.basin", a, {velocity.get(), size_t(n)}, {.step = 3, .recipe = "{}"});
  const RunState s = read_checkpoint(dir.path / "c.basin", b, {velocity2.get(), size_t(n)});
  CHECK(s.step == 3);
  CHECK(b.to_host(b.params()) == a.to_host(a.params()));
  CHECK(b.to_host(b.buffers()) == a.to_host(a.buffers()));
  CHECK(download(gpu(), velocity2) == std::vector<float>(n, 0.25f));

  Net c(network, gpu(), 2);
  save_state(a, dir.path / "weights");
  load_state(c, dir.path / "weights");
  CHECK(c.to_host(c.params()) == a.to_host(a.params()));
  CHECK(c.to_host(c.buffers()) == a.to_host(a.buffers()));
}

TEST_CASE("A small ResNet learns a synthesized dataset on the GPU", "[exec][gpu][train]") {
  basin::test::TempDir dir("gpu-learn");
  TrainConfig c = learning_run(dir.path);
  const TrainSummary s = train(c, gpu());
  REQUIRE(s.finished);
  REQUIRE(s.epochs.size() == 3);
  // Chance is 10% top-1 and a loss of ln 10 = 2.3; the CPU run of the same recipe reaches 90%
  // in 6 epochs.
  CHECK(s.epochs.back().train_loss < s.epochs.front().train_loss * 0.75);
  CHECK(s.epochs.back().top1 >= 0.5);
  CHECK(std::filesystem::exists(c.out / "weights" / "fc.weight.npy"));
  CHECK(std::filesystem::exists(c.out / "checkpoint.basin"));
  WARN("GPU training: epoch losses " << s.epochs.front().train_loss << " -> "
                                     << s.epochs.back().train_loss << ", top-1 "
                                     << s.epochs.back().top1 << ", "
                                     << s.epochs.back().images_per_s << " images/s");
}
