// Text renderings of a topology for people: an lstopo-like tree, the `nvidia-smi topo -m` GPU
// matrix (same codes and legend, so it can be compared with what a real machine prints),
// Graphviz DOT, and a one-paragraph summary. JSON lives in json_io.cc.
#include <basin/topology.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <set>
#include <sstream>

namespace basin::topo {
namespace {

std::string fmt(const char* format, double x) {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, x);
  return buf;
}

std::string describe_link(const Link& l) {
  std::string s;
  switch (l.kind) {
    case LinkKind::nvlink:
      s = "NVLink" + std::to_string(l.generation) + " x" + std::to_string(l.count);
      break;
    case LinkKind::pcie:
      s = "PCIe" + (l.generation ? std::to_string(l.generation) : std::string()) +
          (l.width ? " x" + std::to_string(l.width) : "");
      break;
    case LinkKind::cpu_interconnect: s = "CPU link x" + std::to_string(l.count); break;
    case LinkKind::ethernet: s = "Ethernet"; break;
    case LinkKind::infiniband: s = "InfiniBand"; break;
    case LinkKind::c2c: s = "NVLink-C2C"; break;
  }
  if (l.kind != LinkKind::nvlink && l.kind != LinkKind::cpu_interconnect && l.count > 1)
    s += " x" + std::to_string(l.count);
  return s + " " + fmt("%.4g", l.bandwidth_GBps) + " GB/s";
}

std::string describe_node(const Node& n) {
  std::string s = n.id;
  if (!n.model.empty()) s += "  " + n.model;
  if (!n.name.empty()) s += " (" + n.name + ")";
  if (n.memory_GB > 0) s += ", " + fmt("%g", n.memory_GB) + " GB";
  if (n.cores > 0) s += ", " + std::to_string(n.cores) + " cores";
  if (n.kind == NodeKind::nic) s += ", port " + fmt("%.4g", n.port_GBps) + " GB/s";
  if (!n.pci_bus.empty()) s += " [" + n.pci_bus + "]";
  return s;
}

// Nodes of one server and whether the server looks like server 0 (same kinds and models).
std::string server_signature(const Graph& g, int server) {
  std::string sig;
  for (Vertex v : boost::make_iterator_range(boost::vertices(g)))
    if (g[v].server == server) sig += std::string(to_string(g[v].kind)) + g[v].model + ";";
  return sig;
}

void render_server(const Graph& g, int server, const std::string& indent, std::ostringstream& out) {
  std::set<Vertex> shown;
  std::vector<Vertex> cpus;
  for (Vertex v : boost::make_iterator_range(boost::vertices(g)))
    if (g[v].server == server && g[v].kind == NodeKind::cpu) cpus.push_back(v);
  // Walk the PCIe tree down from each CPU; a node is shown once, under the first CPU reaching it.
  std::function<void(Vertex, int)> walk = [&](Vertex v, int depth) {
    for (Edge e : boost::make_iterator_range(boost::out_edges(v, g))) {
      Vertex w = boost::target(e, g);
      const bool tree = g[e].kind == LinkKind::pcie || g[e].kind == LinkKind::c2c;
      if (!tree || shown.count(w) || g[w].kind == NodeKind::cpu) continue;
      shown.insert(w);
      out << indent << std::string(2 * depth, ' ') << describe_node(g[w]) << "   <- "
          << describe_link(g[e]) << "\n";
      walk(w, depth + 1);
    }
  };
  for (Vertex c : cpus) shown.insert(c);
  for (Vertex c : cpus) {
    out << indent << describe_node(g[c]) << "\n";
    walk(c, 1);
  }
  std::vector<std::string> nvlinks, others;
  std::vector<double> bond_GBps, link_GBps;  // each bond's, and per link of it: the topology's numbers
  for (Edge e : boost::make_iterator_range(boost::edges(g))) {
    Vertex a = boost::source(e, g), b = boost::target(e, g);
    if (g[a].server != server || g[b].server != server || g[a].id > g[b].id) continue;
    if (g[e].kind == LinkKind::nvlink) {
      nvlinks.push_back(g[a].id.substr(g[a].id.rfind('/') + 1) + "-" +
                        g[b].id.substr(g[b].id.rfind('/') + 1) + " x" +
                        std::to_string(g[e].count));
      bond_GBps.push_back(g[e].bandwidth_GBps);
      link_GBps.push_back(g[e].bandwidth_GBps / std::max(1, g[e].count));
    } else if (g[e].kind == LinkKind::cpu_interconnect)
      others.push_back(g[a].id + " <-> " + g[b].id + "  " + describe_link(g[e]));
  }
  for (Vertex v : boost::make_iterator_range(boost::vertices(g)))
    if (g[v].server == server && !shown.count(v)) out << indent << describe_node(g[v]) << "\n";
  for (const auto& s : others) out << indent << s << "\n";
  if (!nvlinks.empty()) {
    // One rate a link when the bonds agree (the usual server); else each bond's own.
    const bool one_rate = std::all_of(link_GBps.begin(), link_GBps.end(), [&](double x) { return x == link_GBps[0]; });
    out << indent << "NVLink " << nvlinks.size() << (nvlinks.size() == 1 ? " bond" : " bonds")
        << (one_rate ? ", " + fmt("%.4g", link_GBps[0]) + " GB/s per link per direction:"
                     : " (GB/s per direction after each):");
    for (size_t i = 0; i < nvlinks.size(); ++i)
      out << (i % 8 == 0 ? "\n" + indent + "  " : "  ") << nvlinks[i]
          << (one_rate ? std::string() : " " + fmt("%.4g", bond_GBps[i]));
    out << "\n";
  }
}

}  // namespace

std::string render_summary(const Topology& topo) {
  const Graph& g = topo.graph;
  std::map<NodeKind, int> count;
  std::set<std::string> gpu_models;
  for (Vertex v : boost::make_iterator_range(boost::vertices(g))) {
    ++count[g[v].kind];
    if (g[v].kind == NodeKind::gpu) gpu_models.insert(g[v].model);
  }
  std::ostringstream out;
  auto counted = [](long long n, const char* one, const char* many) {
    return std::to_string(n) + " " + (n == 1 ? one : many);
  };
  out << (topo.name.empty() ? "topology" : topo.name) << ": " << counted(topo.servers, "server", "servers") << ", "
      << counted(count[NodeKind::gpu], "GPU", "GPUs");
  for (const auto& m : gpu_models) out << " (" << m << ")";
  out << ", " << counted(count[NodeKind::cpu], "CPU", "CPUs") << ", " << counted(count[NodeKind::nic], "NIC", "NICs")
      << ", " << counted(count[NodeKind::pcie_switch], "PCIe switch", "PCIe switches") << ", "
      << counted(count[NodeKind::nvswitch], "NVSwitch crossbar", "NVSwitch crossbars") << ", "
      << counted(count[NodeKind::net_switch], "network switch", "network switches") << ", "
      << counted(static_cast<long long>(num_links(topo)), "directed link", "directed links") << "\n";
  if (!topo.fabric.empty())
    out << "fabric: " << topo.fabric
        << (topo.fabric.starts_with("fat-tree") && count[NodeKind::net_switch] == 1
                ? " (one leaf switch holds every server: no spine, so no oversubscription; a spec's "
                  "leaf-servers=N, a cluster file's fabric.leaf_servers, sets how many a leaf holds)"
                : "")
        << "\n";
  if (count[NodeKind::gpu] >= 2)
    out << "bisection bandwidth: " << fmt("%.4g", bisection_bandwidth_GBps(topo))
        << " GB/s per direction\n";
  return out.str();
}

std::string render_tree(const Topology& topo) {
  const Graph& g = topo.graph;
  std::ostringstream out;
  out << render_summary(topo) << "\n";
  const std::string first = server_signature(g, 0);
  int like_first_from = -1;
  for (int s = 0; s < topo.servers; ++s) {
    bool same = s > 0 && server_signature(g, s) == first;
    if (same) {
      if (like_first_from < 0) like_first_from = s;
      if (s + 1 < topo.servers) continue;
    }
    if (like_first_from >= 0) {
      int last = same ? s : s - 1;
      out << "s" << like_first_from << (last > like_first_from ? "..s" + std::to_string(last) : "")
          << ": like s0\n";
      like_first_from = -1;
      if (same) continue;
    }
    if (topo.servers > 1) out << "s" << s << "\n";
    render_server(g, s, topo.servers > 1 ? "  " : "", out);
  }
  std::vector<Vertex> fabric;
  for (Vertex v : boost::make_iterator_range(boost::vertices(g)))
    if (g[v].server < 0) fabric.push_back(v);
  if (!fabric.empty()) out << "fabric (" << topo.fabric << ")\n";
  for (Vertex v : fabric) {
    std::map<std::string, int> links;
    for (Edge e : boost::make_iterator_range(boost::out_edges(v, g))) {
      const Node& peer = g[boost::target(e, g)];
      ++links[std::string(peer.kind == NodeKind::nic ? "to NICs" : "to " + std::string(to_string(peer.kind))) +
              ": " + describe_link(g[e])];
    }
    out << "  " << describe_node(g[v]) << "\n";
    for (const auto& [what, n] : links) out << "    " << n << " x " << what << "\n";
  }
  return out.str();
}

std::string render_matrix(const Topology& topo, int server) {
  const Graph& g = topo.graph;
  auto gs = nodes_of_kind(topo, NodeKind::gpu, server);
  auto ns = nodes_of_kind(topo, NodeKind::nic, server);
  if (gs.empty() && ns.empty())
    throw InputError("--server", "", "a server with GPUs or NICs, but server " +
                                         std::to_string(server) + " has none");
  std::vector<std::pair<std::string, Vertex>> cols;
  for (size_t i = 0; i < gs.size(); ++i) cols.emplace_back("GPU" + std::to_string(i), gs[i]);
  for (size_t i = 0; i < ns.size(); ++i)
    cols.emplace_back(g[ns[i]].name.empty() ? "NIC" + std::to_string(i) : g[ns[i]].name, ns[i]);
  auto cell = [](const std::string& s) {
    return s.size() >= 8 ? s + " " : s + std::string(8 - s.size(), ' ');
  };
  std::ostringstream out;
  out << cell("");
  for (const auto& [name, v] : cols) out << cell(name);
  out << "NUMA Affinity\n";
  for (const auto& [row, a] : cols) {
    out << cell(row);
    for (const auto& [col, b] : cols) {
      std::string code = path_code(path_class(topo, a, b));
      out << cell(code == "X" ? " X" : code);
    }
    out << (g[a].numa >= 0 ? std::to_string(g[a].numa) : "N/A") << "\n";
  }
  out << "\n" << path_legend();
  return out.str();
}

std::string render_dot(const Topology& topo) {
  const Graph& g = topo.graph;
  std::ostringstream out;
  out << "graph \"" << topo.name << "\" {\n  node [shape=box, fontname=\"Helvetica\"];\n";
  auto color = [](NodeKind k) {
    switch (k) {
      case NodeKind::gpu: return "palegreen";
      case NodeKind::cpu: return "lightblue";
      case NodeKind::nic: return "khaki";
      case NodeKind::nvswitch: return "orange";
      case NodeKind::net_switch: return "lightgray";
      default: return "white";
    }
  };
  std::map<int, std::vector<Vertex>> by_server;
  for (Vertex v : boost::make_iterator_range(boost::vertices(g))) by_server[g[v].server].push_back(v);
  for (const auto& [server, vs] : by_server) {
    bool boxed = server >= 0 && topo.servers > 1;
    if (boxed) out << "  subgraph \"cluster_s" << server << "\" {\n    label=\"s" << server << "\";\n";
    for (Vertex v : vs)
      out << (boxed ? "    " : "  ") << "\"" << g[v].id << "\" [label=\"" << g[v].id
          << (g[v].model.empty() ? "" : "\\n" + g[v].model) << "\", style=filled, fillcolor="
          << color(g[v].kind) << "];\n";
    if (boxed) out << "  }\n";
  }
  // One undirected edge per duplex pair: keep a directed link unless its reverse, with the same
  // bandwidth, comes from a node with a smaller vertex number.
  for (Edge e : boost::make_iterator_range(boost::edges(g))) {
    Vertex a = boost::source(e, g), b = boost::target(e, g);
    bool has_reverse = false;
    for (Edge r : boost::make_iterator_range(boost::out_edges(b, g)))
      if (boost::target(r, g) == a && g[r].bandwidth_GBps == g[e].bandwidth_GBps) has_reverse = true;
    if (has_reverse && a > b) continue;
    out << "  \"" << g[a].id << "\" " << (has_reverse ? "--" : "-- ") << " \"" << g[b].id
        << "\" [label=\"" << describe_link(g[e]) << "\"" << (has_reverse ? "" : ", dir=forward")
        << (g[e].kind == LinkKind::nvlink ? ", color=darkgreen, penwidth=2" : "") << "];\n";
  }
  out << "}\n";
  return out.str();
}

}  // namespace basin::topo
