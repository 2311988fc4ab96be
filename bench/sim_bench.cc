// Micro-benchmarks of the simulator: one simulated ResNet-50 iteration (hierarchical allreduce,
// one bucket per layer, contention on) on growing Big Basin clusters, network set-up included;
// and each allreduce algorithm on 4,096 GPUs.
#include <basin/plan.h>
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

// One collective's cost on 4,096 H100s (512 DGX H100 on a 2:1 fat tree), routing included: the
// flat algorithms put every GPU on the fabric, the worst case for the engine.
void BM_Allreduce4096(benchmark::State& state) {
  using namespace basin;
  static const topo::Topology t = topo::load_any("dgx-h100:512,fabric=fat-tree:2");
  const auto a = static_cast<sim::Algorithm>(state.range(0));
  for (auto _ : state) {
    sim::Network net(t, {.per_message_overhead_us = 5});
    benchmark::DoNotOptimize(sim::allreduce_cost(net, topo::gpus(t), a).seconds_per_byte);
  }
  state.SetLabel(sim::to_string(a));
}
BENCHMARK(BM_Allreduce4096)
    ->DenseRange(0, static_cast<int>(basin::sim::Algorithm::hierarchical))
    ->Unit(benchmark::kMillisecond);

// `basin plan`'s search on Goyal's hardware (bigbasin:32), growing the search space through the
// number of bucket sizes and precisions tried; counters: configurations and configurations/s.
void BM_Plan(benchmark::State& state) {
  using namespace basin;
  static const topo::Topology t = topo::load_any("bigbasin:32");
  static const sim::DeviceProfile p =
      sim::find_device_profile(sim::default_profiles_dir(), t.graph[topo::gpus(t)[0]].model);
  plan::PlanOptions o;
  const std::vector<double> buckets = {0, 1, 4, 25, 50, 100};
  o.buckets_MB.assign(buckets.begin(), buckets.begin() + state.range(0));
  using P = sim::Precision;
  o.precisions = {{P::fp32, P::fp32}, {P::fp32, P::fp16}, {P::fp16, P::fp16}};
  o.precisions.resize(state.range(1));
  int evaluated = 0;
  for (auto _ : state) evaluated = plan::make_plan(t, p, o).evaluated;
  state.counters["configs"] = evaluated;
  state.counters["configs_per_s"] =
      benchmark::Counter(evaluated, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_Plan)->Args({1, 1})->Args({4, 1})->Args({4, 3})->Args({6, 3})->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
