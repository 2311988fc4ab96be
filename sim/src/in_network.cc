// Allreduce with the sums done in the network between servers (InfiniBand SHARP), as NCCL runs it:
// NVLS across servers (each server's NVSwitch sums its GPUs' vectors, the fabric's switches sum
// the servers') and CollNet's chain (each server's GPUs reduce along a chain to a head, the
// fabric's switches sum the heads'). Per channel, one GPU of each server heads it and sends its
// share through its own NIC up an aggregation tree of switches (topo::sharp_tree), which returns
// the total down the same tree; every NIC and tree link carries the share once each way, where a
// ring between servers carries it 2 (s - 1) / s times. The schedules reach past the GPUs to the
// NICs and switches, which the engine treats as endpoints of their own, as the NVSwitch is for
// NVLS (in_switch.cc).
#include "hierarchical_parts.h"

#include <basin/sim.h>

#include <algorithm>
#include <string>
#include <unordered_map>

namespace basin::sim {
namespace {

// A schedule's endpoints beyond its GPUs: GPUs first, NICs and switches as they are first named.
struct Ends {
  std::vector<topo::Vertex> vertices;
  std::unordered_map<topo::Vertex, int> rank;
  int of(topo::Vertex v) {
    auto [it, added] = rank.emplace(v, static_cast<int>(vertices.size()));
    if (added) vertices.push_back(v);
    return it->second;
  }
};

// Channel `channel`'s in-network allreduce of `share` of the vector among `heads` (one per
// server): up through each head's own NIC and the tree's switches, the total back down, all
// streaming at once. Returns the links from the deepest head to the root.
int add_sharp_tree(Network& net, Step& step, Ends& ends, const std::vector<topo::Vertex>& heads, int channel,
                   double share, const std::string& origin) {
  std::vector<topo::Vertex> nics;
  for (topo::Vertex v : heads) nics.push_back(net.own_nic_of(v));
  const std::optional<topo::SharpTree> tree = topo::sharp_tree(net.topology(), nics, channel);
  if (!tree)
    throw topo::InputError(origin, "", "switches that sum in the network above the NICs of channel " +
                                           std::to_string(channel) + " on " + net.topology().name +
                                           ", but there is no such tree");
  auto both_ways = [&](topo::Vertex a, topo::Vertex b) {
    step.transfers.push_back({ends.of(a), ends.of(b), share, false});
    step.transfers.push_back({ends.of(b), ends.of(a), share, false});
  };
  for (size_t i = 0; i < heads.size(); ++i) both_ways(heads[i], nics[i]);
  for (auto [child, parent] : tree->up) both_ways(child, parent);
  return tree->levels + 1;  // and the hop from the GPU to its NIC
}

std::string servers_refusal(const topo::Topology& t, const std::vector<topo::Vertex>& gpus, const char* algorithm) {
  const auto servers = by_server(t, gpus);
  const size_t per_server = servers.begin()->second.size();
  const bool even = std::all_of(servers.begin(), servers.end(),
                                [&](const auto& kv) { return kv.second.size() == per_server; });
  if (!even)
    return std::string("for ") + algorithm + " across servers, the same number of GPUs on each server, but " +
           std::to_string(gpus.size()) + " GPUs of " + t.name + " are on " + std::to_string(servers.size()) +
           " servers in unequal numbers";
  return "";
}

}  // namespace

std::string sharp_refusal(const topo::Topology& t, const std::vector<topo::Vertex>& gpus, const char* algorithm) {
  if (gpus.empty()) return "";
  // One tree above all the servers' NICs means one above any channel's: a root that every NIC
  // reaches through summing switches is reached by any subset of them.
  std::vector<topo::Vertex> nics;
  for (const auto& [server, own] : by_server(t, gpus))
    for (topo::Vertex v : topo::server_boundary(t, server))
      if (t.graph[v].kind == topo::NodeKind::nic) nics.push_back(v);
  for (topo::Vertex v : nics)
    if (t.graph[v].port_kind != topo::LinkKind::infiniband)
      return std::string("for ") + algorithm + " across servers, InfiniBand NICs under switches that sum (SHARP), but " +
             t.graph[v].id + " of " + t.name + " is " + topo::to_string(t.graph[v].port_kind);
  if (nics.empty() || !topo::sharp_tree(t, nics))
    return std::string("for ") + algorithm + " across servers, fabric switches that sum in the network (InfiniBand "
           "SHARP: a cluster spec with sharp=on, or net_switch nodes with \"sharp\": true) above every server's "
           "NICs, but " + t.name + " has none";
  return "";
}

std::string nvls_refusal(const topo::Topology& t, const std::vector<topo::Vertex>& gpus) {
  if (gpus.size() < 2) return "";
  if (by_server(t, gpus).size() == 1) {
    if (topo::nvlink_sharp_switch(t, gpus)) return "";
    return "for nvls, every rank's GPU on one NVSwitch that sums in the switch (NVLink 4 or later, as in dgx-h100), "
           "but the " + std::to_string(gpus.size()) + " GPUs of " + t.name + " are not";
  }
  if (std::string r = nvls_tree_refusal(t, gpus, "nvls across servers"); !r.empty()) return r;
  return sharp_refusal(t, gpus, "nvls");
}

NvlsTreeParts nvls_parts(Network& net, const std::vector<topo::Vertex>& gpus, const std::string& origin) {
  if (gpus.size() < 2) return {};
  if (const std::string refused = nvls_refusal(net.topology(), gpus); !refused.empty())
    throw topo::InputError(origin, "", refused);
  const auto servers = by_server(net.topology(), gpus);
  NvlsTreeParts parts{slowest_nvls(net, servers, origin), {}, static_cast<int>(servers.size())};
  if (servers.size() == 1) return parts;
  // Head c of each server is its c-th GPU, with 1/ppn of its server's sum.
  const size_t per_server = servers.begin()->second.size();
  auto channel_heads = [&](size_t c) {
    std::vector<topo::Vertex> heads;
    for (const auto& [server, own] : servers) heads.push_back(own[c]);
    return heads;
  };
  Ends ends;
  for (topo::Vertex v : gpus) ends.of(v);
  Step step;
  int hops = 0;
  for (size_t c = 0; c < per_server; ++c)
    hops = std::max(hops, add_sharp_tree(net, step, ends, channel_heads(c), static_cast<int>(c),
                                         1.0 / static_cast<double>(per_server), origin));
  step.latency_hops = 2 * hops;
  parts.between_servers = net.cost(Schedule{"sharp", static_cast<int>(ends.vertices.size()), {step}}, ends.vertices);
  // The channels stream through different NICs at once (GPUDirect, no host stack to queue in): a
  // chunk waits for its own channel's tree only.
  Ends first;
  Step one;
  one.latency_hops = 2 * add_sharp_tree(net, one, first, channel_heads(0), 0, 1.0, origin);
  parts.between_servers.latency_s =
      net.cost(Schedule{"sharp", static_cast<int>(first.vertices.size()), {one}}, first.vertices).latency_s;
  return parts;
}

std::string collnet_chain_refusal(const topo::Topology& t, const std::vector<topo::Vertex>& gpus) {
  if (gpus.size() < 2 || by_server(t, gpus).size() == 1) return "";
  std::string refused = servers_refusal(t, gpus, "collnet-chain");
  return refused.empty() ? sharp_refusal(t, gpus, "collnet-chain") : refused;
}

CollectiveCost collnet_chain_cost(Network& net, const std::vector<topo::Vertex>& gpus, const std::string& origin) {
  if (gpus.size() < 2) return {};
  if (const std::string refused = collnet_chain_refusal(net.topology(), gpus); !refused.empty())
    throw topo::InputError(origin, "", refused);
  // On one server there is nothing between servers: the chains alone, which is NCCL's tree there
  // (CollNet needs two nodes), so a run's one-server baseline stays comparable.
  if (by_server(net.topology(), gpus).size() == 1) return channel_trees_cost(net, gpus);
  // As NCCL's tree (channel_trees_allreduce) with the switches in place of the trees between
  // servers: per channel a chain through each server's GPUs, in the order whose narrowest hop is
  // widest, ending at its c-th GPU, which joins channel c's aggregation tree.
  const auto chains = server_chains(net, gpus);
  const size_t per_server = chains.front().size();
  const double share = 1.0 / static_cast<double>(per_server);
  Ends ends;
  for (const auto& chain : chains)
    for (topo::Vertex v : chain) ends.of(v);
  Step step;
  int hops = 0;
  for (size_t c = 0; c < per_server; ++c) {
    auto chain_at = [&](size_t node, size_t i) { return chains[node][(c + i) % per_server]; };
    std::vector<topo::Vertex> heads;
    for (size_t node = 0; node < chains.size(); ++node) {
      for (size_t i = 1; i < per_server; ++i) {
        step.transfers.push_back({ends.of(chain_at(node, i)), ends.of(chain_at(node, i - 1)), share, true});
        step.transfers.push_back({ends.of(chain_at(node, i - 1)), ends.of(chain_at(node, i)), share, false});
      }
      heads.push_back(chain_at(node, 0));
    }
    hops = std::max(hops, add_sharp_tree(net, step, ends, heads, static_cast<int>(c), share, origin));
  }
  // The first chunk climbs a chain and the tree and comes back down.
  step.latency_hops = 2 * (static_cast<int>(per_server) - 1 + hops);
  return net.cost(Schedule{"collnet-chain", static_cast<int>(ends.vertices.size()), {step}}, ends.vertices);
}

}  // namespace basin::sim
