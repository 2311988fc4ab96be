// The topology graph itself: building it, naming its kinds, and the structural checks every
// topology must pass whatever it was loaded from.
#include <basin/topology.h>

#include <boost/graph/strong_components.hpp>

#include <algorithm>
#include <array>
#include <cstdio>
#include <map>
#include <optional>
#include <queue>
#include <utility>

namespace basin::topo {

InputError::InputError(std::string origin_, std::string path_, std::string expected_)
    : std::runtime_error(origin_ + (path_.empty() ? "" : ": " + path_) + ": expected " + expected_),
      origin(std::move(origin_)),
      path(std::move(path_)),
      expected(std::move(expected_)) {}

namespace {
constexpr std::array<std::pair<NodeKind, const char*>, 7> kNodeKinds{{
    {NodeKind::gpu, "gpu"},
    {NodeKind::cpu, "cpu"},
    {NodeKind::host_bridge, "host_bridge"},
    {NodeKind::pcie_switch, "pcie_switch"},
    {NodeKind::nvswitch, "nvswitch"},
    {NodeKind::nic, "nic"},
    {NodeKind::net_switch, "net_switch"},
}};
constexpr std::array<std::pair<LinkKind, const char*>, 6> kLinkKinds{{
    {LinkKind::nvlink, "nvlink"},
    {LinkKind::pcie, "pcie"},
    {LinkKind::cpu_interconnect, "cpu_interconnect"},
    {LinkKind::ethernet, "ethernet"},
    {LinkKind::infiniband, "infiniband"},
    {LinkKind::c2c, "c2c"},
}};
}  // namespace

const char* to_string(NodeKind kind) {
  for (const auto& [k, s] : kNodeKinds)
    if (k == kind) return s;
  return "?";
}
const char* to_string(LinkKind kind) {
  for (const auto& [k, s] : kLinkKinds)
    if (k == kind) return s;
  return "?";
}
std::optional<NodeKind> node_kind_from_string(std::string_view text) {
  for (const auto& [k, s] : kNodeKinds)
    if (text == s) return k;
  return std::nullopt;
}
std::optional<LinkKind> link_kind_from_string(std::string_view text) {
  for (const auto& [k, s] : kLinkKinds)
    if (text == s) return k;
  return std::nullopt;
}

std::vector<NodeKind> all_node_kinds() {
  std::vector<NodeKind> out;
  for (const auto& [k, s] : kNodeKinds) out.push_back(k);
  return out;
}

std::vector<LinkKind> all_link_kinds() {
  std::vector<LinkKind> out;
  for (const auto& [k, s] : kLinkKinds) out.push_back(k);
  return out;
}

Vertex add_node(Topology& topo, Node n) {
  if (topo.by_id.count(n.id))
    throw std::logic_error("add_node: duplicate node id '" + n.id + "'");
  std::string id = n.id;
  Vertex v = boost::add_vertex(std::move(n), topo.graph);
  topo.by_id.emplace(std::move(id), v);
  return v;
}

void add_link(Topology& topo, Vertex a, Vertex b, Link link, bool duplex) {
  link.id = static_cast<int>(boost::num_edges(topo.graph));
  boost::add_edge(a, b, link, topo.graph);
  if (duplex) {
    link.id += 1;
    boost::add_edge(b, a, link, topo.graph);
  }
}

std::optional<Vertex> find_node(const Topology& topo, std::string_view id) {
  auto it = topo.by_id.find(std::string(id));
  if (it == topo.by_id.end()) return std::nullopt;
  return it->second;
}

const Node& node(const Topology& topo, Vertex v) { return topo.graph[v]; }

int num_links(const Topology& topo) { return static_cast<int>(boost::num_edges(topo.graph)); }

std::vector<Vertex> nodes_of_kind(const Topology& topo, NodeKind kind, int server) {
  std::vector<Vertex> out;
  for (Vertex v : boost::make_iterator_range(boost::vertices(topo.graph))) {
    const Node& n = topo.graph[v];
    if (n.kind == kind && (server < 0 || n.server == server)) out.push_back(v);
  }
  std::stable_sort(out.begin(), out.end(), [&](Vertex a, Vertex b) {
    const Node& x = topo.graph[a];
    const Node& y = topo.graph[b];
    return std::pair(x.server, x.index) < std::pair(y.server, y.index);
  });
  return out;
}

std::vector<Vertex> gpus(const Topology& topo) { return nodes_of_kind(topo, NodeKind::gpu); }

namespace {
// A number as a person writes it: 1e+300, not three hundred digits.
std::string short_number(double x) {
  char text[32];
  std::snprintf(text, sizeof text, "%g", x);
  return text;
}
}  // namespace

void validate(const Topology& topo, const std::string& origin) {
  const Graph& g = topo.graph;
  for (Edge e : boost::make_iterator_range(boost::edges(g))) {
    const Link& l = g[e];
    const std::string where = "/links (" + g[boost::source(e, g)].id + " -> " +
                              g[boost::target(e, g)].id + ")";
    // Bounded above too: no link comes near an exabyte a second (a spine of 65536 servers' NICs is
    // under a petabyte) or a second per hop, and numbers
    // past those turn the engine's sums into infinities or stall its fair sharing.
    if (!(l.bandwidth_GBps > 0 && l.bandwidth_GBps <= kMaxLinkGBps))
      throw InputError(origin, where + "/bandwidth_GBps",
                       "a bandwidth above 0 and at most 1e9 GB/s, got " + short_number(l.bandwidth_GBps));
    if (!(l.latency_us >= 0 && l.latency_us <= 1e6))
      throw InputError(origin, where + "/latency_us",
                       "a latency from 0 to 1e6 us, got " + short_number(l.latency_us));
    if (boost::source(e, g) == boost::target(e, g))
      throw InputError(origin, where, "a link between two different nodes");
  }
  // Devices belong to one of the servers described; only the fabric's switches may belong to none
  // (-1). (An NVSwitch tray shared by several servers' GPUs would be outside them too, but routes
  // inside a server are searched on its own devices: model such a domain as one server, as
  // gb200-nvl72 does.)
  for (Vertex v : boost::make_iterator_range(boost::vertices(g))) {
    const Node& n = g[v];
    const int lowest = n.kind == NodeKind::net_switch ? -1 : 0;
    if (n.server < lowest || n.server >= topo.servers)
      throw InputError(origin, "/nodes/" + std::to_string(v) + "/server",
                       std::string("a server from ") + std::to_string(lowest) + " to " +
                           std::to_string(topo.servers - 1) + " (the file describes " +
                           std::to_string(topo.servers) + " server(s); -1, outside every server, is for "
                           "net_switch nodes only; an NVLink domain across trays is one server), got " +
                           std::to_string(n.server));
    if (n.kind == NodeKind::nic && !(n.port_GBps <= kMaxLinkGBps))
      throw InputError(origin, "/nodes/" + std::to_string(v) + "/port_GBps",
                       "a line rate of at most 1e9 GB/s, got " + short_number(n.port_GBps));
  }
  // Every server the file counts holds a device: a count beyond the servers described would be
  // taken for servers nobody can route to.
  {
    std::vector<bool> described(std::max(topo.servers, 0), false);
    for (Vertex v : boost::make_iterator_range(boost::vertices(g)))
      if (g[v].server >= 0) described[g[v].server] = true;
    for (int server = 0; server < topo.servers; ++server)
      if (!described[server])
        throw InputError(origin, "/servers",
                         "as many servers as the nodes describe (server " + std::to_string(server) +
                             " has none), got " + std::to_string(topo.servers));
  }
  // Every GPU must reach some other GPU: a breadth-first search from each GPU in turn would be
  // quadratic on a cluster, so label connected components once and count GPUs in each.
  auto all_gpus = gpus(topo);
  if (all_gpus.size() < 2) return;
  std::vector<int> component(boost::num_vertices(g), -1);
  int components = 0;
  for (Vertex start : boost::make_iterator_range(boost::vertices(g))) {
    if (component[start] >= 0) continue;
    std::queue<Vertex> frontier;
    frontier.push(start);
    component[start] = components;
    while (!frontier.empty()) {
      Vertex v = frontier.front();
      frontier.pop();
      auto visit = [&](Vertex w) {
        if (component[w] < 0) {
          component[w] = components;
          frontier.push(w);
        }
      };
      for (Edge e : boost::make_iterator_range(boost::out_edges(v, g))) visit(boost::target(e, g));
      for (Edge e : boost::make_iterator_range(boost::in_edges(v, g))) visit(boost::source(e, g));
    }
    ++components;
  }
  // The first GPU whose component holds no other GPU, if any.
  auto alone = [&](const std::vector<int>& of, int count) -> std::optional<Vertex> {
    std::vector<int> gpus_in(count, 0);
    for (Vertex v : all_gpus) ++gpus_in[of[v]];
    for (Vertex v : all_gpus)
      if (gpus_in[of[v]] < 2) return v;
    return std::nullopt;
  };
  // Vertices are numbered in the order of the file's "nodes" array.
  if (const auto v = alone(component, components))
    throw InputError(origin, "/nodes/" + std::to_string(*v),
                     "every GPU to reach at least one other GPU over links, but " + g[*v].id + " reaches none");
  // And both ways: every collective sends and receives, so a GPU that one-way links (duplex
  // false) leave only sending or only receiving would fail later, as a route that is not there.
  std::vector<int> both_ways(boost::num_vertices(g), -1);
  const int strong = boost::strong_components(
      g, boost::make_iterator_property_map(both_ways.begin(), boost::get(boost::vertex_index, g)));
  if (const auto v = alone(both_ways, strong))
    throw InputError(origin, "/nodes/" + std::to_string(*v),
                     "every GPU to reach another GPU and be reached from it, but " + g[*v].id +
                         " has links to or from the others one way only (\"duplex\": false)");
  // And all of them together: a collective over the cluster needs every GPU to reach every other,
  // so a server whose GPUs reach no NIC, or a fabric in pieces, is refused here, naming a GPU cut
  // off from the first, rather than at the first route that needs it. Servers joined by no
  // fabric (fabric=none: no switch outside them) need it only among each server's own GPUs.
  bool fabric = false;
  for (Vertex v : boost::make_iterator_range(boost::vertices(g))) fabric |= g[v].server < 0;
  std::map<int, Vertex> first;  // per server, or one for the whole cluster (key -1)
  for (Vertex v : all_gpus) {
    const Vertex other = first.emplace(fabric ? -1 : g[v].server, v).first->second;
    if (both_ways[v] != both_ways[other])
      throw InputError(origin, "/nodes/" + std::to_string(v),
                       "every GPU to reach every other " + std::string(fabric ? "" : "of its server ") +
                           "both ways, but " + g[v].id + " (server " + std::to_string(g[v].server) + ") and " +
                           g[other].id + " (server " + std::to_string(g[other].server) +
                           ") have no route between them (" +
                           (fabric ? "a server whose GPUs reach no NIC, or a fabric in pieces)" : "GPUs in pieces)"));
  }
}

}  // namespace basin::topo
