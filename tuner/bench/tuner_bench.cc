// What the plugin adds to every collective NCCL schedules: one getCollInfo call through the
// dlopen()ed plugin, with the matching rule last among N (the first match wins, so this is the
// slowest case). The peer is the same call on a communicator without rules, timed in the same
// run; the counter `x_no_rules` is the ratio. Also: parsing a rules file of N rows.
#include <basin/tuner.h>
#include <benchmark/benchmark.h>
#include <dlfcn.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>

#include "nccl_tuner_abi.h"

namespace {

using basin::tuner::Rule;

void quiet_logger(ncclDebugLogLevel, unsigned long, const char*, int, const char*, ...) {}

// N allreduce rules over disjoint byte ranges; the query size falls in the last.
basin::tuner::Selection rules(int n) {
  basin::tuner::Selection s;
  for (int i = 0; i < n; ++i)
    s.rules.push_back({.collective = basin::tuner::Collective::allreduce,
                       .min_bytes = std::uint64_t(i) * 1000,
                       .max_bytes = std::uint64_t(i) * 1000 + 999,
                       .algorithm = basin::tuner::Algorithm::ring,
                       .protocol = basin::tuner::Protocol::ll128,
                       .channels = 4});
  return s;
}

struct Plugin {
  void* handle;
  const ncclTuner_v5_t* v5;
  Plugin() {
    handle = ::dlopen(BASIN_TUNER_PLUGIN, RTLD_NOW | RTLD_LOCAL);
    if (!handle) throw std::runtime_error(::dlerror());
    v5 = static_cast<const ncclTuner_v5_t*>(::dlsym(handle, "ncclTunerPlugin_v5"));
  }
  ~Plugin() { ::dlclose(handle); }
  void* context(const char* file) const {
    if (file)
      ::setenv("BASIN_TUNER_FILE", file, 1);
    else
      ::setenv("BASIN_TUNER_FILE", "/nonexistent/basin-bench", 1);
    void* ctx = nullptr;
    v5->init(&ctx, 1, 8, 1, quiet_logger, nullptr, nullptr);
    ::unsetenv("BASIN_TUNER_FILE");
    return ctx;
  }
};

double call(const Plugin& p, void* ctx, size_t bytes) {
  float table[7][3];
  for (auto& row : table)
    for (float& cell : row) cell = 1.0f;
  int channels = 0;
  p.v5->getCollInfo(ctx, ncclFuncAllReduce, bytes, 1, reinterpret_cast<float**>(table), 7, 3, 0,
                    &channels);
  return table[1][1] + channels;
}

// Seconds per call, by a plain loop: the peer's figure inside each benchmark.
double seconds_per_call(const Plugin& p, void* ctx, size_t bytes) {
  constexpr int kCalls = 1000000;
  double sink = 0;
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < kCalls; ++i) sink += call(p, ctx, bytes);
  benchmark::DoNotOptimize(sink);
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() / kCalls;
}

void BM_GetCollInfo(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  const auto path = std::filesystem::temp_directory_path() / "basin-tuner-bench.json";
  basin::tuner::save_selection_json(rules(n), path.string());
  Plugin plugin;
  void* with_rules = plugin.context(path.c_str());
  void* without = plugin.context(nullptr);
  const size_t bytes = size_t(n - 1) * 1000 + 500;
  if (call(plugin, with_rules, bytes) != 4.0) state.SkipWithError("the last rule did not apply");

  for (auto _ : state) benchmark::DoNotOptimize(call(plugin, with_rules, bytes));

  const double ours = seconds_per_call(plugin, with_rules, bytes);
  const double peer = seconds_per_call(plugin, without, bytes);
  state.counters["no_rules_ns"] = peer * 1e9;
  state.counters["x_no_rules"] = ours / peer;
  plugin.v5->finalize(with_rules);
  plugin.v5->finalize(without);
  std::filesystem::remove(path);
}
BENCHMARK(BM_GetCollInfo)->Arg(1)->Arg(16)->Arg(64)->Arg(256);

void BM_ParseSelection(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  const std::string json = basin::tuner::format_selection_json(rules(n));
  const std::string csv = basin::tuner::format_nccl_conf(rules(n).rules);
  for (auto _ : state)
    benchmark::DoNotOptimize(basin::tuner::parse_selection_json(json, "bench").rules.size());
  // The CSV reader on the same rows, for comparison.
  auto start = std::chrono::steady_clock::now();
  constexpr int kParses = 50;
  for (int i = 0; i < kParses; ++i)
    benchmark::DoNotOptimize(basin::tuner::parse_nccl_conf(csv, "bench").size());
  const double csv_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() / kParses;
  state.counters["csv_us"] = csv_s * 1e6;
  state.counters["rows"] = n;
}
BENCHMARK(BM_ParseSelection)->Arg(16)->Arg(256)->Arg(4096)->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
