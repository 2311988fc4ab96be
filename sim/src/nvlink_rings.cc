// NCCL's rings (and its trees' chains along them) inside one server whose GPUs are wired to each
// other by NVLink, point to point (the hybrid cube mesh of DGX-1 and Big Basin). A ring in rank
// order there crosses PCIe and the CPUs' link wherever two neighbours in rank order have no
// NVLink (GPU 3 to GPU 4), and runs at PCIe's rate. NCCL's search (src/graph/search.cc) instead
// builds its channels' rings along NVLinks, and as many as the links hold: on DGX-1 with V100
// every GPU's six NVLinks each carry a ring each way. Here: as many link-disjoint Hamiltonian
// cycles over the direct NVLinks as the mesh holds, each run in both directions, the vector split
// evenly among them. Its own file because it is a search over the topology, which the schedules
// of collectives.cc never look at.
#include <basin/sim.h>

#include <algorithm>
#include <functional>

namespace basin::sim {

namespace {

// Direct NVLinks between every pair of `gpus`, bonded links counted one by one: the widest entry
// for the pair (the engine routes a pair over one edge, so a second entry adds nothing), and the
// fewer of the two directions (a ring runs both ways). Empty when any of them hangs off an
// NVSwitch too: the engine routes such GPUs through the switch, not around the mesh.
std::vector<std::vector<int>> nvlink_counts(const topo::Topology& t, const std::vector<topo::Vertex>& gpus) {
  const size_t p = gpus.size();
  std::vector<std::vector<int>> count(p, std::vector<int>(p, 0));
  for (size_t i = 0; i < p; ++i)
    for (auto [e, end] = boost::out_edges(gpus[i], t.graph); e != end; ++e) {
      if (t.graph[*e].kind != topo::LinkKind::nvlink) continue;
      const topo::Vertex to = boost::target(*e, t.graph);
      if (t.graph[to].kind == topo::NodeKind::nvswitch) return {};
      const auto at = std::find(gpus.begin(), gpus.end(), to);
      if (at != gpus.end()) {
        int& c = count[i][at - gpus.begin()];
        c = std::max(c, std::max(1, t.graph[*e].count));
      }
    }
  for (size_t i = 0; i < p; ++i)
    for (size_t j = 0; j < i; ++j) count[i][j] = count[j][i] = std::min(count[i][j], count[j][i]);
  return count;
}

// The most link-disjoint Hamiltonian cycles over `count` (each uses one link of every pair it
// joins), by depth-first search; cycles start at rank 0 and are taken in increasing order, so
// no set is tried twice. A budget of search steps bounds the work on large meshes, where the
// best set found within it is kept (fewer cycles than the links could hold, possibly none).
std::vector<std::vector<int>> disjoint_cycles(std::vector<std::vector<int>> count) {
  const int p = static_cast<int>(count.size());
  int bound = 1 << 30;
  for (int i = 0; i < p; ++i) {
    int degree = 0;
    for (int j = 0; j < p; ++j) degree += count[i][j];
    bound = std::min(bound, degree / 2);
  }
  std::vector<std::vector<int>> best, taken;
  long budget = 200'000;  // DGX-1 needs under a hundred steps
  // Every Hamiltonian cycle from 0, in lexicographic order, not below `after`, handed to `found`
  // (which returns true to stop).
  std::function<bool(std::vector<int>&, std::vector<bool>&, const std::vector<int>&,
                     const std::function<bool(const std::vector<int>&)>&)>
      extend = [&](std::vector<int>& path, std::vector<bool>& used, const std::vector<int>& after,
                   const std::function<bool(const std::vector<int>&)>& found) {
        if (--budget < 0) return true;
        const int last = path.back();
        if (static_cast<int>(path.size()) == p) {
          // One direction of each cycle: the second rank below the last.
          if (count[last][0] > 0 && path[1] < path.back() && !(path < after)) return found(path);
          return false;
        }
        for (int next = 0; next < p; ++next) {
          if (used[next] || count[last][next] == 0) continue;
          path.push_back(next);
          used[next] = true;
          const bool stop = extend(path, used, after, found);
          used[next] = false;
          path.pop_back();
          if (stop) return true;
        }
        return false;
      };
  std::function<bool()> take_more = [&]() -> bool {
    if (taken.size() > best.size()) best = taken;
    if (static_cast<int>(best.size()) >= bound || budget < 0) return true;
    std::vector<int> path{0};
    std::vector<bool> used(p, false);
    used[0] = true;
    const std::vector<int> after = taken.empty() ? std::vector<int>{} : taken.back();
    return extend(path, used, after, [&](const std::vector<int>& cycle) {
      for (int k = 0; k < p; ++k) --count[cycle[k]][cycle[(k + 1) % p]], --count[cycle[(k + 1) % p]][cycle[k]];
      taken.push_back(cycle);
      const bool done = take_more();
      taken.pop_back();
      for (int k = 0; k < p; ++k) ++count[cycle[k]][cycle[(k + 1) % p]], ++count[cycle[(k + 1) % p]][cycle[k]];
      return done;
    });
  };
  take_more();
  return best;
}

}  // namespace

std::vector<std::vector<int>> nvlink_rings(const topo::Topology& t, const std::vector<topo::Vertex>& gpus) {
  const int p = static_cast<int>(gpus.size());
  if (p < 2) return {};
  const auto count = nvlink_counts(t, gpus);
  if (count.empty()) return {};
  std::vector<std::vector<int>> rings;
  if (p == 2) {  // 0 -> 1 -> 0 takes each direction of one link
    for (int k = 0; k < count[0][1]; ++k) rings.push_back({0, 1});
    return rings;
  }
  for (const auto& cycle : disjoint_cycles(count)) {
    rings.push_back(cycle);
    rings.emplace_back(cycle.rbegin(), cycle.rend());
  }
  return rings;
}

Schedule rings_allreduce(const std::vector<std::vector<int>>& rings) {
  if (rings.empty() || rings.front().empty()) throw std::invalid_argument("ring allreduce: at least one ring with ranks");
  const int p = static_cast<int>(rings.front().size());
  for (const auto& ring : rings) {
    std::vector<int> sorted = ring;
    std::sort(sorted.begin(), sorted.end());
    bool permutation = static_cast<int>(sorted.size()) == p;
    for (int k = 0; permutation && k < p; ++k) permutation = sorted[k] == k;
    if (!permutation) throw std::invalid_argument("ring allreduce: every ring visits each of the ranks 0..p-1 once");
  }
  Schedule s{"rings", p, {}};
  if (p < 2) return s;
  const double share = 1.0 / (p * static_cast<double>(rings.size()));
  Step reduce_scatter{{}, p - 1}, allgather{{}, p - 1};
  for (const auto& ring : rings)
    for (int k = 0; k < p; ++k) {
      reduce_scatter.transfers.push_back({ring[k], ring[(k + 1) % p], share, true});
      allgather.transfers.push_back({ring[k], ring[(k + 1) % p], share, false});
    }
  s.steps = {reduce_scatter, allgather};
  return s;
}

CollectiveCost server_rings_cost(Network& net, const std::vector<topo::Vertex>& gpus) {
  const auto rings = nvlink_rings(net.topology(), gpus);
  if (rings.empty()) return net.cost(allreduce_schedule(Algorithm::ring, static_cast<int>(gpus.size())), gpus);
  return net.cost(rings_allreduce(rings), gpus);
}

CollectiveCost server_trees_cost(Network& net, const std::vector<topo::Vertex>& gpus) {
  const int p = static_cast<int>(gpus.size());
  const auto rings = nvlink_rings(net.topology(), gpus);
  if (rings.empty()) return net.cost(allreduce_schedule(Algorithm::tree, p), gpus);
  // NCCL's tree on one server is, per channel, a chain along that channel's ring: sums flow down
  // the chain to its first rank and the result back up, pipelined, every hop at once.
  Schedule s{"chains", p, {}};
  Step step;
  const double share = 1.0 / static_cast<double>(rings.size());
  for (const auto& chain : rings)
    for (int i = 1; i < p; ++i) {
      step.transfers.push_back({chain[i], chain[i - 1], share, true});
      step.transfers.push_back({chain[i - 1], chain[i], share, false});
    }
  step.latency_hops = 2 * (p - 1);  // the first chunk down the chain and back
  s.steps.push_back(step);
  return net.cost(s, gpus);
}

}  // namespace basin::sim
