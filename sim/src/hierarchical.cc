// The 3-phase hierarchical allreduce of Goyal et al. 2017 (sec. 4): reduce the gradients of the
// GPUs of each server into one leader GPU, allreduce among the leaders across the network, and
// broadcast back inside each server. Inside a server both phases are pipelined chains (as NCCL's
// reduce and broadcast run), ordered so consecutive GPUs are linked as well as possible.
#include <basin/sim.h>

#include <algorithm>
#include <functional>
#include <map>

namespace basin::sim {
namespace {

// Orders one server's GPUs as a path whose narrowest hop is as wide as possible, by trying
// bandwidth thresholds from the widest down with a depth-first search (servers have <= 16 GPUs,
// and on symmetric meshes the first threshold succeeds at once).
std::vector<topo::Vertex> best_chain(Network& net, std::vector<topo::Vertex> gpus) {
  const size_t k = gpus.size();
  if (k <= 2) return gpus;
  std::vector<std::vector<double>> bw(k, std::vector<double>(k, 0));
  std::vector<double> levels;
  std::vector<std::pair<topo::Vertex, topo::Vertex>> pairs;
  for (topo::Vertex a : gpus)
    for (topo::Vertex b : gpus)
      if (a != b) pairs.emplace_back(a, b);
  net.find_routes(pairs);
  for (size_t i = 0; i < k; ++i)
    for (size_t j = 0; j < k; ++j)
      if (i != j) {
        bw[i][j] = net.route_GBps(gpus[i], gpus[j]);
        levels.push_back(bw[i][j]);
      }
  std::sort(levels.rbegin(), levels.rend());
  levels.erase(std::unique(levels.begin(), levels.end()), levels.end());
  for (double level : levels) {
    std::vector<size_t> path{0};
    std::vector<bool> used(k, false);
    used[0] = true;
    int budget = 200000;  // bounded search; the last level (everything allowed) always succeeds
    std::function<bool()> extend = [&]() {
      if (path.size() == k) return true;
      if (--budget < 0) return false;
      for (size_t next = 0; next < k; ++next) {
        if (used[next] || bw[path.back()][next] < level) continue;
        used[next] = true;
        path.push_back(next);
        if (extend()) return true;
        path.pop_back();
        used[next] = false;
      }
      return false;
    };
    if (extend()) {
      std::vector<topo::Vertex> out;
      for (size_t i : path) out.push_back(gpus[i]);
      return out;
    }
  }
  return gpus;
}

}  // namespace

CollectiveCost hierarchical_cost(Network& net, const std::vector<topo::Vertex>& gpus,
                                 Algorithm inter) {
  const auto& g = net.topology().graph;
  std::map<int, std::vector<topo::Vertex>> by_server;
  for (topo::Vertex v : gpus) by_server[g[v].server].push_back(v);
  std::vector<std::vector<topo::Vertex>> chains;
  for (auto& [server, members] : by_server) chains.push_back(best_chain(net, members));

  // Phases 1 and 3: every server's chain at once, each hop carrying the whole vector.
  std::vector<topo::Vertex> all;
  Step reduce_step, bcast_step;
  size_t longest = 0;
  for (const auto& chain : chains) {
    int base = static_cast<int>(all.size());
    all.insert(all.end(), chain.begin(), chain.end());
    longest = std::max(longest, chain.size());
    for (int i = static_cast<int>(chain.size()) - 1; i > 0; --i) {
      reduce_step.transfers.push_back({base + i, base + i - 1, 1.0, true});
      bcast_step.transfers.push_back({base + i - 1, base + i, 1.0, false});
    }
  }
  CollectiveCost total;
  if (longest > 1) {
    // Pipelined chains: one hop latency per GPU passed, the bandwidth term once per phase.
    reduce_step.latency_hops = bcast_step.latency_hops = static_cast<int>(longest - 1);
    Schedule local{"chain", static_cast<int>(all.size()), {reduce_step, bcast_step}};
    total.add(net.cost(local, all));
  }
  // Phase 2: the leaders (head of each chain) allreduce across servers.
  if (chains.size() > 1) {
    std::vector<topo::Vertex> leaders;
    for (const auto& chain : chains) leaders.push_back(chain.front());
    total.add(net.cost(allreduce_schedule(inter, static_cast<int>(leaders.size())), leaders));
  }
  return total;
}

CollectiveCost allreduce_cost(Network& net, const std::vector<topo::Vertex>& gpus, Algorithm a,
                              Algorithm inter) {
  if (a == Algorithm::hierarchical) {
    if (inter == Algorithm::hierarchical)
      throw topo::InputError("--inter", "", "a flat inter-server algorithm, not hierarchical");
    return hierarchical_cost(net, gpus, inter);
  }
  if (a == Algorithm::torus_2d) {
    // Rows are servers when every server brings the same number of GPUs (Mikami et al.: the
    // horizontal rings stay inside a server); otherwise the squarest grid.
    const auto& g = net.topology().graph;
    std::map<int, int> per_server;
    for (topo::Vertex v : gpus) ++per_server[g[v].server];
    const int p = static_cast<int>(gpus.size());
    int x = torus_2d_default_width(p);
    const int first = per_server.begin()->second;
    if (per_server.size() > 1 && std::all_of(per_server.begin(), per_server.end(),
                                             [&](auto& kv) { return kv.second == first; }))
      x = first;
    return net.cost(torus_2d_allreduce(p, x), gpus);
  }
  return net.cost(allreduce_schedule(a, static_cast<int>(gpus.size())), gpus);
}

}  // namespace basin::sim
