// The 3-phase hierarchical allreduce of Goyal et al. 2017 (sec. 4): reduce the gradients of the
// GPUs of each server into one leader GPU, allreduce among the leaders across the network, and
// broadcast back inside each server. Inside a server both phases are pipelined chains (as NCCL's
// reduce and broadcast run), ordered so consecutive GPUs are linked as well as possible.
#include "hierarchical_parts.h"

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

std::vector<std::vector<topo::Vertex>> server_chains(Network& net,
                                                     const std::vector<topo::Vertex>& gpus) {
  const auto& g = net.topology().graph;
  std::map<int, std::vector<topo::Vertex>> by_server;
  for (topo::Vertex v : gpus) by_server[g[v].server].push_back(v);
  std::vector<std::vector<topo::Vertex>> chains;
  for (auto& [server, members] : by_server) chains.push_back(best_chain(net, members));
  return chains;
}

CollectiveCost chain_phase(Network& net, const std::vector<std::vector<topo::Vertex>>& chains,
                           bool reduce) {
  // Every server's chain at once, each hop carrying the whole vector: toward the head (the
  // leader) when reducing, away from it when broadcasting.
  std::vector<topo::Vertex> all;
  Step step;
  size_t longest = 0;
  for (const auto& chain : chains) {
    int base = static_cast<int>(all.size());
    all.insert(all.end(), chain.begin(), chain.end());
    longest = std::max(longest, chain.size());
    for (int i = static_cast<int>(chain.size()) - 1; i > 0; --i)
      step.transfers.push_back(reduce ? Transfer{base + i, base + i - 1, 1.0, true}
                                      : Transfer{base + i - 1, base + i, 1.0, false});
  }
  if (longest <= 1) return {};
  // Pipelined chains: one hop latency per GPU passed, the bandwidth term once per phase.
  step.latency_hops = static_cast<int>(longest - 1);
  return net.cost(Schedule{"chain", static_cast<int>(all.size()), {step}}, all);
}

CollectiveCost hierarchical_cost(Network& net, const std::vector<topo::Vertex>& gpus,
                                 Algorithm inter, const HostStaging& staging) {
  auto chains = server_chains(net, gpus);
  if (chains.size() > 1 && stages_through_host(net.topology(), staging))
    return staged_hierarchical_cost(net, gpus, inter, staging);
  // Phases 1 and 3 over the servers' own links; phase 2: the leaders (head of each chain)
  // allreduce across servers, GPU to GPU.
  CollectiveCost total = named(chain_phase(net, chains, true), kTermLocal);
  total.add(named(chain_phase(net, chains, false), kTermLocal));
  if (chains.size() > 1) {
    std::vector<topo::Vertex> leaders;
    for (const auto& chain : chains) leaders.push_back(chain.front());
    total.add(named(net.cost(allreduce_schedule(inter, static_cast<int>(leaders.size())), leaders),
                    kTermNetwork));
  }
  return total;
}

CollectiveCost allreduce_cost(Network& net, const std::vector<topo::Vertex>& gpus, Algorithm a,
                              Algorithm inter, const HostStaging& staging) {
  if (a == Algorithm::hierarchical) {
    if (inter == Algorithm::hierarchical || inter == Algorithm::nvls || inter == Algorithm::nvls_tree ||
        inter == Algorithm::collnet_chain)
      throw topo::InputError("--inter", "", std::string("an algorithm between servers, not ") + to_string(inter));
    return hierarchical_cost(net, gpus, inter, staging);
  }
  if (a == Algorithm::nvls_tree || a == Algorithm::collnet_chain ||
      (a == Algorithm::nvls && by_server(net.topology(), gpus).size() > 1)) {
    // NCCL's only, and NCCL moves GPU memory to the NICs itself (GPUDirect RDMA).
    if (staging.mode == HostStaging::Mode::on)
      throw topo::InputError("--host-staging", "", std::string("off or auto with ") + to_string(a) +
                                                       " (NCCL's: no copies through host memory)");
  }
  if (a == Algorithm::nvls) return nvls_parts(net, gpus).combined();
  if (a == Algorithm::nvls_tree) return nvls_tree_cost(net, gpus);
  if (a == Algorithm::collnet_chain) return collnet_chain_cost(net, gpus);
  const auto& g = net.topology().graph;
  std::map<int, int> per_server;
  for (topo::Vertex v : gpus) ++per_server[g[v].server];
  const int p = static_cast<int>(gpus.size());
  Schedule s;
  if (a == Algorithm::torus_2d) {
    // Rows are servers when every server brings the same number of GPUs (Mikami et al.: the
    // horizontal rings stay inside a server); otherwise the squarest grid.
    int x = torus_2d_default_width(p);
    const int first = per_server.begin()->second;
    if (per_server.size() > 1 && std::all_of(per_server.begin(), per_server.end(),
                                             [&](auto& kv) { return kv.second == first; }))
      x = first;
    s = torus_2d_allreduce(p, x);
  } else {
    s = allreduce_schedule(a, p);
  }
  if (per_server.size() > 1 && stages_through_host(net.topology(), staging))
    return staged_flat_cost(net, gpus, s, staging);
  return net.cost(s, gpus);
}

}  // namespace basin::sim
