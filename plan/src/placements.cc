// Where the planner puts a count of GPUs: all of each server's in turn, and, where the input
// pipeline may bind, half, a quarter, ... of each server's on more servers, each GPU then with
// more of its host's CPU cores (a run as fast at a fraction of the GPU-hours). Each placement is
// a distinct set of GPUs; the ranks a server gets are read off it, uneven ones included.
#include <basin/plan.h>
#include <basin/training.h>

#include <algorithm>
#include <map>
#include <set>

namespace basin::plan {

std::vector<int> default_gpu_counts(const topo::Topology& t, const std::vector<int>& layouts) {
  const auto all = topo::gpus(t);
  std::map<int, int> per_server;
  for (auto v : all) ++per_server[t.graph[v].server];
  const int first = per_server.begin()->second, total = static_cast<int>(all.size());
  const int servers = static_cast<int>(per_server.size());
  std::set<int> counts;
  for (int n = 1; n < first; n *= 2) counts.insert(n);
  for (int n = first; n < total; n *= 2) counts.insert(n);
  counts.insert(total);
  for (int p : layouts) {
    if (p <= 0) continue;
    for (int s = 1; s < servers; s *= 2) counts.insert(p * s);
    counts.insert(p * servers);
  }
  std::erase_if(counts, [&](int n) { return n > total; });
  return {counts.begin(), counts.end()};
}

std::vector<Placement> placements(const topo::Topology& cluster, int count, const std::vector<int>& layouts) {
  std::map<int, int> on_server;
  for (topo::Vertex v : topo::gpus(cluster)) ++on_server[cluster.graph[v].server];
  int fewest = on_server.begin()->second;
  for (const auto& [server, n] : on_server) fewest = std::min(fewest, n);
  const int servers = static_cast<int>(on_server.size());
  std::vector<int> tried = layouts;
  if (tried.empty()) {
    // Packed, then spread over more servers: as many on each, the count divided evenly, on
    // servers that all have that many.
    tried.push_back(0);
    const int most = sim::gpus_on_a_server(cluster);
    for (int p = most / 2; p >= 1; p /= 2)
      if (count > p && count % p == 0 && count / p <= servers && p <= fewest) tried.push_back(p);
  }
  std::vector<Placement> out;
  std::set<std::vector<topo::Vertex>> seen;
  for (int p : tried) {
    std::vector<topo::Vertex> gpus;
    try {
      gpus = sim::gpus_in_use(cluster, count, p);
    } catch (const topo::InputError&) {
      continue;  // too few servers for this many at that spread
    }
    if (!seen.insert(gpus).second) continue;  // the same GPUs as an earlier layout
    Placement placed{p, gpus, {}};
    std::map<int, int> ranks;
    for (topo::Vertex v : gpus) ++ranks[cluster.graph[v].server];
    for (const auto& [server, n] : ranks) placed.ranks_per_server.push_back(n);
    out.push_back(std::move(placed));
  }
  return out;
}

}  // namespace basin::plan
