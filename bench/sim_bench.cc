// Micro-benchmarks of the simulator: one simulated ResNet-50 iteration (hierarchical allreduce,
// one bucket per layer, contention on) on growing Big Basin clusters, network set-up included.
#include <basin/training.h>

#include <benchmark/benchmark.h>

namespace {

void BM_SimulateIteration(benchmark::State& state) {
  using namespace basin;
  const int servers = static_cast<int>(state.range(0));
  topo::Topology t = topo::load_any("bigbasin:" + std::to_string(servers));
  sim::DeviceProfile p =
      sim::find_device_profile(sim::default_profiles_dir(), t.graph[topo::gpus(t)[0]].model);
  sim::TrainingConfig cfg{.network = model::resnet(50), .gpus = servers * 8, .batch_per_gpu = 32};
  for (auto _ : state) benchmark::DoNotOptimize(sim::simulate_iteration(t, p, cfg).iteration_s);
  state.counters["gpus"] = servers * 8;
}
BENCHMARK(BM_SimulateIteration)->Arg(4)->Arg(32)->Arg(128)->Arg(512)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
