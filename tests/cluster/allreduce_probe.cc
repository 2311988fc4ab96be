// basin_allreduce_probe: one rank of an allreduce timing run, for the emulated cluster
// (scripts/emulated_cluster.sh) and the measured-vs-predicted check of the simulator.
//
// Every rank runs it, each in its own network namespace; they meet through the comm layer's usual
// environment (RANK, WORLD_SIZE, BASIN_RENDEZVOUS_DIR on a directory they all see, BASIN_BIND_ADDR
// = the namespace's address). For each algorithm Gloo runs at this world size and each size it
// warms up (the first call builds Gloo's algorithm and registers its buffers, which is not the
// collective's time), then times repetitions between barriers. Each repetition's time is the
// slowest rank's (the collective ends when its last rank does; ranks leave a barrier up to one
// message latency apart), gathered with an allreduce of one slot per rank. Rank 0 prints one JSON
// line per (algorithm, size) with the median; every rank checks its sums against the closed form.
//
// `--algorithms hierarchical` runs comm's three-phase allreduce (`--inter` between hosts) over
// the hosts LOCAL_WORLD_SIZE says (scripts/emulated_cluster_run.sh --ranks-per-host).
//
// `--cpu-rates` instead prints this core's rate of the float sum Gloo's algorithms reduce with
// (basin's comm::add_into, which the comm layer hands Gloo in place of its own loop) and of
// memcpy, one thread, on buffers far beyond the caches: the rates the predictor charges for the
// work Gloo does between network steps.
// It is a test tool, not a Google Benchmark, so the cluster test builds without that library.
#include <basin/comm.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

namespace comm = basin::comm;
using Clock = std::chrono::steady_clock;

namespace {

struct Options {
  std::vector<long long> sizes;  // bytes, multiples of 4
  std::vector<comm::Algorithm> algorithms;
  comm::Algorithm inter = comm::Algorithm::halving_doubling;  // hierarchical's, between hosts
  int warmup = 2;
  int reps = 5;
  bool cpu_rates = false;
};

[[noreturn]] void usage_error(const std::string& what) {
  throw std::invalid_argument(what + "\nusage: basin_allreduce_probe [--sizes 4096,1048576,...] "
                              "[--algorithms ring,ring_chunked,halving_doubling,hierarchical] [--inter halving_doubling] "
                              "[--warmup N] [--reps N] | --cpu-rates");
}

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= s.size()) {
    const std::size_t comma = s.find(',', start);
    out.push_back(s.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

long long parse_int(const std::string& flag, const std::string& text, long long lo, long long hi) {
  std::size_t used = 0;
  long long v = 0;
  try {
    v = std::stoll(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != text.size() || text.empty() || v < lo || v > hi)
    usage_error(flag + " '" + text + "': expected an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
  return v;
}

Options parse(int argc, char** argv) {
  Options o;
  for (long long s = 4096; s <= 64ll << 20; s *= 4) o.sizes.push_back(s);
  o.algorithms = {comm::Algorithm::ring, comm::Algorithm::ring_chunked, comm::Algorithm::halving_doubling,
                  comm::Algorithm::bcube};
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "--cpu-rates") { o.cpu_rates = true; continue; }
    if (i + 1 >= argc) usage_error(flag + ": expected a value after it");
    const std::string value = argv[++i];
    if (flag == "--sizes") {
      o.sizes.clear();
      for (const std::string& s : split(value)) {
        const long long bytes = parse_int("--sizes", s, 4, 1ll << 31);
        if (bytes % 4) usage_error("--sizes " + s + ": expected a multiple of 4 bytes (float32 elements)");
        o.sizes.push_back(bytes);
      }
    } else if (flag == "--algorithms") {
      o.algorithms.clear();
      for (const std::string& s : split(value)) o.algorithms.push_back(comm::parse_algorithm(s));
    } else if (flag == "--inter") {
      o.inter = comm::parse_algorithm(value);
    } else if (flag == "--warmup") {
      o.warmup = static_cast<int>(parse_int("--warmup", value, 0, 100));
    } else if (flag == "--reps") {
      o.reps = static_cast<int>(parse_int("--reps", value, 1, 1000));
    } else {
      usage_error("unknown flag '" + flag + "'");
    }
  }
  return o;
}

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

int cpu_rates() {
  // 64 MB per buffer: 16x a large L3, so both rates are DRAM rates, as for Gloo's big buffers.
  const std::size_t n = 16u << 20;
  std::vector<float> a(n, 1.0f), b(n, 2.0f);
  double sum_s = 1e9, copy_s = 1e9;
  for (int rep = 0; rep < 7; ++rep) {
    auto t0 = Clock::now();
    basin::comm::add_into(a.data(), b.data(), n);
    sum_s = std::min(sum_s, seconds_since(t0));
    t0 = Clock::now();
    std::memcpy(b.data(), a.data(), n * sizeof(float));
    copy_s = std::min(copy_s, seconds_since(t0));
  }
  const double bytes = static_cast<double>(n * sizeof(float));
  // The sum's rate is bytes of the destination reduced per second, as HostStaging counts it.
  std::printf("{\"sum_GBps\": %.3f, \"copy_GBps\": %.3f, \"check\": %.1f}\n", bytes / sum_s / 1e9,
              bytes / copy_s / 1e9, static_cast<double>(b[n / 2]));
  return 0;
}

int run(const Options& o) {
  const comm::RendezvousConfig config = comm::rendezvous_from_env();
  auto mesh = comm::connect(config);
  const int p = mesh->world_size(), rank = mesh->rank();
  const long long largest = *std::max_element(o.sizes.begin(), o.sizes.end());
  std::vector<float> data(static_cast<std::size_t>(largest / 4));
  std::vector<float> times(static_cast<std::size_t>(p));
  // Each rank contributes rank + 1 everywhere: the sum p(p+1)/2 is exact in float.
  const float expected = static_cast<float>(p) * static_cast<float>(p + 1) / 2.0f;
  int failures = 0;
  for (comm::Algorithm algorithm : o.algorithms) {
    const bool hierarchical = algorithm == comm::Algorithm::hierarchical;
    // hierarchical is named with its algorithm between hosts: "hierarchical(ring_chunked)".
    const std::string label =
        hierarchical ? std::string("hierarchical(") + comm::name(o.inter) + ")" : comm::name(algorithm);
    std::string refused = comm::unsupported_reason(algorithm, p);
    if (refused.empty() && hierarchical) refused = comm::hierarchy_reason(config, o.inter);
    if (!refused.empty()) {
      if (rank == 0)
        std::printf("{\"algorithm\": \"%s\", \"ranks\": %d, \"skipped\": \"%s\"}\n", label.c_str(), p,
                    refused.c_str());
      continue;
    }
    for (long long bytes : o.sizes) {
      std::span<float> buf(data.data(), static_cast<std::size_t>(bytes / 4));
      std::vector<double> slowest;
      for (int rep = -o.warmup; rep < o.reps; ++rep) {
        std::fill(buf.begin(), buf.end(), static_cast<float>(rank + 1));
        mesh->barrier();
        const auto t0 = Clock::now();
        mesh->allreduce(buf, {.algorithm = algorithm, .inter = o.inter});
        const double s = seconds_since(t0);
        if (buf.front() != expected || buf.back() != expected || buf[buf.size() / 2] != expected) ++failures;
        std::fill(times.begin(), times.end(), 0.0f);
        times[static_cast<std::size_t>(rank)] = static_cast<float>(s);
        mesh->allreduce(times, {.algorithm = comm::Algorithm::ring});
        if (rep >= 0) slowest.push_back(*std::max_element(times.begin(), times.end()));
      }
      std::sort(slowest.begin(), slowest.end());
      if (rank == 0)
        std::printf("{\"algorithm\": \"%s\", \"ranks\": %d, \"bytes\": %lld, \"median_s\": %.6e, \"min_s\": %.6e, "
                    "\"max_s\": %.6e, \"reps\": %d}\n",
                    label.c_str(), p, bytes, slowest[slowest.size() / 2], slowest.front(), slowest.back(),
                    o.reps);
      std::fflush(stdout);
    }
  }
  if (failures) {
    std::fprintf(stderr, "rank %d: %d allreduces gave a sum other than %g\n", rank, failures, expected);
    return 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Options o = parse(argc, argv);
    return o.cpu_rates ? cpu_rates() : run(o);
  } catch (const comm::CommError& e) {
    std::fprintf(stderr, "basin_allreduce_probe: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "basin_allreduce_probe: %s\n", e.what());
    return 2;
  }
}
