// basin's executor against torchvision itself: the same weights (random, with batchnorm
// parameters and running statistics away from their defaults so nothing cancels), the same
// images, then logits in eval and training mode, running statistics after a training forward,
// and every parameter's gradient. The reference is tests/exec/torch_reference.py run by
// Debian's /usr/bin/python3; CMake registers these tests only when it imports torch and
// torchvision, and otherwise a ctest entry says they were skipped.
//
// Logits are compared with torch's fp32 results: max |basin - torch| / max |torch| under 1e-4,
// the figure; running statistics under 1e-3 (batch variances are summed in fp32 here,
// in double by torch). Gradients are compared with torch's float64 gradients, the exact
// reference, within 1e-3 max-relative per tensor (measured 1e-5 for ResNet-18 and 2e-4 to 3e-4
// for ResNet-50, with oneDNN's AVX2 and AVX-512 kernels alike).
//
// The float64 reference takes basin's ReLU decisions. A pre-activation within rounding of zero
// (at 4x4 maps and batch 4 there are always some a few 1e-6 from it) is positive in one
// correct computation and negative in another, and one such element flipped moves a whole
// channel's gradients by percents: ResNet-18 on an AVX-512 CPU, whose oneDNN kernels round
// differently from its AVX2 ones, kept one output float64 drops and was 7% off; torch's own
// fp32 gradients, deciding ties for themselves, are up to 2e-1 off ResNet-50's float64 ones,
// which had been taken for ill-conditioning. So the test records which outputs of every
// training-mode ReLU basin kept (RecordingBackend) and torch_reference.py's float64 model
// applies those masks in place of its ReLUs: the gradients compared are then of the same
// piecewise-linear function, and the bound measures arithmetic, not which side of zero a tie
// fell on. The script prints how many of basin's decisions float64 would have made otherwise
// (1 of 753,664 for ResNet-18 on AVX-512, 4 to 11 of 3,137,536 for ResNet-50).
#include <basin/exec.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <random>

#include "../catch.h"
#include "../temp_dir.h"
#include "cpu_forwarding.h"

#if BASIN_HAVE_DNNL && BASIN_EXEC_HAVE_TORCH

using namespace basin;
using namespace basin::exec;

namespace {

// The CPU backend, recording after each training-mode ReLU (its own, or fused into batch norm)
// which outputs are positive, in call order: the masks torch_reference.py's float64 model
// applies. Residual add + ReLU is Backend::add_relu's default, add then relu_forward, so it
// passes through relu_forward here as it does in the CPU backend.
class RecordingBackend final : public exec::test::CpuForwarding {
 public:
  bool recording = false;
  std::vector<std::pair<TensorDesc, std::vector<float>>> masks;

  void batchnorm_forward_training(int op, const BatchNormDesc& d, const Tensor& x, const float* gamma,
                                  const float* beta, Tensor& y, float* mean, float* var) override {
    CpuForwarding::batchnorm_forward_training(op, d, x, gamma, beta, y, mean, var);
    if (d.fused_relu) record(y);
  }
  void relu_forward(int op, const Tensor& x, Tensor& y) override {
    CpuForwarding::relu_forward(op, x, y);
    record(y);
  }

 private:
  void record(const Tensor& y) {
    if (!recording) return;
    std::vector<float> v(static_cast<size_t>(y.desc.elements()));
    read_nchw(y, v.data());
    for (float& e : v) e = e > 0 ? 1.f : 0.f;
    masks.emplace_back(y.desc, std::move(v));
  }
};

double relative_max_error(std::span<const float> ours, std::span<const float> theirs) {
  REQUIRE(ours.size() == theirs.size());
  double diff = 0, scale = 0;
  for (size_t i = 0; i < ours.size(); ++i) {
    diff = std::max(diff, std::abs(1.0 * ours[i] - theirs[i]));
    scale = std::max(scale, std::abs(1.0 * theirs[i]));
  }
  return diff / std::max(scale, 1e-30);
}

void compare_with_torchvision(int depth, int image, int batch) {
  const int classes = 10;
  auto backend = std::make_unique<RecordingBackend>();
  Net net(model::resnet(depth, image, classes), *backend, batch);
  net.init({.seed = 17, .zero_init_residual = false});
  std::mt19937 rng(depth);
  std::normal_distribution<float> normal(0.f, 1.f);
  std::uniform_real_distribution<float> uniform(0.5f, 1.5f);
  for (const auto& p : net.param_info())
    if (p.no_weight_decay)
      for (long long k = 0; k < p.count; ++k) net.params()[p.offset + k] += 0.2f * normal(rng);
  for (const auto& b : net.buffer_info())
    for (long long k = 0; k < b.count; ++k)
      net.buffers()[b.offset + k] = b.name.ends_with("var") ? uniform(rng) : 0.1f * normal(rng);

  std::vector<float> images(1LL * batch * 3 * image * image);
  for (auto& x : images) x = normal(rng);
  std::vector<int> labels(batch);
  for (int i = 0; i < batch; ++i) labels[i] = (7 * i + 3) % classes;
  const double divisor = 2.0 * batch;  // as if another rank held the other half

  // Its own directory (two checkouts' test runs on one machine must not share one).
  const basin::test::TempDir scratch("exec-torch-" + net.network().name);
  const std::filesystem::path& dir = scratch.path;
  save_state(net, dir / "state");
  write_npy(dir / "input.npy", images, {batch, 3, image, image});
  write_npy(dir / "labels.npy", std::vector<float>(labels.begin(), labels.end()), {batch});
  // basin first: the training forward's ReLU masks are the float64 reference's.
  net.forward(images.data(), Mode::eval);
  const std::vector<float> eval_logits = net.logits();
  backend->recording = true;
  net.forward(images.data(), Mode::training);
  backend->recording = false;
  const std::vector<float> train_logits = net.logits();
  std::filesystem::create_directories(dir / "masks");
  for (size_t i = 0; i < backend->masks.size(); ++i) {
    const auto& [d, mask] = backend->masks[i];
    char file[32];
    std::snprintf(file, sizeof file, "%03zu.npy", i);
    write_npy(dir / "masks" / file, mask, {d.n, d.c, d.h, d.w});
  }
  net.loss(labels.data(), divisor);
  net.backward();

  const std::string cmd = "/usr/bin/python3 " BASIN_EXEC_TORCH_SCRIPT " " + dir.string() +
                          " --arch " + net.network().name + " --classes " +
                          std::to_string(classes) + " --divisor " + std::to_string(divisor) +
                          " --relu-masks " + (dir / "masks").string();
  INFO(cmd);
  REQUIRE(std::system(cmd.c_str()) == 0);
  auto torch = [&](const std::string& name) {
    return read_npy(dir / "torch" / (name + ".npy"), nullptr);
  };

  // The masks are basin's to give only if its ReLUs decide as float64 does but for ties:
  // a handful of outputs within rounding of zero, not a wrong comparison or a stale tensor.
  const std::vector<float> flipped = torch("relu_flipped");
  REQUIRE(flipped.size() == 2);
  INFO("float64 decides " << flipped[0] << " of basin's " << flipped[1] << " ReLU outputs otherwise");
  CHECK(flipped[0] <= 1e-5 * flipped[1]);
  CHECK(relative_max_error(eval_logits, torch("eval_logits")) < 1e-4);
  CHECK(relative_max_error(train_logits, torch("train_logits")) < 1e-4);
  for (const auto& b : net.buffer_info()) {
    CAPTURE(b.name);
    // Batch variances summed in fp32 here and in double by torch: 1e-3.
    CHECK(relative_max_error(std::as_const(net).buffers().subspan(b.offset, b.count),
                             torch("after." + b.name)) < 1e-3);
  }
  double worst = 0, torch_worst = 0;
  for (const auto& p : net.param_info()) {
    CAPTURE(p.name);
    const auto ours = std::as_const(net).grads().subspan(p.offset, p.count);
    const std::vector<float> exact = torch("grad64." + p.name), fp32 = torch("grad." + p.name);
    const double e = relative_max_error(ours, exact), t = relative_max_error(fp32, exact);
    worst = std::max(worst, e), torch_worst = std::max(torch_worst, t);
    CHECK(e < 1e-3);
  }
  WARN(net.network().name << " gradients against float64 torch with basin's ReLU masks, worst tensor "
                          "(max-relative): basin " << worst << "; torch fp32, deciding its own ReLUs, " << torch_worst);
  std::filesystem::remove_all(dir);
}

}  // namespace

TEST_CASE("ResNet-18 outputs and gradients match torchvision", "[exec][torch]") {
  compare_with_torchvision(18, 64, 4);
}

TEST_CASE("ResNet-50 outputs and gradients match torchvision", "[exec][torch]") {
  compare_with_torchvision(50, 64, 4);
}

#endif
