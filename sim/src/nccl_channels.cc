// NCCL's ring and tree allreduce between servers, as NCCL runs them: per channel, each channel
// carrying its share of the vector and crossing between servers on its own GPUs. A single ring
// crosses each server boundary once, so it gets one NIC of a server with eight; NCCL's channels
// (a whole number for every GPU of a server and every NIC beside them, here) enter at a different
// GPU each and leave through a different NIC each, and together get all of a server's NICs. Likewise NCCL's tree is not a tree over all
// ranks but, per channel, a chain through each server's GPUs up to that channel's GPU and a
// double binary tree between servers (src/graph/connect.cc, trees.cc). NVLS-tree's parts live
// here too: its trees between servers are the same per-channel trees, with the switch summing
// inside each server instead of a chain. Their own file because they need the servers' chains
// (hierarchical_parts.h), which the rank-only schedules of collectives.cc do not.
#include "hierarchical_parts.h"

#include <basin/sim.h>

#include <algorithm>
#include <map>
#include <numeric>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>

namespace basin::sim {

namespace {

// All ranks of `servers`, at least one on each; with `same_count`, the same number on each.
int count_ranks(const std::vector<std::vector<int>>& servers, bool same_count) {
  if (servers.empty()) throw std::invalid_argument("channel schedules need at least one server with ranks");
  size_t p = 0;
  for (const auto& ranks : servers) {
    if (ranks.empty()) throw std::invalid_argument("channel schedules need at least one rank on every server");
    if (same_count && ranks.size() != servers.front().size())
      throw std::invalid_argument("this channel schedule needs the same number of ranks on every server");
    p += ranks.size();
  }
  return static_cast<int>(p);
}

// The most ranks on one server.
size_t most_ranks(const std::vector<std::vector<int>>& servers) {
  size_t most = 0;
  for (const auto& ranks : servers) most = std::max(most, ranks.size());
  return most;
}

// NCCL's double binary tree between servers for one channel: the channel's `share` of the vector
// split between the two trees, each reduced up to its root and broadcast back down, between the
// rank `head(node)` of each server.
template <class Head>
void add_server_trees(Step& step, int nodes, double share, Head head) {
  for (int which : {0, 1}) {
    const std::vector<int> parent = binary_tree_parents(nodes, which);
    for (int node = 0; node < nodes; ++node) {
      if (parent[node] < 0) continue;
      step.transfers.push_back({head(node), head(parent[node]), share / 2, true});
      step.transfers.push_back({head(parent[node]), head(node), share / 2, false});
    }
  }
}

// Edges from the deepest server to the root, over the taller of the two trees.
int server_tree_height(int nodes) {
  int height = 0;
  for (int which : {0, 1}) {
    const std::vector<int> parent = binary_tree_parents(nodes, which);
    for (int node = 0; node < nodes; ++node) {
      int depth = 0;
      for (int v = node; parent[v] >= 0; v = parent[v]) ++depth;
      height = std::max(height, depth);
    }
  }
  return height;
}

}  // namespace

Schedule channel_rings_allreduce(const std::vector<std::vector<int>>& servers, int channels) {
  const int p = count_ranks(servers, false);
  Schedule s{"channel-rings", p, {}};
  if (p < 2) return s;
  if (channels < 0) throw std::invalid_argument("channel rings: 0 channels (one per rank of a server) or more");
  if (servers.size() < 2) channels = 1;
  else if (channels == 0) channels = static_cast<int>(most_ranks(servers));
  std::vector<std::vector<int>> rings(channels);
  for (int c = 0; c < channels; ++c)
    for (const auto& ranks : servers)
      for (size_t i = 0; i < ranks.size(); ++i) rings[c].push_back(ranks[(c + i) % ranks.size()]);
  s.steps = rings_allreduce(rings).steps;
  return s;
}

Schedule channel_trees_allreduce(const std::vector<std::vector<int>>& servers, int channels) {
  const int p = count_ranks(servers, false);
  const size_t most = most_ranks(servers);
  Schedule s{"channel-trees", p, {}};
  if (p < 2) return s;
  if (channels < 0) throw std::invalid_argument("channel trees: 0 channels (one per rank of a server) or more");
  if (channels == 0) channels = static_cast<int>(most);
  const int nodes = static_cast<int>(servers.size());
  const double share = 1.0 / channels;
  // One pipelined step, like the flat tree: every chain hop and tree edge streams at once.
  Step step;
  for (int c = 0; c < channels; ++c) {
    // The chain of each server ends at its c-th rank, which talks to the other servers.
    auto chain_at = [&](int node, size_t i) { return servers[node][(c + i) % servers[node].size()]; };
    for (int node = 0; node < nodes; ++node)
      for (size_t i = 1; i < servers[node].size(); ++i) {
        step.transfers.push_back({chain_at(node, i), chain_at(node, i - 1), share, true});
        step.transfers.push_back({chain_at(node, i - 1), chain_at(node, i), share, false});
      }
    add_server_trees(step, nodes, share, [&](int node) { return chain_at(node, 0); });
  }
  // The first chunk climbs the longest chain and the taller tree and comes back down.
  step.latency_hops = 2 * (static_cast<int>(most) - 1 + server_tree_height(nodes));
  s.steps.push_back(step);
  return s;
}

Schedule head_trees_allreduce(const std::vector<std::vector<int>>& servers) {
  const int p = count_ranks(servers, true);
  const size_t per_server = servers.front().size();
  const int nodes = static_cast<int>(servers.size());
  Schedule s{"head-trees", p, {}};
  if (nodes < 2) return s;
  Step step;
  for (size_t c = 0; c < per_server; ++c)
    add_server_trees(step, nodes, 1.0 / per_server, [&](int node) { return servers[node][c]; });
  step.latency_hops = 2 * server_tree_height(nodes);
  s.steps.push_back(step);
  return s;
}

namespace {

// The chains hold every GPU once, server by server; the schedules' ranks are positions in that
// order, listed per server.
std::vector<std::vector<int>> chain_ranks(Network& net, const std::vector<topo::Vertex>& gpus,
                                          std::vector<topo::Vertex>& order) {
  std::vector<std::vector<int>> servers;
  for (const auto& chain : server_chains(net, gpus)) {
    servers.emplace_back();
    for (topo::Vertex v : chain) {
      servers.back().push_back(static_cast<int>(order.size()));
      order.push_back(v);
    }
  }
  return servers;
}

}  // namespace

// NCCL's PXN (NCCL 2.12 on): a rank sending to another server hands its data over NVLink to the
// GPU of its own server on the destination's rail (the same place in its server's chain, as the
// servers are alike: each GPU's own NIC is its rail), whose NIC sends it, so a ring's hop between servers stays on one rail instead of
// crossing a rail-optimized fabric's spines or a host's PCIe (src/transport/net.cc, "PXN").
// Taken where any such hop gets shorter by it and every hop's proxy is an NVLink away (NCCL
// hands data over NVLink only), and then for every hop, so that each GPU's NIC carries one
// ring's traffic each way (none otherwise); channel_rings_cost keeps it only where it is faster.
static std::optional<Schedule> through_rail_proxies(Network& net, Schedule s, const std::vector<std::vector<int>>& servers,
                              const std::vector<topo::Vertex>& order) {
  std::vector<int> server_of(order.size()), place(order.size());
  for (size_t node = 0; node < servers.size(); ++node)
    for (size_t i = 0; i < servers[node].size(); ++i) {
      server_of[servers[node][i]] = static_cast<int>(node);
      place[servers[node][i]] = static_cast<int>(i);
    }
  auto hops = [&](int a, int b) { return net.route(order[a], order[b]).links.size(); };
  // The rank of the sender's server on the destination's rail.
  auto on_rail_of = [&](int from, int to) { return servers[server_of[from]][place[to]]; };
  bool shorter = false;
  for (const Step& step : s.steps)
    for (const Transfer& t : step.transfers) {
      if (server_of[t.src] == server_of[t.dst]) continue;
      // Servers of unequal counts: a destination's place may have no GPU on the sender's server.
      if (place[t.dst] >= static_cast<int>(servers[server_of[t.src]].size())) return std::nullopt;
      const int proxy = on_rail_of(t.src, t.dst);
      if (proxy != t.src &&
          topo::path_class(net.topology(), order[t.src], order[proxy]).cls != topo::PathClass::nvlink)
        return std::nullopt;
      if (hops(proxy, t.dst) < hops(t.src, t.dst)) shorter = true;
    }
  if (!shorter) return std::nullopt;
  for (Step& step : s.steps) {
    std::vector<Transfer> out;
    for (const Transfer& t : step.transfers) {
      const int proxy = server_of[t.src] == server_of[t.dst] ? t.src : on_rail_of(t.src, t.dst);
      if (proxy != t.src) out.push_back({t.src, proxy, t.fraction, false});
      out.push_back({proxy, t.dst, t.fraction, t.reduce});
    }
    step.transfers = std::move(out);
  }
  return s;
}

namespace {

// Whether some GPU of `order` has more than one NIC as close as its closest.
bool any_nic_choice(Network& net, const std::vector<topo::Vertex>& order) {
  return std::any_of(order.begin(), order.end(), [&](topo::Vertex v) { return net.closest_nics(v).size() > 1; });
}

// NCCL's channel count between servers: a whole number of channels for every server's ranks
// and, where a GPU has several NICs closest to it, for every server's NICs closest to its GPUs
// (ncclTopoCompute searches a ring per NIC and duplicates the rings it finds), so that each GPU
// and each such NIC carries as many channels as the next: the least common multiple, or where
// that passes NCCL's 64 channels, the largest count (one GPU beside two NICs: two; three GPUs
// beside two NICs: six; one server of eight GPUs and one of four: eight).
int channel_count(Network& net, const std::vector<std::vector<int>>& servers, const std::vector<topo::Vertex>& order) {
  constexpr size_t kMostChannels = 64;
  std::vector<size_t> counts;
  for (const auto& ranks : servers) counts.push_back(ranks.size());
  if (servers.size() > 1 && any_nic_choice(net, order))
    for (const auto& ranks : servers) {
      std::set<int> closest;
      for (int r : ranks)
        for (int nic : net.closest_nics(order[r])) closest.insert(nic);
      if (!closest.empty()) counts.push_back(closest.size());
    }
  size_t lcm = 1, most = 1;
  for (size_t n : counts) {
    most = std::max(most, n);
    if (lcm <= kMostChannels) lcm = std::lcm(lcm, n);
  }
  return static_cast<int>(lcm <= kMostChannels ? lcm : most);
}

// Puts each transfer between servers on NICs as NCCL puts a channel's: out by one of the NICs
// closest to the sending GPU (ncclTopoSelectNets: those at its best path type and bandwidth),
// the channels taking them in turn, so here the least loaded in this step (the GPU's own first
// among equals); in by the least loaded of the receiving GPU's closest, the NIC at the sender's
// place first among equals (a channel's NIC in and out is one, rails aligned: nccl#820), then
// the receiver's own. Where every GPU has one closest NIC the routes choose, as before (widest,
// then least latency, then own NICs: Network::route).
void place_on_nics(Network& net, Schedule& s, const std::vector<topo::Vertex>& order) {
  if (!any_nic_choice(net, order)) return;
  const auto& g = net.topology().graph;
  for (Step& step : s.steps) {
    std::map<int, std::map<int, double>> out_load, in_load;  // server -> NIC position -> fraction
    for (Transfer& t : step.transfers) {
      const int from = g[order[t.src]].server, to = g[order[t.dst]].server;
      if (from == to) continue;
      const std::vector<int>& out = net.closest_nics(order[t.src]);
      const std::vector<int>& in = net.closest_nics(order[t.dst]);
      if (out.empty() || in.empty()) continue;  // the route says what is missing
      // The least loaded pair whose way is as wide as the route's own; none (a NIC on another
      // network, a slower cable): the route chooses.
      const double widest = net.route_GBps(order[t.src], order[t.dst]);
      std::vector<int> exits = out;
      std::stable_sort(exits.begin(), exits.end(), [&](int x, int y) { return out_load[from][x] < out_load[from][y]; });
      for (int exit : exits) {
        std::vector<int> entries = in;
        if (std::find(in.begin(), in.end(), exit) != in.end()) entries.insert(entries.begin(), exit);
        std::stable_sort(entries.begin(), entries.end(),
                         [&](int x, int y) { return in_load[to][x] < in_load[to][y]; });
        const auto entry = std::find_if(entries.begin(), entries.end(), [&](int y) {
          return net.route_through_GBps(order[t.src], order[t.dst], exit, y) >= widest * (1 - 1e-12);
        });
        if (entry == entries.end()) continue;
        t.exit_nic = exit, t.entry_nic = *entry;
        out_load[from][exit] += t.fraction;
        in_load[to][*entry] += t.fraction;
        break;
      }
    }
  }
}

}  // namespace

CollectiveCost channel_rings_cost(Network& net, const std::vector<topo::Vertex>& gpus) {
  std::vector<topo::Vertex> order;
  const auto servers = chain_ranks(net, gpus, order);
  Schedule rings = channel_rings_allreduce(servers, channel_count(net, servers, order));
  place_on_nics(net, rings, order);
  CollectiveCost direct = net.cost(rings, order);
  const std::optional<Schedule> pxn = through_rail_proxies(net, rings, servers, order);
  if (!pxn) return direct;
  CollectiveCost proxied = net.cost(*pxn, order);
  return proxied.seconds_per_byte < direct.seconds_per_byte ? proxied : direct;
}

CollectiveCost channel_trees_cost(Network& net, const std::vector<topo::Vertex>& gpus) {
  std::vector<topo::Vertex> order;
  const auto servers = chain_ranks(net, gpus, order);
  Schedule trees = channel_trees_allreduce(servers, channel_count(net, servers, order));
  place_on_nics(net, trees, order);
  return net.cost(trees, order);
}

std::map<int, std::vector<topo::Vertex>> by_server(const topo::Topology& t, const std::vector<topo::Vertex>& gpus) {
  std::map<int, std::vector<topo::Vertex>> out;
  for (topo::Vertex v : gpus) out[t.graph[v].server].push_back(v);
  return out;
}

CollectiveCost slowest_nvls(Network& net, const std::map<int, std::vector<topo::Vertex>>& servers,
                            const std::string& origin) {
  CollectiveCost slowest;
  for (const auto& [server, own] : servers) {
    CollectiveCost c = nvls_cost(net, own, origin);
    if (c.seconds_per_byte > slowest.seconds_per_byte) slowest = std::move(c);
  }
  return slowest;
}

std::string nvls_tree_refusal(const topo::Topology& t, const std::vector<topo::Vertex>& gpus, const char* algorithm) {
  if (gpus.empty()) return "";
  const auto servers = by_server(t, gpus);
  const size_t per_server = servers.begin()->second.size();
  const bool even = std::all_of(servers.begin(), servers.end(),
                                [&](const auto& kv) { return kv.second.size() == per_server; });
  if (!even || per_server < 2)
    return std::string("for ") + algorithm + ", the same number of GPUs (two or more) on each server, but " +
           std::to_string(gpus.size()) + " GPUs of " + t.name + " are on " + std::to_string(servers.size()) +
           " server(s)" + (even ? "" : " in unequal numbers");
  for (const auto& [server, own] : servers)
    if (!topo::nvlink_sharp_switch(t, own))
      return std::string("for ") + algorithm + ", every server's GPUs on an NVSwitch that sums in the switch (NVLink 4 or later, as "
             "in dgx-h100 and dgx-b200), but those of server " + std::to_string(server) + " of " + t.name +
             " are not";
  return "";
}

NvlsTreeParts nvls_tree_parts(Network& net, const std::vector<topo::Vertex>& gpus, const std::string& origin) {
  if (gpus.size() < 2) return {};  // nothing to reduce
  if (const std::string refused = nvls_tree_refusal(net.topology(), gpus); !refused.empty())
    throw topo::InputError(origin, "", refused);
  const auto servers = by_server(net.topology(), gpus);
  // On one server there is nothing between servers: NVLS alone, which is what NCCL runs there
  // (it disables NVLS-tree on one node), so a run's one-server baseline stays comparable.
  NvlsTreeParts parts{slowest_nvls(net, servers, origin), {}, static_cast<int>(servers.size())};
  if (servers.size() > 1) {
    // Ranks server by server; head c of each server is its c-th GPU, which routes through its own
    // NIC (the order inside a server does not matter to the trees, so no chain is searched).
    std::vector<topo::Vertex> order;
    std::vector<std::vector<int>> ranks;
    for (const auto& [server, own] : servers) {
      ranks.emplace_back();
      for (topo::Vertex v : own) {
        ranks.back().push_back(static_cast<int>(order.size()));
        order.push_back(v);
      }
    }
    parts.between_servers = net.cost(head_trees_allreduce(ranks), order);
    // The channels cross through different NICs at once, each its own chunk stream (GPUDirect,
    // no host stack to queue in): a chunk waits for its own channel's tree, so the latency is one
    // channel's.
    std::vector<std::vector<int>> first_heads;
    std::vector<topo::Vertex> heads;
    for (const auto& r : ranks) {
      first_heads.push_back({static_cast<int>(heads.size())});
      heads.push_back(order[r.front()]);
    }
    parts.between_servers.latency_s = net.cost(head_trees_allreduce(first_heads), heads).latency_s;
  }
  return parts;
}

CollectiveCost nvls_tree_cost(Network& net, const std::vector<topo::Vertex>& gpus, const std::string& origin) {
  return nvls_tree_parts(net, gpus, origin).combined();
}

CollectiveCost NvlsTreeParts::combined(double in_servers_efficiency, double between_servers_efficiency) const {
  // Pipelined chunk by chunk on different links (NVLink to the switch; PCIe and the NICs between
  // servers): the slower part sets the rate, and a chunk's latency is both parts'.
  CollectiveCost c;
  c.seconds_per_byte = std::max(in_servers.seconds_per_byte / in_servers_efficiency,
                                between_servers.seconds_per_byte / between_servers_efficiency);
  c.latency_s = in_servers.latency_s + between_servers.latency_s;
  c.busy_s_per_byte = in_servers.busy_s_per_byte;
  for (const auto& [link, busy] : between_servers.busy_s_per_byte) c.busy_s_per_byte[link] += busy;
  return c;
}

}  // namespace basin::sim
