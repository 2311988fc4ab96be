// Allreduce bus bandwidth of basin's comm layer (Gloo over TCP on loopback, 2 and 4 local rank
// processes, 4 KB to 64 MB, each of Gloo's algorithms) and, in the same run, of
// torch.distributed's gloo backend on the same ranks and sizes (bench/comm_torch_gloo.py), with
// the ratio. Figures go to reports/comm-gloo-<date>.md.
//
// nccl-tests' definitions: algbw = bytes / time, busbw = algbw * 2(p-1)/p. The benchmark process
// is rank 0; ranks 1..p-1 are forked for each line (before rank 0 opens a socket) and run the same
// fixed number of allreduces. Each side does one warm-up allreduce per size (for basin it also
// builds the cached Gloo algorithm); rank 0 then times every allreduce, back to back. The
// summary at the end uses the median per line on both sides.
#include <basin/comm.h>
#include <benchmark/benchmark.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <map>
#include <string>
#include <tuple>
#include <vector>

namespace {

using namespace basin::comm;

constexpr Algorithm algorithms[] = {Algorithm::ring, Algorithm::ring_chunked, Algorithm::halving_doubling,
                                    Algorithm::bcube};
const std::vector<long long> sizes{4LL << 10, 16LL << 10, 64LL << 10, 256LL << 10,
                                   1LL << 20,  4LL << 20,  16LL << 20, 64LL << 20};

// Enough repetitions to average out scheduling noise on small sizes, few on the large ones.
int iterations_for(long long bytes) { return static_cast<int>(std::clamp(256LL * 1024 * 1024 / bytes / 4, 3LL, 40LL)); }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}
double busbw_GBps(long long bytes, int ranks, double seconds) {
  return seconds > 0 ? bytes / seconds * 2.0 * (ranks - 1) / ranks / 1e9 : 0;
}

using Line = std::tuple<int, long long, int>;  // ranks, bytes, algorithm (-1: torch)
std::map<Line, double>& medians() {
  static std::map<Line, double> m;
  return m;
}

RendezvousConfig rank_config(int rank, int ranks, const std::string& dir) {
  RendezvousConfig c;
  c.rank = rank;
  c.world_size = ranks;
  c.file_dir = dir;
  c.timeout = std::chrono::milliseconds(60000);
  return c;
}

void BM_BasinAllreduce(benchmark::State& state, int ranks, long long bytes, Algorithm algorithm) {
  const long long count = bytes / 4;
  const int iterations = static_cast<int>(state.max_iterations);
  char pattern[] = "/tmp/basin-comm-bench-XXXXXX";
  const std::string dir = mkdtemp(pattern);
  const AllreduceOptions options{.algorithm = algorithm};
  std::vector<pid_t> children;
  std::fflush(nullptr);
  for (int r = 1; r < ranks; ++r) {
    const pid_t pid = fork();
    if (pid == 0) {
      int code = 0;
      try {
        auto comm = connect(rank_config(r, ranks, dir));
        std::vector<float> data(static_cast<std::size_t>(count), static_cast<float>(r + 1));
        comm->allreduce(data, options);
        comm->barrier();
        for (int i = 0; i < iterations; ++i) comm->allreduce(data, options);
        comm->barrier();
      } catch (const std::exception& e) {
        std::fprintf(stderr, "rank %d: %s\n", r, e.what());
        code = 1;
      }
      _exit(code);
    }
    children.push_back(pid);
  }
  std::vector<double> seconds;
  try {
    auto comm = connect(rank_config(0, ranks, dir));
    std::vector<float> data(static_cast<std::size_t>(count), 1.0f);
    comm->allreduce(data, options);
    comm->barrier();
    for (auto _ : state) {
      const auto t0 = std::chrono::steady_clock::now();
      comm->allreduce(data, options);
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      state.SetIterationTime(s);
      seconds.push_back(s);
    }
    comm->barrier();
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());
  }
  for (pid_t pid : children) waitpid(pid, nullptr, 0);
  std::filesystem::remove_all(dir);
  const double m = median(seconds);
  medians()[{ranks, bytes, static_cast<int>(algorithm)}] = m;
  state.counters["busbw_GBps"] = busbw_GBps(bytes, ranks, m);
  state.SetBytesProcessed(static_cast<long long>(state.iterations()) * bytes);
  state.SetLabel(name(algorithm));
}

// One python run per rank count covers every size; the first torch line of that count starts it.
struct TorchRun {
  std::string error, version;
  std::map<long long, std::vector<double>> seconds;
};
const TorchRun& torch_run(int ranks) {
  static std::map<int, TorchRun> runs;
  auto [it, fresh] = runs.try_emplace(ranks);
  if (!fresh) return it->second;
  std::string cmd = "/usr/bin/python3 " BASIN_COMM_TORCH_SCRIPT " " + std::to_string(ranks);
  for (long long b : sizes) cmd += " " + std::to_string(b) + ":" + std::to_string(iterations_for(b));
  std::string out;
  if (FILE* p = popen((cmd + " 2>&1").c_str(), "r")) {
    char buf[4096];
    while (fgets(buf, sizeof buf, p) != nullptr) out += buf;
    if (pclose(p) != 0) it->second.error = "failed: " + out.substr(0, 300);
  }
  // {"torch": "1.13.0", "ranks": 4, "results": [{"bytes": 4096, "seconds": [...]}, ...]}
  const auto v = out.find("\"torch\": \"");
  if (v != std::string::npos) it->second.version = out.substr(v + 10, out.find('"', v + 10) - v - 10);
  for (std::size_t at = out.find("\"bytes\": "); at != std::string::npos; at = out.find("\"bytes\": ", at + 1)) {
    const long long b = std::strtoll(out.c_str() + at + 9, nullptr, 10);
    const auto open = out.find('[', at), close = out.find(']', at);
    std::vector<double>& s = it->second.seconds[b];
    const char* c = out.c_str() + open + 1;
    while (c < out.c_str() + close) {
      char* end = nullptr;
      s.push_back(std::strtod(c, &end));
      c = end + 1;
    }
  }
  if (it->second.seconds.empty() && it->second.error.empty()) it->second.error = "no timings: " + out.substr(0, 300);
  return it->second;
}

void BM_TorchGlooAllreduce(benchmark::State& state, int ranks, long long bytes) {
  const TorchRun& run = torch_run(ranks);
  const auto found = run.seconds.find(bytes);
  if (!run.error.empty() || found == run.seconds.end() ||
      found->second.size() < static_cast<std::size_t>(state.max_iterations)) {
    state.SkipWithError(("torch.distributed gloo did not run (needs python3-torch): " + run.error).c_str());
    for (auto _ : state) {
    }
    return;
  }
  std::size_t i = 0;
  for (auto _ : state) state.SetIterationTime(found->second[i++]);
  const double m = median(found->second);
  medians()[{ranks, bytes, -1}] = m;
  const double torch_bw = busbw_GBps(bytes, ranks, m);
  state.counters["busbw_GBps"] = torch_bw;
  double best = 0;
  for (Algorithm a : algorithms) {
    const auto it = medians().find({ranks, bytes, static_cast<int>(a)});
    if (it != medians().end()) best = std::max(best, busbw_GBps(bytes, ranks, it->second));
  }
  state.counters["ratio_best"] = best / torch_bw;
  state.SetBytesProcessed(static_cast<long long>(state.iterations()) * bytes);
  state.SetLabel("torch " + run.version + " gloo");
}

std::string size_text(long long bytes) {
  return bytes >= (1 << 20) ? std::to_string(bytes >> 20) + " MB" : std::to_string(bytes >> 10) + " KB";
}

// The table for reports/comm-gloo-<date>.md: busbw in GB/s from the medians, and basin's best
// algorithm over torch.
void print_summary() {
  std::printf("\n| ranks | size | ring | ring_chunked | halving_doubling | bcube | torch gloo | best basin / torch |\n");
  std::printf("|---|---|---|---|---|---|---|---|\n");
  for (int ranks : {2, 4})
    for (long long bytes : sizes) {
      std::printf("| %d | %s |", ranks, size_text(bytes).c_str());
      double best = 0;
      for (Algorithm a : algorithms) {
        const auto it = medians().find({ranks, bytes, static_cast<int>(a)});
        if (it == medians().end()) {
          std::printf(" - |");
          continue;
        }
        const double bw = busbw_GBps(bytes, ranks, it->second);
        best = std::max(best, bw);
        std::printf(" %.3f |", bw);
      }
      const auto t = medians().find({ranks, bytes, -1});
      if (t == medians().end()) {
        std::printf(" - | - |\n");
      } else {
        const double torch_bw = busbw_GBps(bytes, ranks, t->second);
        std::printf(" %.3f | %.2fx |\n", torch_bw, best / torch_bw);
      }
    }
}

}  // namespace

int main(int argc, char** argv) {
  for (int ranks : {2, 4})
    for (long long bytes : sizes) {
      for (Algorithm a : algorithms) {
        if (!unsupported_reason(a, ranks).empty()) continue;
        const std::string line = std::string("BM_BasinAllreduce/") + std::to_string(ranks) + "ranks/" + size_text(bytes) +
                                 "/" + name(a);
        benchmark::RegisterBenchmark(line.c_str(), BM_BasinAllreduce, ranks, bytes, a)
            ->Iterations(iterations_for(bytes))
            ->UseManualTime()
            ->Unit(benchmark::kMicrosecond);
      }
      const std::string line = "BM_TorchGlooAllreduce/" + std::to_string(ranks) + "ranks/" + size_text(bytes);
      benchmark::RegisterBenchmark(line.c_str(), BM_TorchGlooAllreduce, ranks, bytes)
          ->Iterations(iterations_for(bytes))
          ->UseManualTime()
          ->Unit(benchmark::kMicrosecond);
    }
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  print_summary();
  return 0;
}
