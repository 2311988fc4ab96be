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
#include <unordered_map>

namespace basin::topo {
namespace {

// Which links may carry a route from `from`: no GPU but the source forwards traffic (a GPU can
// still be reached, only not passed through), and a route between two devices of one server
// never enters the cluster fabric.
struct TransitFilter {
  const Graph* g = nullptr;
  Vertex from = 0;
  bool inside_server = false;
  double min_GBps = 0;  // the second pass keeps only links at least as wide as the route
  bool operator()(Edge e) const {
    const Graph& graph = *g;
    if (graph[e].bandwidth_GBps < min_GBps) return false;
    Vertex v = boost::source(e, graph);
    if (v != from && graph[v].kind == NodeKind::gpu) return false;
    if (inside_server && graph[boost::target(e, graph)].kind == NodeKind::net_switch) return false;
    return true;
  }
};

// PCIe-tree links only, for classifying non-NVLink paths the way nvidia-smi does.
struct PcieOnly {
  const Graph* g = nullptr;
  bool operator()(Edge e) const {
    LinkKind k = (*g)[e].kind;
    return k == LinkKind::pcie || k == LinkKind::cpu_interconnect;
  }
};

// Devices a PCIe path between two GPUs may pass: anything but another GPU.
struct NoOtherGpu {
  const Graph* g = nullptr;
  Vertex a = 0, b = 0;
  bool operator()(Vertex v) const { return v == a || v == b || (*g)[v].kind != NodeKind::gpu; }
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

std::vector<double> widest(const Graph& g, Vertex from, bool inside_server) {
  // Dijkstra with "distance" = bottleneck bandwidth, larger is better.
  boost::filtered_graph<Graph, TransitFilter> transit(g, TransitFilter{&g, from, inside_server, 0});
  std::vector<double> width(boost::num_vertices(g), 0.0);
  boost::dijkstra_shortest_paths(
      transit, from,
      boost::weight_map(boost::get(&Link::bandwidth_GBps, g))
          .distance_map(boost::make_iterator_property_map(width.begin(), boost::get(boost::vertex_index, g)))
          .distance_compare(std::greater<double>())
          .distance_combine([](double a, double b) { return std::min(a, b); })
          .distance_inf(0.0)
          .distance_zero(std::numeric_limits<double>::infinity()));
  return width;
}

LatencyTree least_latency(const Graph& g, Vertex from, bool inside_server, double min_GBps) {
  boost::filtered_graph<Graph, TransitFilter> wide(g, TransitFilter{&g, from, inside_server, min_GBps});
  const size_t n = boost::num_vertices(g);
  auto index = boost::get(boost::vertex_index, g);
  LatencyTree tree{from, std::vector<double>(n, std::numeric_limits<double>::infinity()),
                   std::vector<Edge>(n)};
  boost::dijkstra_shortest_paths(
      wide, from,
      boost::weight_map(boost::get(&Link::latency_us, g))
          .distance_map(boost::make_iterator_property_map(tree.latency_us.begin(), index))
          .visitor(boost::make_dijkstra_visitor(boost::record_edge_predecessors(
              boost::make_iterator_property_map(tree.via.begin(), index), boost::on_edge_relaxed()))));
  return tree;
}

// Widest routes to every destination of one kind (inside the source's server or not), then for
// each distinct width the least-latency routes among links at least that wide.
void fill_routes(const Graph& g, Vertex from, bool inside_server, const std::vector<Vertex>& to,
                 const std::vector<size_t>& which, std::vector<Route>& out) {
  const std::vector<double> width = widest(g, from, inside_server);
  std::vector<double> levels;
  for (size_t i : which)
    if (width[to[i]] > 0) levels.push_back(width[to[i]]);
  std::sort(levels.begin(), levels.end());
  levels.erase(std::unique(levels.begin(), levels.end()), levels.end());
  for (double level : levels) {
    const LatencyTree tree = least_latency(g, from, inside_server, level);
    for (size_t i : which) {
      Vertex dst = to[i];
      if (width[dst] != level || !tree.reaches(dst)) continue;
      out[i] = tree.route_to(g, dst);
      out[i].bandwidth_GBps = level;
    }
  }
}

}  // namespace

bool LatencyTree::reaches(Vertex v) const {
  return v == from || latency_us[v] != std::numeric_limits<double>::infinity();
}

Route LatencyTree::route_to(const Graph& g, Vertex to) const {
  Route r;
  for (Vertex v = to; v != from; v = boost::source(via[v], g)) r.links.push_back(via[v]);
  std::reverse(r.links.begin(), r.links.end());
  r.latency_us = to == from ? 0 : latency_us[to];
  r.reachable = true;
  return r;
}

std::vector<double> widest_from(const Topology& topo, Vertex from) {
  return widest(topo.graph, from, false);
}

LatencyTree least_latency_from(const Topology& topo, Vertex from, double min_GBps) {
  return least_latency(topo.graph, from, false, min_GBps);
}

std::vector<Route> routes_from(const Topology& topo, Vertex from, const std::vector<Vertex>& to) {
  const Graph& g = topo.graph;
  std::vector<Route> out(to.size());
  std::vector<size_t> inside, outside;
  for (size_t i = 0; i < to.size(); ++i) {
    if (to[i] == from) {
      out[i].reachable = true;
      out[i].bandwidth_GBps = std::numeric_limits<double>::infinity();
    } else {
      (same_server(g, from, to[i]) ? inside : outside).push_back(i);
    }
  }
  if (!inside.empty()) fill_routes(g, from, true, to, inside, out);
  if (!outside.empty()) fill_routes(g, from, false, to, outside, out);
  return out;
}

Route route(const Topology& topo, Vertex from, Vertex to) {
  return std::move(routes_from(topo, from, {to}).front());
}

namespace {

template <class Keep>
ServerView view_of(const Topology& topo, const std::string& name, Keep keep) {
  const Graph& g = topo.graph;
  ServerView view;
  view.topo.name = name;
  std::unordered_map<Vertex, Vertex> local;
  for (Vertex v : boost::make_iterator_range(boost::vertices(g))) {
    if (!keep(v)) continue;
    local.emplace(v, add_node(view.topo, g[v]));
    view.to_cluster.push_back(v);
  }
  // Links keep the ids they have in the whole cluster, so routes found here name cluster links.
  for (Vertex v : view.to_cluster)
    for (Edge e : boost::make_iterator_range(boost::out_edges(v, g)))
      if (auto it = local.find(boost::target(e, g)); it != local.end())
        boost::add_edge(local.at(v), it->second, g[e], view.topo.graph);
  return view;
}

bool leaves_server(const Graph& g, Vertex v) {
  for (Edge e : boost::make_iterator_range(boost::out_edges(v, g)))
    if (g[boost::target(e, g)].server != g[v].server) return true;
  return false;
}

}  // namespace

ServerView server_view(const Topology& topo, int server) {
  const Graph& g = topo.graph;
  return view_of(topo, topo.name + " server " + std::to_string(server), [&](Vertex v) {
    return g[v].server == server && g[v].kind != NodeKind::net_switch;
  });
}

std::vector<Vertex> server_boundary(const Topology& topo, int server) {
  const Graph& g = topo.graph;
  std::vector<Vertex> out;
  for (Vertex v : boost::make_iterator_range(boost::vertices(g)))
    if (g[v].server == server && leaves_server(g, v)) out.push_back(v);
  return out;
}

ServerView switch_view(const Topology& topo) {
  const Graph& g = topo.graph;
  return view_of(topo, topo.name + " switches", [&](Vertex v) { return g[v].server < 0; });
}

ServerView fabric_view(const Topology& topo) {
  const Graph& g = topo.graph;
  return view_of(topo, topo.name + " fabric",
                 [&](Vertex v) { return g[v].server < 0 || leaves_server(g, v); });
}

PathInfo path_class(const Topology& topo, Vertex a, Vertex b) {
  const Graph& g = topo.graph;
  if (a == b) return {PathClass::self, 0};
  if (!same_server(g, a, b)) return {PathClass::net, 0};
  if (int links = nvlinks_between(g, a, b); links > 0) return {PathClass::nvlink, links};

  // Fewest-hop path through the PCIe tree and the CPU interconnect.
  boost::filtered_graph<Graph, PcieOnly, NoOtherGpu> pcie(g, PcieOnly{&g}, NoOtherGpu{&g, a, b});
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

std::optional<Vertex> nvlink_sharp_switch(const Topology& topo, const std::vector<Vertex>& gpus) {
  const Graph& g = topo.graph;
  if (gpus.size() < 2) return std::nullopt;
  // A GPU's NVLink of generation 4 or later to an NVSwitch, in the given direction.
  auto sharp_link = [&](Vertex from, Vertex to) {
    for (auto [e, end] = boost::out_edges(from, g); e != end; ++e)
      if (boost::target(*e, g) == to && g[*e].kind == LinkKind::nvlink && g[*e].generation >= 4)
        return true;
    return false;
  };
  for (auto [e, end] = boost::out_edges(gpus.front(), g); e != end; ++e) {
    const Vertex sw = boost::target(*e, g);
    if (g[sw].kind != NodeKind::nvswitch) continue;
    if (std::all_of(gpus.begin(), gpus.end(),
                    [&](Vertex v) { return sharp_link(v, sw) && sharp_link(sw, v); }))
      return sw;
  }
  return std::nullopt;
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
