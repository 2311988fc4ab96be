// basin_emulated_compare: the simulator's prediction for Gloo's CPU allreduces on the emulated
// cluster, beside what basin_allreduce_probe measured there, with the error; exit 1 when a
// prediction for a message of --check-min-bytes or more is off by more than --tolerance.
//
// The prediction is basin's own machinery: the topology file (basin.topology/1) loaded as any
// cluster, each algorithm's transfers as a sim::Schedule, timed by sim::Network (routed flows,
// max-min sharing). What the simulator does not do for CPU ranks yet is added here, each term a
// mechanism read from Gloo's source (Debian's 0.0~git20220518 headers) or measured independently,
// never fitted to the allreduce times:
//  - Ranks are the servers' CPU nodes: the simulator's CLI ranks GPUs, but its engine routes
//    between any vertices, and a CPU rank has no device memory, so no PCIe staging applies.
//  - Gloo's AllreduceRing is not the simulator's ring: it passes the whole buffer p-1 times
//    (gloo/allreduce_ring.h), while AllreduceRingChunked is the reduce-scatter + allgather ring.
//  - TCP's payload share of the shaped rate: tbf counts whole frames, so a link carries
//    (MTU - 52) payload bytes per (MTU + 14) frame bytes (IPv4 20 + TCP 20 + timestamps 12;
//    Ethernet header 14). Ethernet links are derated by that before routing.
//  - Gloo's CPU work between network steps on the calling thread: ring reduces the whole buffer
//    and copies it to its outbox every round; halving-doubling reduces each received piece in
//    the reduce-scatter and copies each into place in the allgather (host_work in sim/src/
//    staging.cc prices the same for GPU staging). Rates: the float sum the comm layer hands
//    Gloo (comm::add_into) and memcpy measured on this machine (basin_allreduce_probe
//    --cpu-rates), shared when ranks outnumber cores, since all
//    ranks run the same phase at once. RingChunked keeps two chunks in flight, so a chunk's sum
//    overlaps the next chunk's transfer: each step costs the larger of the two.
#include <basin/sim.h>
#include <basin/topology.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace basin;

namespace {

struct Options {
  std::string topology, measured, cpu_rates, markdown;
  int mtu = 1500;
  int cores = static_cast<int>(std::thread::hardware_concurrency());
  double check_min_bytes = 1 << 20;
  double tolerance = 0.25;
};

[[noreturn]] void usage_error(const std::string& what) {
  throw std::invalid_argument(what + "\nusage: basin_emulated_compare --topology FILE --measured FILE.jsonl "
                              "--cpu-rates FILE.json [--cores N] [--mtu 1500] [--markdown OUT] "
                              "[--check-min-bytes 1048576] [--tolerance 0.25]");
}

double number(const std::string& flag, const std::string& text, double lo, double hi) {
  std::size_t used = 0;
  double v = 0;
  try {
    v = std::stod(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (text.empty() || used != text.size() || !(v >= lo && v <= hi))
    usage_error(flag + " '" + text + "': expected a number in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
  return v;
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (i + 1 >= argc) usage_error(flag + ": expected a value after it");
    const std::string v = argv[++i];
    if (flag == "--topology") o.topology = v;
    else if (flag == "--measured") o.measured = v;
    else if (flag == "--cpu-rates") o.cpu_rates = v;
    else if (flag == "--markdown") o.markdown = v;
    else if (flag == "--mtu") o.mtu = static_cast<int>(number(flag, v, 576, 65536));
    else if (flag == "--cores") o.cores = static_cast<int>(number(flag, v, 1, 4096));
    else if (flag == "--check-min-bytes") o.check_min_bytes = number(flag, v, 0, 1e12);
    else if (flag == "--tolerance") o.tolerance = number(flag, v, 0, 100);
    else usage_error("unknown flag '" + flag + "'");
  }
  if (o.topology.empty()) usage_error("--topology is required");
  if (o.measured.empty()) usage_error("--measured is required");
  if (o.cpu_rates.empty()) usage_error("--cpu-rates is required");
  return o;
}

nlohmann::json read_json(const std::string& path, const std::string& line_text, int line) {
  try {
    return nlohmann::json::parse(line_text);
  } catch (const std::exception& e) {
    throw std::runtime_error(path + ":" + std::to_string(line) + ": not JSON: " + e.what());
  }
}

// Gloo's AllreduceRing: every round each rank sends its whole outbox to the right and reduces
// what came from the left (gloo/allreduce_ring.h), p-1 rounds.
sim::Schedule gloo_ring(int p) {
  sim::Step step;
  for (int r = 0; r < p; ++r) step.transfers.push_back({r, (r + 1) % p, 1.0, true});
  step.repeat = p - 1;
  return {"gloo ring", p, {step}};
}

struct CpuWork {
  double reduce_Bps = 0, copy_Bps = 0;
};

// Seconds per message byte of the CPU work of one step: its busiest receiver's sums and copies.
double step_cpu(const sim::Step& step, const CpuWork& cpu) {
  std::map<int, double> work;
  for (const sim::Transfer& t : step.transfers)
    work[t.dst] += t.fraction / (t.reduce ? cpu.reduce_Bps : cpu.copy_Bps);
  double most = 0;
  for (auto [rank, w] : work) most = std::max(most, w);
  return most;
}

struct Prediction {
  double network_s = 0, cpu_s = 0, total_s = 0;
};

Prediction predict(sim::Network& net, const std::vector<topo::Vertex>& ranks, const std::string& algorithm,
                   double bytes, const CpuWork& cpu) {
  const int p = static_cast<int>(ranks.size());
  Prediction out;
  if (algorithm == "ring") {
    const sim::Schedule s = gloo_ring(p);
    out.network_s = net.cost(s, ranks).time_s(bytes);
    // p-1 sums of the whole buffer, and p-1 copies into the outbox (the first before round 0,
    // then after every round but the last).
    out.cpu_s = (p - 1) * bytes * (1 / cpu.reduce_Bps + 1 / cpu.copy_Bps);
    out.total_s = out.network_s + out.cpu_s;
  } else if (algorithm == "ring_chunked") {
    const sim::Schedule s = sim::ring_allreduce(p);
    for (const sim::Step& step : s.steps) {
      const double net_s = net.cost(sim::Schedule{"step", p, {step}}, ranks).time_s(bytes) / step.repeat;
      const double cpu_s = bytes * step_cpu(step, cpu);
      out.network_s += step.repeat * net_s;
      out.cpu_s += step.repeat * cpu_s;
      out.total_s += step.repeat * std::max(net_s, cpu_s);
    }
  } else if (algorithm == "halving_doubling") {
    sim::Schedule s = sim::halving_doubling_allreduce(p);
    out.network_s = net.cost(s, ranks).time_s(bytes);
    // The schedule marks reduce-scatter pieces reduce=true; allgather pieces are received into
    // Gloo's scratch buffer and copied into place (memcpy), which step_cpu prices as copies.
    for (const sim::Step& step : s.steps) out.cpu_s += step.repeat * bytes * step_cpu(step, cpu);
    out.total_s = out.network_s + out.cpu_s;
  } else {
    throw std::runtime_error("no model for algorithm '" + algorithm + "'");
  }
  return out;
}

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

std::string size_name(double bytes) {
  if (bytes >= 1 << 20) return fmt("%.0f MB", bytes / (1 << 20));
  return fmt("%.0f KB", bytes / 1024);
}

int run(const Options& o) {
  topo::Topology t = topo::load_topology_file(o.topology);
  // Derate Ethernet links to TCP's payload share of the frames tbf counts.
  const double efficiency = double(o.mtu - 52) / double(o.mtu + 14);
  for (auto [e, end] = boost::edges(t.graph); e != end; ++e)
    if (t.graph[*e].kind == topo::LinkKind::ethernet) t.graph[*e].bandwidth_GBps *= efficiency;
  std::vector<topo::Vertex> cpus = topo::nodes_of_kind(t, topo::NodeKind::cpu);
  std::sort(cpus.begin(), cpus.end(), [&](auto a, auto b) { return t.graph[a].server < t.graph[b].server; });

  std::ifstream rates(o.cpu_rates);
  if (!rates) throw std::runtime_error("--cpu-rates " + o.cpu_rates + ": cannot open");
  std::string text((std::istreambuf_iterator<char>(rates)), std::istreambuf_iterator<char>());
  const nlohmann::json r = read_json(o.cpu_rates, text, 1);
  if (!r.contains("sum_GBps") || !r.contains("copy_GBps"))
    throw std::runtime_error("--cpu-rates " + o.cpu_rates + ": expected fields sum_GBps and copy_GBps");

  std::ifstream in(o.measured);
  if (!in) throw std::runtime_error("--measured " + o.measured + ": cannot open");
  std::string md = "| algorithm | ranks | size | measured ms | predicted ms | error | network ms | CPU ms |\n"
                   "|---|---:|---:|---:|---:|---:|---:|---:|\n";
  int failures = 0, checked = 0, line_no = 0;
  std::string line;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.empty() || line[0] != '{') continue;
    const nlohmann::json m = read_json(o.measured, line, line_no);
    const std::string algorithm = m.value("algorithm", "");
    const int p = m.value("ranks", 0);
    if (m.contains("skipped")) {
      md += "| " + algorithm + " | " + std::to_string(p) + " | all | refused: " + m["skipped"].get<std::string>() +
            " | | | | |\n";
      continue;
    }
    if (p < 2 || p > static_cast<int>(cpus.size()))
      throw std::runtime_error(o.measured + ":" + std::to_string(line_no) + ": ranks " + std::to_string(p) +
                               ": expected 2.." + std::to_string(cpus.size()) + " (CPU nodes in " + o.topology + ")");
    const std::vector<topo::Vertex> ranks(cpus.begin(), cpus.begin() + p);
    // Every rank of the same phase runs at once; with more ranks than cores they share them.
    const double share = std::min(1.0, double(o.cores) / p);
    const CpuWork cpu{r["sum_GBps"].get<double>() * 1e9 * share, r["copy_GBps"].get<double>() * 1e9 * share};
    sim::Network net(t);
    const double bytes = m.at("bytes").get<double>(), measured = m.at("median_s").get<double>();
    const Prediction pr = predict(net, ranks, algorithm, bytes, cpu);
    const double error = (pr.total_s - measured) / measured;
    const bool judged = bytes >= o.check_min_bytes;
    const bool bad = judged && std::abs(error) > o.tolerance;
    checked += judged;
    failures += bad;
    md += "| " + algorithm + " | " + std::to_string(p) + " | " + size_name(bytes) + " | " + fmt("%.3f", measured * 1e3) +
          " | " + fmt("%.3f", pr.total_s * 1e3) + " | " + fmt("%+.1f%%", error * 100) + (bad ? " **over**" : "") +
          " | " + fmt("%.3f", pr.network_s * 1e3) + " | " + fmt("%.3f", pr.cpu_s * 1e3) + " |\n";
    std::printf("{\"algorithm\": \"%s\", \"ranks\": %d, \"bytes\": %.0f, \"measured_s\": %.6e, \"predicted_s\": %.6e, "
                "\"error\": %.4f, \"judged\": %s}\n",
                algorithm.c_str(), p, bytes, measured, pr.total_s, error, judged ? "true" : "false");
  }
  if (!o.markdown.empty()) {
    std::ofstream out(o.markdown);
    out << md;
    if (!out) throw std::runtime_error("--markdown " + o.markdown + ": cannot write");
  }
  std::fprintf(stderr, "basin_emulated_compare: %d of %d predictions for messages >= %.0f bytes off by more than %.0f%%"
               " (TCP payload share %.4f, CPU sum %.2f GB/s, copy %.2f GB/s, %d cores)\n",
               failures, checked, o.check_min_bytes, o.tolerance * 100, efficiency, r["sum_GBps"].get<double>(),
               r["copy_GBps"].get<double>(), o.cores);
  if (checked == 0) {
    std::fprintf(stderr, "basin_emulated_compare: no measurement of %.0f bytes or more to judge\n", o.check_min_bytes);
    return 1;
  }
  return failures ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(parse(argc, argv));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "basin_emulated_compare: %s\n", e.what());
    return 2;
  }
}
