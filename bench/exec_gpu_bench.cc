// Benchmarks of the executor's GPU backend: one ResNet-50 v1.5 training step (forward, loss,
// backward, SGD step) at 224x224 with the images already on the GPU, in images per second and
// the device memory it holds; and in the same run PyTorch's step (bench/exec_torch_gpu.py:
// torchvision resnet50, channels_last, autocast, SGD) eager and under torch.compile, with the
// ratios basin / PyTorch. Prints "skipped: no GPU" and exits 77 without a GPU.
//
// Memory: device_GiB on both lines is the device memory in use after the timed steps less what
// was in use with only the CUDA context (cudaMemGetInfo), so library handles and workspaces
// count alike; PyTorch's lines add its caching allocator's peak reservation (peak_reserved)
// and what its tensors held at most (peak_allocated); basin's add what the planner budgets for
// the step (planned_GiB, sim::memory_needed_GB).
//
// Run on a GPU machine: build/bench/basin_exec_gpu_bench [--benchmark_filter=...]
// (BASIN_PYTHON names the interpreter with torch and torchvision; default python3).
#include <basin/exec.h>
#include <basin/cuda_check.h>
#include <basin/kernels.h>
#include <basin/train.h>
#include <basin/training.h>
#include <benchmark/benchmark.h>
#include <cuda_runtime.h>

#include "torch_peer.h"

#include <chrono>
#include <exception>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <tuple>
#include <vector>

namespace {

using basin::exec::Precision;
using Key = std::tuple<int, int, bool>;  // batch, precision, persistent batch norm
std::map<Key, double>& basin_images_per_s() {
  static std::map<Key, double> m;
  return m;
}

const char* name_of(Precision p) { return basin::exec::precision_name(p); }

double device_bytes_in_use() {
  size_t free = 0, total = 0;
  if (cudaMemGetInfo(&free, &total) != cudaSuccess) return 0;
  return static_cast<double>(total - free);
}

void basin_step(benchmark::State& state) {
  using namespace basin;
  const int batch = static_cast<int>(state.range(0));
  const auto precision = static_cast<Precision>(state.range(1));
  const bool persistent = state.range(2) != 0;
  cudaFree(nullptr);  // the context first, so the baseline holds it
  const double before = device_bytes_in_use();
  double held = 0, ips = 0;
  {
    auto backend =
        exec::make_gpu_backend({.persistent_batchnorm = persistent, .precision = precision});
    exec::Net net(model::resnet(50), *backend, batch);
    net.init({.seed = 1});
    auto velocity = backend->alloc_flat(static_cast<long long>(net.params().size()));
    std::span<float> v(velocity.get(), net.params().size());
    const exec::SyntheticBatch input = exec::synthetic_batch(batch, 224, 1000);
    const std::vector<int>& labels = input.labels;
    net.forward(input.images.data(), exec::Mode::training);  // stages the images on the device once
    const exec::SgdConfig sgd;
    // fp16 trains with a loss scale; a fixed power of two costs what a dynamic one does.
    const double scale = precision == Precision::fp16 ? 1024 : 1;
    auto step = [&] {
      net.forward_staged(exec::Mode::training);
      benchmark::DoNotOptimize(net.loss(labels.data(), batch, scale));  // waits for the device
      net.backward();
      if (scale != 1) backend->unscale_gradients(net.grads().data(), net.grads().size(), 1 / scale);
      exec::sgd_step(net, v, sgd, 0.1);
    };
    for (int i = 0; i < 3; ++i) step();  // algorithm search, workspace, weight copies
    double seconds = 0;
    for (auto _ : state) {
      const auto t0 = std::chrono::steady_clock::now();
      step();
      CUDA_CHECK(cudaDeviceSynchronize());  // an asynchronous error surfaces here, not as a time
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      state.SetIterationTime(s);
      seconds += s;
    }
    ips = batch * state.iterations() / seconds;
    held = device_bytes_in_use() - before;
    state.SetLabel(backend->name() + std::string(" ") + name_of(precision));
  }
  basin_images_per_s()[{batch, static_cast<int>(precision), persistent}] = ips;
  state.counters["images_per_s"] = ips;
  state.counters["device_GiB"] = held / (1 << 30);
  // Device memory in use before this configuration's backend: the CUDA context and the driver,
  // and libraries earlier configurations loaded (the report takes the least). The reserve a plan
  // must leave beside the step's own memory, which the planner does not count yet.
  state.counters["context_GiB"] = before / (1 << 30);
  // What the planner budgets for this step (sim::memory_needed_GB), beside what it held.
  const sim::Precision planned = precision == Precision::fp32   ? sim::Precision::fp32
                                 : precision == Precision::bf16 ? sim::Precision::bf16
                                                                : sim::Precision::fp16;
  state.counters["planned_GiB"] =
      sim::memory_needed_GB(model::resnet(50), batch, planned) * 1e9 / (1 << 30);
}

// A failing CUDA or cuDNN call throws; Google Benchmark would terminate on it, losing every later
// configuration, the PyTorch lines and the JSON. This configuration is reported failed instead.
void BM_BasinGpuResNet50Step(benchmark::State& state) {
  try {
    basin_step(state);
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());
  }
}

// PyTorch's step, `mode` eager or compile: the script times `iterations` steps after warm-up.
void torch_step(benchmark::State& state, const char* mode) {
  const int batch = static_cast<int>(state.range(0));
  const auto precision = static_cast<Precision>(state.range(1));
  const char* python = std::getenv("BASIN_PYTHON") ? std::getenv("BASIN_PYTHON") : "python3";
  const std::string out = basin::bench::run_torch_peer(
      state,
      std::string(python) + " " BASIN_EXEC_TORCH_GPU_SCRIPT " " + std::to_string(batch) + " " +
          name_of(precision) + " " + mode + " " + std::to_string(state.max_iterations),
      "PyTorch peer did not run: ");
  if (out.empty()) return;
  const double ips = basin::bench::peer_number(out, "images_per_s");
  state.counters["images_per_s"] = ips;
  state.counters["peak_reserved_GiB"] = basin::bench::peer_number(out, "peak_reserved_bytes") / (1 << 30);
  state.counters["peak_allocated_GiB"] = basin::bench::peer_number(out, "peak_bytes") / (1 << 30);
  // The same measure as basin's device_GiB: in use after the steps less the context alone.
  state.counters["device_GiB"] = basin::bench::peer_number(out, "device_used_bytes") / (1 << 30);
  // basin / PyTorch, with cuDNN's plain and (where measured) persistent batch norm.
  for (const bool persistent : {false, true}) {
    const auto it = basin_images_per_s().find({batch, static_cast<int>(precision), persistent});
    if (it != basin_images_per_s().end())
      state.counters[persistent ? "basin_persistent_bn_ratio" : "basin_ratio"] = it->second / ips;
  }
  state.SetLabel(std::string(mode) + ", torch " + basin::bench::peer_string(out, "torch"));
}
void BM_PyTorchGpuResNet50Step(benchmark::State& state) { torch_step(state, "eager"); }
void BM_PyTorchCompiledGpuResNet50Step(benchmark::State& state) { torch_step(state, "compile"); }

// Configuration by configuration, basin's lines then PyTorch's eager line, with its ratio to
// basin's of the same batch and precision, all in one process on one machine: batch 256 in bf16
// (the comparison), fp16 and fp32, and Goyal et al.'s 32 per GPU in fp32; the compiled
// lines last. A run stopped early thus keeps whole pairs. basin runs the batch-256 bf16 and fp16
// steps with cuDNN's plain and persistent batch norm (third argument 0 or 1), which is how
// GpuOptions::persistent_batchnorm's default is chosen.
const std::pair<int, Precision> kConfigurations[] = {
    {256, Precision::bf16}, {256, Precision::fp16}, {256, Precision::fp32}, {32, Precision::fp32}};

void register_benchmarks() {
  auto timed = [](benchmark::internal::Benchmark* b) {
    b->Iterations(20)->UseManualTime()->Unit(benchmark::kMillisecond);
  };
  for (auto [batch, p] : kConfigurations) {
    for (const long long persistent : {0, 1})
      if (persistent == 0 || (batch == 256 && p != Precision::fp32))
        timed(benchmark::RegisterBenchmark("BM_BasinGpuResNet50Step", BM_BasinGpuResNet50Step)
                  ->Args({batch, static_cast<long long>(p), persistent}));
    timed(benchmark::RegisterBenchmark("BM_PyTorchGpuResNet50Step", BM_PyTorchGpuResNet50Step)
              ->Args({batch, static_cast<long long>(p)}));
  }
  for (auto [batch, p] : kConfigurations)
    timed(benchmark::RegisterBenchmark("BM_PyTorchCompiledGpuResNet50Step", BM_PyTorchCompiledGpuResNet50Step)
              ->Args({batch, static_cast<long long>(p)}));
}

// Google Benchmark's reporters write through buffered streams and flush only at the end: a phase
// stopped by its cap (SIGTERM) would lose every line and the whole JSON. These flush each run.
class FlushingJson : public benchmark::JSONReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    JSONReporter::ReportRuns(runs);
    GetOutputStream().flush();
  }
};
class FlushingConsole : public benchmark::ConsoleReporter {
 public:
  FlushingConsole() : ConsoleReporter(OO_None) {}  // the library's default into a pipe: no colour, not tabular
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    GetOutputStream().flush();
  }
};

}  // namespace

int main(int argc, char** argv) {
  if (basin::kernels::cuda_device_count() == 0) {
    std::printf("skipped: no GPU\n");
    return 77;
  }
  // A file reporter without --benchmark_out is refused by Google Benchmark: only with one.
  bool to_file = false;
  for (int i = 1; i < argc; ++i) to_file |= std::string(argv[i]).rfind("--benchmark_out=", 0) == 0;
  benchmark::Initialize(&argc, argv);
  register_benchmarks();
  FlushingConsole console;
  FlushingJson json;
  benchmark::RunSpecifiedBenchmarks(&console, to_file ? &json : nullptr);
  benchmark::Shutdown();
  return 0;
}
