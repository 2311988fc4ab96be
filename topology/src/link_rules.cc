// What a link of each kind may join (see link_rules.h).
#include "link_rules.h"

#include <boost/range/iterator_range.hpp>

#include <algorithm>
#include <initializer_list>

namespace basin::topo {

namespace {
bool is_one_of(NodeKind kind, std::initializer_list<NodeKind> kinds) {
  return std::find(kinds.begin(), kinds.end(), kind) != kinds.end();
}
bool network(LinkKind kind) { return kind == LinkKind::ethernet || kind == LinkKind::infiniband; }
}  // namespace

std::optional<std::string> link_end_fault(LinkKind kind, const Node& a, const Node& b) {
  using K = NodeKind;
  auto both = [&](std::initializer_list<K> kinds) { return is_one_of(a.kind, kinds) && is_one_of(b.kind, kinds); };
  const std::string ends = std::string(" (") + a.id + " is a " + to_string(a.kind) + ", " + b.id + " a " +
                           to_string(b.kind) + ")";
  // Only the network's cables join servers (a node on none is the fabric's, with rules of its own).
  if (kind != LinkKind::ethernet && kind != LinkKind::infiniband && a.server >= 0 && b.server >= 0 &&
      a.server != b.server)
    return std::string("a ") + to_string(kind) + " link inside one server, but " + a.id + " is on server " +
           std::to_string(a.server) + " and " + b.id + " on server " + std::to_string(b.server) +
           " (servers are joined by ethernet or infiniband cables through NICs)";
  switch (kind) {
    case LinkKind::nvlink:
      if (!both({K::gpu, K::nvswitch, K::cpu}))
        return "an nvlink link between GPUs, NVSwitches or CPUs" + ends;
      break;
    case LinkKind::c2c:
      if (!(a.kind == K::cpu && b.kind == K::gpu) && !(a.kind == K::gpu && b.kind == K::cpu))
        return "a c2c link between a CPU and a GPU" + ends;
      break;
    case LinkKind::cpu_interconnect:
      if (!both({K::cpu})) return "a cpu_interconnect link between two CPUs" + ends;
      break;
    case LinkKind::pcie:
      if (a.kind == K::net_switch || b.kind == K::net_switch)
        return "a pcie link inside a server, not to a network switch (NICs are cabled to it)" + ends;
      break;
    case LinkKind::ethernet:
    case LinkKind::infiniband:
      if (!both({K::nic, K::net_switch}))
        return std::string("an ") + to_string(kind) + " cable between NICs and network switches" + ends;
      for (const Node* nic : {&a, &b})
        if (nic->kind == K::nic && nic->port_kind != kind)
          return std::string("a cable of the port kind of ") + nic->id + " (" + to_string(nic->port_kind) +
                 "), got " + to_string(kind);
      break;
  }
  return std::nullopt;
}

std::optional<SwitchFault> mixed_network_switch(const Topology& topo) {
  const Graph& g = topo.graph;
  for (Vertex v : boost::make_iterator_range(boost::vertices(g))) {
    if (g[v].kind != NodeKind::net_switch) continue;
    std::optional<LinkKind> seen;
    auto cable = [&](LinkKind kind, Vertex other) -> std::optional<SwitchFault> {
      if (!network(kind)) return std::nullopt;
      if (seen && *seen != kind)
        return SwitchFault{v, "a switch of one network, but " + g[v].id + " has both " + to_string(*seen) +
                                  " and " + to_string(kind) + " cables (to " + g[other].id + ")"};
      seen = kind;
      return std::nullopt;
    };
    for (Edge e : boost::make_iterator_range(boost::out_edges(v, g)))
      if (auto fault = cable(g[e].kind, boost::target(e, g))) return fault;
    for (Edge e : boost::make_iterator_range(boost::in_edges(v, g)))
      if (auto fault = cable(g[e].kind, boost::source(e, g))) return fault;
  }
  return std::nullopt;
}

}  // namespace basin::topo
