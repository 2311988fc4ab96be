// Benchmarks of the executor's CPU backend: one ResNet-50 training step (forward, loss,
// backward) at 224x224 in images per second, and in the same run the same step in PyTorch
// (torchvision's resnet50 under /usr/bin/python3, same batch and thread count), with the ratio
// basin / PyTorch; likewise ResNet-18 at 64x64, whose last stage is a 3x3 convolution over 2x2
// images (a shape oneDNN's JIT backward-weights kernels turn down). Figures go to
// reports/exec-cpu-<date>.md.
//
// Each benchmark takes one warm-up step first (allocation, oneDNN primitive creation, the
// equivalent first call in PyTorch), then times steps one by one; counters: images_per_s and,
// on the PyTorch line, ratio = basin images/s over PyTorch images/s.
#include <basin/exec.h>
#include <benchmark/benchmark.h>

#include "torch_peer.h"

#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <utility>

namespace {

using Key = std::tuple<int, int, int, int>;  // depth, image size, batch, threads
std::map<Key, double>& basin_images_per_s() {
  static std::map<Key, double> m;
  return m;
}

#if BASIN_HAVE_DNNL
void basin_step(benchmark::State& state, int depth, int image) {
  using namespace basin;
  const int batch = static_cast<int>(state.range(0)), threads = static_cast<int>(state.range(1));
  auto backend = exec::make_cpu_backend(threads);
  exec::Net net(model::network_by_name("resnet" + std::to_string(depth), image, 1000), *backend, batch);
  net.init({.seed = 1});
  const exec::SyntheticBatch input = exec::synthetic_batch(batch, image, 1000);
  const std::vector<int>& labels = input.labels;
  auto step = [&] {
    net.forward(input.images.data(), exec::Mode::training);
    benchmark::DoNotOptimize(net.loss(labels.data(), batch));
    net.backward();
  };
  step();
  double seconds = 0;
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    step();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    state.SetIterationTime(s);
    seconds += s;
  }
  const double ips = batch * state.iterations() / seconds;
  basin_images_per_s()[{depth, image, batch, threads}] = ips;
  state.counters["images_per_s"] = ips;
  state.SetLabel(backend->name());
}
void BM_BasinResNet50Step(benchmark::State& state) { basin_step(state, 50, 224); }
void BM_BasinResNet18Step64(benchmark::State& state) { basin_step(state, 18, 64); }
#endif

void torch_step(benchmark::State& state, int depth, int image) {
  const int batch = static_cast<int>(state.range(0)), threads = static_cast<int>(state.range(1));
  const int steps = static_cast<int>(state.max_iterations);
  const std::string out = basin::bench::run_torch_peer(
      state,
      "/usr/bin/python3 " BASIN_EXEC_TORCH_STEP_SCRIPT " resnet" + std::to_string(depth) + " " +
          std::to_string(batch) + " " + std::to_string(image) + " " + std::to_string(threads) + " " +
          std::to_string(steps),
      "PyTorch peer did not run (needs python3-torch python3-torchvision): ");
  if (out.empty()) return;
  const double ips = basin::bench::peer_number(out, "images_per_s");
  state.counters["images_per_s"] = ips;
  const auto it = basin_images_per_s().find({depth, image, batch, threads});
  if (it != basin_images_per_s().end()) state.counters["ratio"] = it->second / ips;
  state.SetLabel("torch " + basin::bench::peer_string(out, "torch"));
}
void BM_PyTorchResNet50Step(benchmark::State& state) { torch_step(state, 50, 224); }
void BM_PyTorchResNet18Step64(benchmark::State& state) { torch_step(state, 18, 64); }

// Batch 16 on 2 threads and on 1: the per-GPU batch of Goyal et al. (32) halved to keep a
// step within seconds on a two-core machine. Each basin line is followed by its PyTorch line,
// so the two are measured minutes apart at most and the PyTorch line can show the ratio.
#if BASIN_HAVE_DNNL
BENCHMARK(BM_BasinResNet50Step)
    ->Args({16, 2})
    ->Iterations(3)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);
#endif
BENCHMARK(BM_PyTorchResNet50Step)
    ->Args({16, 2})
    ->Iterations(3)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);
#if BASIN_HAVE_DNNL
BENCHMARK(BM_BasinResNet50Step)
    ->Args({16, 1})
    ->Iterations(3)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);
#endif
BENCHMARK(BM_PyTorchResNet50Step)
    ->Args({16, 1})
    ->Iterations(3)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);
// ResNet-18 at 64x64, batch 32 on 2 threads: small images, as in quick experiments and tests.
#if BASIN_HAVE_DNNL
BENCHMARK(BM_BasinResNet18Step64)
    ->Args({32, 2})
    ->Iterations(5)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);
#endif
BENCHMARK(BM_PyTorchResNet18Step64)
    ->Args({32, 2})
    ->Iterations(5)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace
BENCHMARK_MAIN();
