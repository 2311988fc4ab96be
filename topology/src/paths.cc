// Path queries over the topology graph: the widest route between two devices (what one transfer
// can get), nvidia-smi's path classes (what NCCL and people use to reason about placement), and
// the bisection bandwidth of a cluster (what the fabric can carry when half the machine talks to
// the other half). All three run Boost.Graph algorithms on filtered views of the one graph.
#include <basin/topology.h>

#include <boost/graph/breadth_first_search.hpp>
#include <boost/graph/dijkstra_shortest_paths.hpp>
#include <boost/graph/filtered_graph.hpp>
#include <boost/graph/push_relabel_max_flow.hpp>
#include <boost/graph/visitors.hpp>

#include <algorithm>
#include <functional>
#include <limits>

namespace basin::topo {
namespace {

// Which nodes may carry a route between `from` and `to`: no GPU forwards others' traffic, and a
// route inside one server stays inside it.
struct TransitFilter {
  const Graph* g = nullptr;
  Vertex from = 0, to = 0;
  bool same_server = false;
  bool operator()(Vertex v) const {
    if (v == from || v == to) return true;
    const Node& n = (*g)[v];
    if (n.kind == NodeKind::gpu) return false;
    if (same_server && n.kind == NodeKind::net_switch) return false;
    return true;
  }
};

struct WideEnough {
  const Graph* g = nullptr;
  double min_GBps = 0;
  bool operator()(Edge e) const { return (*g)[e].bandwidth_GBps >= min_GBps; }
};

// PCIe-tree links only, for classifying non-NVLink paths the way nvidia-smi does.
struct PcieOnly {
  const Graph* g = nullptr;
  bool operator()(Edge e) const {
    LinkKind k = (*g)[e].kind;
    return k == LinkKind::pcie || k == LinkKind::cpu_interconnect;
  }
};

bool same_server(const Graph& g, Vertex a, Vertex b) {
  return g[a].server >= 0 && g[a].server == g[b].server;
}

int nvlinks_between(const Graph& g, Vertex a, Vertex b) {
  int direct = 0, via_switch = 0;
  for (Edge e : boost::make_iterator_range(boost::out_edges(a, g))) {
    if (g[e].kind != LinkKind::nvlink) continue;
    Vertex mid = boost::target(e, g);
    if (mid == b) direct += g[e].count;
    if (g[mid].kind != NodeKind::nvswitch) continue;
    for (Edge f : boost::make_iterator_range(boost::out_edges(mid, g)))
      if (boost::target(f, g) == b && g[f].kind == LinkKind::nvlink)
        via_switch = std::max(via_switch, std::min(g[e].count, g[f].count));
  }
  return direct > 0 ? direct : via_switch;
}

}  // namespace

Route route(const Topology& topo, Vertex from, Vertex to) {
  const Graph& g = topo.graph;
  Route r;
  if (from == to) {
    r.reachable = true;
    r.bandwidth_GBps = std::numeric_limits<double>::infinity();
    return r;
  }
  TransitFilter keep{&g, from, to, same_server(g, from, to)};
  const size_t n = boost::num_vertices(g);
  auto index = boost::get(boost::vertex_index, g);

  // Pass 1: widest path. Dijkstra with "distance" = bottleneck bandwidth, larger is better.
  boost::filtered_graph<Graph, boost::keep_all, TransitFilter> transit(g, boost::keep_all{}, keep);
  std::vector<double> width(n, 0.0);
  const double unbounded = std::numeric_limits<double>::infinity();
  boost::dijkstra_shortest_paths(
      transit, from,
      boost::weight_map(boost::get(&Link::bandwidth_GBps, g))
          .distance_map(boost::make_iterator_property_map(width.begin(), index))
          .distance_compare(std::greater<double>())
          .distance_combine([](double a, double b) { return std::min(a, b); })
          .distance_inf(0.0)
          .distance_zero(unbounded));
  if (width[to] <= 0) return r;

  // Pass 2: the least-latency route among links at least that wide.
  WideEnough wide{&g, width[to]};
  boost::filtered_graph<Graph, WideEnough, TransitFilter> candidates(g, wide, keep);
  std::vector<double> latency(n, unbounded);
  std::vector<Edge> via(n);
  boost::dijkstra_shortest_paths(
      candidates, from,
      boost::weight_map(boost::get(&Link::latency_us, g))
          .distance_map(boost::make_iterator_property_map(latency.begin(), index))
          .visitor(boost::make_dijkstra_visitor(boost::record_edge_predecessors(
              boost::make_iterator_property_map(via.begin(), index), boost::on_edge_relaxed()))));
  if (latency[to] == unbounded) return r;  // cannot happen: pass 1 found a route
  for (Vertex v = to; v != from; v = boost::source(via[v], g)) r.links.push_back(via[v]);
  std::reverse(r.links.begin(), r.links.end());
  r.bandwidth_GBps = width[to];
  r.latency_us = latency[to];
  r.reachable = true;
  return r;
}

PathInfo path_class(const Topology& topo, Vertex a, Vertex b) {
  const Graph& g = topo.graph;
  if (a == b) return {PathClass::self, 0};
  if (!same_server(g, a, b)) return {PathClass::net, 0};
  if (int links = nvlinks_between(g, a, b); links > 0) return {PathClass::nvlink, links};

  // Fewest-hop path through the PCIe tree and the CPU interconnect.
  TransitFilter keep{&g, a, b, true};
  boost::filtered_graph<Graph, PcieOnly, TransitFilter> pcie(g, PcieOnly{&g}, keep);
  std::vector<Vertex> parent(boost::num_vertices(g), boost::graph_traits<Graph>::null_vertex());
  parent[a] = a;
  auto index = boost::get(boost::vertex_index, g);
  boost::breadth_first_search(
      pcie, a,
      boost::visitor(boost::make_bfs_visitor(boost::record_predecessors(
          boost::make_iterator_property_map(parent.begin(), index), boost::on_tree_edge()))));
  if (parent[b] == boost::graph_traits<Graph>::null_vertex()) return {PathClass::sys, 0};
  int switches = 0, bridges = 0, cpus = 0;
  for (Vertex v = parent[b]; v != a; v = parent[v]) {
    switch (g[v].kind) {
      case NodeKind::pcie_switch: ++switches; break;
      case NodeKind::host_bridge: ++bridges; break;
      case NodeKind::cpu: ++cpus; break;
      default: break;
    }
  }
  if (cpus >= 2) return {PathClass::sys, 0};
  if (bridges >= 2) return {PathClass::node, 0};
  if (bridges == 1 || cpus == 1) return {PathClass::phb, 0};
  if (switches >= 2) return {PathClass::pxb, 0};
  return {PathClass::pix, 0};
}

std::string path_code(const PathInfo& info) {
  switch (info.cls) {
    case PathClass::self: return "X";
    case PathClass::nvlink: return "NV" + std::to_string(info.nvlinks);
    case PathClass::pix: return "PIX";
    case PathClass::pxb: return "PXB";
    case PathClass::phb: return "PHB";
    case PathClass::node: return "NODE";
    case PathClass::sys: return "SYS";
    case PathClass::net: return "NET";
  }
  return "?";
}

const char* path_legend() {
  return "Legend:\n\n"
         "  X    = Self\n"
         "  SYS  = Connection traversing PCIe as well as the SMP interconnect between NUMA nodes "
         "(e.g., QPI/UPI)\n"
         "  NODE = Connection traversing PCIe as well as the interconnect between PCIe Host "
         "Bridges within a NUMA node\n"
         "  PHB  = Connection traversing PCIe as well as a PCIe Host Bridge (typically the CPU)\n"
         "  PXB  = Connection traversing multiple PCIe bridges (without traversing the PCIe Host "
         "Bridge)\n"
         "  PIX  = Connection traversing at most a single PCIe bridge\n"
         "  NV#  = Connection traversing a bonded set of # NVLinks\n";
}

double bisection_bandwidth_GBps(const Topology& topo) {
  using Traits = boost::adjacency_list_traits<boost::vecS, boost::vecS, boost::directedS>;
  using FlowGraph = boost::adjacency_list<
      boost::vecS, boost::vecS, boost::directedS, boost::no_property,
      boost::property<boost::edge_capacity_t, double,
                      boost::property<boost::edge_residual_capacity_t, double,
                                      boost::property<boost::edge_reverse_t,
                                                      Traits::edge_descriptor>>>>;
  const Graph& g = topo.graph;
  const auto all = gpus(topo);
  if (all.size() < 2) return 0;
  const size_t n = boost::num_vertices(g);
  FlowGraph flow(n + 2);
  const Vertex source = n, sink = n + 1;
  auto capacity = boost::get(boost::edge_capacity, flow);
  auto reverse = boost::get(boost::edge_reverse, flow);
  auto add = [&](Vertex u, Vertex v, double c) {
    auto e = boost::add_edge(u, v, flow).first;
    auto r = boost::add_edge(v, u, flow).first;
    capacity[e] = c;
    capacity[r] = 0;
    reverse[e] = r;
    reverse[r] = e;
  };
  for (Edge e : boost::make_iterator_range(boost::edges(g)))
    add(boost::source(e, g), boost::target(e, g), g[e].bandwidth_GBps);
  // Halves: servers [0, S/2) against the rest; in a single server, GPUs [0, G/2) against the rest.
  const double unlimited = 1e15;
  for (size_t i = 0; i < all.size(); ++i) {
    const Node& gpu = g[all[i]];
    bool first_half = topo.servers >= 2 ? gpu.server < topo.servers / 2 : i < all.size() / 2;
    if (first_half) add(source, all[i], unlimited);
    else add(all[i], sink, unlimited);
  }
  return boost::push_relabel_max_flow(flow, source, sink);
}

}  // namespace basin::topo
