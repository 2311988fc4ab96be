// Which GPUs a run of N uses: each server's GPUs in turn, all of them or at most a given number
// on each. The planner compares the two (a cluster whose input pipeline binds may run as fast on
// half of every server's GPUs, each with twice the CPU cores, at half the GPU-hours), and the
// simulator prices the run on the GPUs so placed.
#include <basin/training.h>

#include <algorithm>
#include <map>

namespace basin::sim {

int gpus_on_a_server(const topo::Topology& cluster) {
  std::map<int, int> on_server;
  for (topo::Vertex v : topo::gpus(cluster)) ++on_server[cluster.graph[v].server];
  int most = 0;
  for (const auto& [server, n] : on_server) most = std::max(most, n);
  return most;
}

std::vector<topo::Vertex> require_gpus(const topo::Topology& cluster) {
  auto all = topo::gpus(cluster);
  if (all.empty())
    throw topo::InputError(cluster.source.empty() ? "--cluster" : cluster.source, "",
                           "a topology with GPUs, got '" + cluster.name +
                               "' with none (discovery finds GPUs only through a CUDA driver; without one, load a "
                               "model such as dgx-h100)");
  return all;
}

int unjoined_server_gpus(const topo::Topology& cluster) {
  const std::vector<topo::Vertex> all = topo::gpus(cluster);
  if (all.empty()) return 0;
  const std::vector<double> reach = topo::widest_from(cluster, all.front());
  if (std::all_of(all.begin() + 1, all.end(), [&](topo::Vertex v) { return reach[v] > 0; })) return 0;
  const int home = cluster.graph[all.front()].server;
  return static_cast<int>(
      std::count_if(all.begin(), all.end(), [&](topo::Vertex v) { return cluster.graph[v].server == home; }));
}

std::vector<topo::Vertex> gpus_in_use(const topo::Topology& cluster, int count, int per_server,
                                      const std::string& count_flag) {
  const auto all = require_gpus(cluster);
  const int most = gpus_on_a_server(cluster);
  if (per_server < 0 || per_server > most)
    throw topo::InputError("--per-server", "", "0 (all of each server's GPUs) to the " + std::to_string(most) +
                                                   " GPUs of a server of " + cluster.name + ", got " +
                                                   std::to_string(per_server));
  // No count: every GPU the per-server limit allows.
  const bool every = count <= 0;
  if (every) count = static_cast<int>(all.size());
  std::vector<topo::Vertex> out;
  std::map<int, int> taken;
  for (topo::Vertex v : all) {
    if (static_cast<int>(out.size()) == count) break;
    int& n = taken[cluster.graph[v].server];
    if (per_server > 0 && n >= per_server) continue;
    ++n;
    out.push_back(v);
  }
  if (!every && static_cast<int>(out.size()) < count)
    throw topo::InputError(count_flag, "",
                           "at most " + std::to_string(out.size()) + " GPUs on " + cluster.name +
                               (per_server > 0 ? " with " + std::to_string(per_server) + " per server"
                                               : std::string()) +
                               ", got " + std::to_string(count));
  return out;
}

}  // namespace basin::sim
