// Clusters: N copies of a server joined by a network fabric, from a compact spec
// ("bigbasin:32", "dgx-h100:16,fabric=fat-tree:2") or a basin.cluster/1 file. The fabric's
// switch-to-switch capacity follows from the NICs' line rate and the oversubscription ratio, so a
// cluster's numbers all trace back to the server model's NICs.
#include <basin/topology.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>

namespace basin::topo {
namespace {

std::vector<std::string> split(std::string_view text, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  while (true) {
    size_t end = text.find(sep, start);
    out.emplace_back(text.substr(start, end == std::string_view::npos ? end : end - start));
    if (end == std::string_view::npos) return out;
    start = end + 1;
  }
}

// `!(value >= min)` and the finiteness check turn away "nan" and "inf", which from_chars reads.
template <typename T>
T parse_number(const std::string& text, const std::string& origin, const std::string& what,
               T min_value, T max_value = std::numeric_limits<T>::max()) {
  T value{};
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || ptr != text.data() + text.size() || !(value >= min_value) ||
      value > max_value || !std::isfinite(static_cast<double>(value)))
    throw InputError(origin, "", what + (max_value == std::numeric_limits<T>::max()
                                              ? " (at least " + std::to_string(min_value)
                                              : " (" + std::to_string(min_value) + " to " +
                                                    std::to_string(max_value)) +
                                     "), got '" + text + "'");
  return value;
}

FabricSpec parse_fabric(const std::string& text, const std::string& origin) {
  auto parts = split(text, ':');
  FabricSpec f;
  const std::string& kind = parts[0];
  if (kind == "switch") f.kind = FabricKind::single_switch;
  else if (kind == "fat-tree") f.kind = FabricKind::fat_tree;
  else if (kind == "rail") f.kind = FabricKind::rail;
  else if (kind == "none") f.kind = FabricKind::none;
  else
    throw InputError(origin, "", "fabric=switch, fat-tree[:RATIO], rail[:RATIO] or none, got '" +
                                     text + "'");
  if (parts.size() > 2 || (parts.size() == 2 && f.kind != FabricKind::fat_tree &&
                           f.kind != FabricKind::rail))
    throw InputError(origin, "", "an oversubscription ratio only after fat-tree or rail, got '" +
                                     text + "'");
  if (parts.size() == 2)
    f.oversubscription =
        parse_number<double>(parts[1], origin, "an oversubscription ratio of 1 or more", 1.0);
  return f;
}

int nics_per_server(const Topology& server) {
  return static_cast<int>(nodes_of_kind(server, NodeKind::nic).size());
}

Vertex add_switch(Topology& t, const std::string& id, const std::string& model, int index) {
  Node n{.id = "fabric/" + id, .kind = NodeKind::net_switch, .model = model};
  n.server = -1;
  n.index = index;
  return add_node(t, std::move(n));
}

void cable(Topology& t, Vertex a, Vertex b, LinkKind kind, double GBps, int count) {
  add_link(t, a, b,
           Link{.kind = kind, .count = count, .bandwidth_GBps = GBps,
                .latency_us = default_latency_us(kind)});
}

// Spine layer above `leaves`, each leaf carrying `down_GBps` towards its servers.
void add_spines(Topology& t, const std::vector<Vertex>& leaves, double down_GBps,
                const FabricSpec& f, LinkKind kind) {
  if (leaves.size() < 2) return;
  std::vector<Vertex> spines;
  for (int s = 0; s < f.spines; ++s) spines.push_back(add_switch(t, "spine" + std::to_string(s),
                                                                 "spine switch", s));
  const double up_per_spine = down_GBps / f.oversubscription / f.spines;
  for (Vertex leaf : leaves)
    for (Vertex spine : spines) cable(t, leaf, spine, kind, up_per_spine, 1);
}

}  // namespace

ClusterSpec parse_cluster_spec(std::string_view spec, const std::string& origin) {
  auto items = split(spec, ',');
  ClusterSpec out;
  auto head = split(items[0], ':');
  if (head[0].empty() || head.size() > 2)
    throw InputError(origin, "", "MODEL[:COUNT][,fabric=...] such as 'bigbasin:32', got '" +
                                     std::string(spec) + "'");
  out.server = head[0];
  bool has_count = head.size() == 2;
  if (has_count) out.count = parse_number<int>(head[1], origin, "a server count", 1, kMaxServers);
  bool has_fabric = false, sharp = false;
  std::vector<std::string> keys;
  for (size_t i = 1; i < items.size(); ++i) {
    auto kv = split(items[i], '=');
    if (kv.size() != 2)
      throw InputError(origin, "", "KEY=VALUE after the model, got '" + items[i] + "'");
    if (std::find(keys.begin(), keys.end(), kv[0]) != keys.end())
      throw InputError(origin, "", "each key once, but " + kv[0] + " comes twice in '" + std::string(spec) + "'");
    keys.push_back(kv[0]);
    if (kv[0] == "fabric") {
      int spines = out.fabric.spines, leaf = out.fabric.leaf_servers;
      out.fabric = parse_fabric(kv[1], origin);
      out.fabric.spines = spines;
      out.fabric.leaf_servers = leaf;
      has_fabric = true;
    } else if (kv[0] == "leaf-servers") {
      out.fabric.leaf_servers = parse_number<int>(kv[1], origin, "leaf-servers", 1);
    } else if (kv[0] == "spines") {
      out.fabric.spines = parse_number<int>(kv[1], origin, "spines", 1);
    } else if (kv[0] == "sharp") {
      if (kv[1] != "on" && kv[1] != "off")
        throw InputError(origin, "", "sharp=on or sharp=off, got '" + items[i] + "'");
      sharp = kv[1] == "on";
    } else {
      throw InputError(origin, "", "a key among fabric, leaf-servers, spines, sharp, got '" + kv[0] + "'");
    }
  }
  out.fabric.sharp = sharp;
  // Keys the fabric has no use for would be dropped silently.
  auto given = [&](const char* key) { return std::find(keys.begin(), keys.end(), key) != keys.end(); };
  if (given("leaf-servers") && out.fabric.kind != FabricKind::fat_tree)
    throw InputError(origin, "", "leaf-servers only with fabric=fat-tree, got '" + std::string(spec) + "'");
  if (given("spines") && out.fabric.kind != FabricKind::fat_tree && out.fabric.kind != FabricKind::rail)
    throw InputError(origin, "", "spines only with fabric=fat-tree or fabric=rail, got '" + std::string(spec) + "'");
  if (sharp && (out.fabric.kind == FabricKind::none || (!has_count && !has_fabric)))
    throw InputError(origin, "", "sharp=on for servers on a fabric of switches that sum, such as '" +
                                     out.server + ":4,sharp=on', got '" + std::string(spec) + "'");
  // A bare model name is the server alone; a count (even 1) puts servers on a fabric.
  if (!has_count && !has_fabric) out.fabric.kind = FabricKind::none;
  return out;
}

std::string to_string(const ClusterSpec& spec) {
  std::string s = spec.server;
  if (spec.fabric.kind == FabricKind::none && spec.count == 1) return s;
  s += ":" + std::to_string(spec.count);
  char ratio[32];
  std::snprintf(ratio, sizeof ratio, "%g", spec.fabric.oversubscription);
  switch (spec.fabric.kind) {
    case FabricKind::none: s += ",fabric=none"; break;
    case FabricKind::single_switch: break;
    case FabricKind::fat_tree: s += std::string(",fabric=fat-tree:") + ratio; break;
    case FabricKind::rail: s += std::string(",fabric=rail:") + ratio; break;
  }
  if (spec.fabric.leaf_servers > 0) s += ",leaf-servers=" + std::to_string(spec.fabric.leaf_servers);
  if (spec.fabric.spines != FabricSpec{}.spines) s += ",spines=" + std::to_string(spec.fabric.spines);
  if (spec.fabric.sharp) s += ",sharp=on";
  return s;
}

namespace {
// A fabric joins servers at their NICs, so each GPU must reach one both ways inside its server;
// checked on the server's own file, so that the error points into it and not into the cluster
// made of its copies. Vertices are numbered in the order of the file's "nodes".
void require_gpus_reach_nics(const Topology& server, const std::string& origin, int count) {
  const std::vector<Vertex> nics = nodes_of_kind(server, NodeKind::nic);
  std::vector<std::vector<double>> from_nic;
  for (Vertex n : nics) from_nic.push_back(widest_from(server, n));
  for (Vertex gpu : gpus(server)) {
    const std::vector<double> from_gpu = widest_from(server, gpu);
    bool reaches = false;
    for (size_t i = 0; i < nics.size() && !reaches; ++i) reaches = from_gpu[nics[i]] > 0 && from_nic[i][gpu] > 0;
    if (!reaches)
      throw InputError(origin, "/nodes/" + std::to_string(gpu),
                       "every GPU to reach a NIC and be reached from it over links, to join " +
                           std::to_string(count) + " servers on a fabric, but " + server.graph[gpu].id +
                           " reaches none both ways");
  }
}
}  // namespace

Topology build_cluster(const Topology& server, int count, const FabricSpec& fabric) {
  // What is wrong with the server is said of its file where it has one.
  const std::string origin = server.source.empty() ? "--cluster" : server.source;
  if (server.servers != 1)
    throw InputError(origin, server.source.empty() ? "" : "/servers",
                     "a server model or a one-server topology to copy, but " + server.name + " describes " +
                         std::to_string(server.servers) + " servers (a cluster cannot nest another)");
  if (const auto switches = nodes_of_kind(server, NodeKind::net_switch); !switches.empty())
    throw InputError(origin, server.source.empty() ? "" : "/nodes/" + std::to_string(switches.front()),
                     "a server model or a one-server topology to copy, but " + server.name +
                         " holds the fabric switch '" + server.graph[switches.front()].id +
                         "' (a cluster cannot nest another: the fabric comes from fabric=...)");
  Topology t;
  t.servers = count;
  const Graph& sg = server.graph;
  std::vector<std::vector<Vertex>> nics(count);  // per server, NIC vertices by NIC index
  for (int s = 0; s < count; ++s) {
    const std::string prefix = "s" + std::to_string(s) + "/";
    std::vector<Vertex> map(boost::num_vertices(sg));
    for (Vertex v : boost::make_iterator_range(boost::vertices(sg))) {
      Node n = sg[v];
      n.id = prefix + n.id;
      n.server = s;
      map[v] = add_node(t, std::move(n));
    }
    for (Edge e : boost::make_iterator_range(boost::edges(sg)))
      add_link(t, map[boost::source(e, sg)], map[boost::target(e, sg)], sg[e], false);
    for (Vertex v : nodes_of_kind(server, NodeKind::nic)) nics[s].push_back(map[v]);
  }
  const int per_server = nics_per_server(server);
  char ratio[32];
  std::snprintf(ratio, sizeof ratio, "%g", fabric.oversubscription);
  if (fabric.kind != FabricKind::none && per_server == 0)
    throw InputError(origin, server.source.empty() ? "" : "/nodes",
                     "a server with at least one NIC (a node of kind nic) to join " + std::to_string(count) +
                         " servers on a fabric, but " + server.name + " has none (fabric=none needs none)");
  if (fabric.kind != FabricKind::none) require_gpus_reach_nics(server, origin, count);
  // A fabric is one network: NICs of two port kinds would hang off one switch of both.
  if (fabric.kind != FabricKind::none) {
    const std::vector<Vertex> own = nodes_of_kind(server, NodeKind::nic);
    const Node& first = server.graph[own.front()];
    for (Vertex n : own)
      if (server.graph[n].port_kind != first.port_kind)
        throw InputError(origin, server.source.empty() ? "" : "/nodes/" + std::to_string(n) + "/port_kind",
                         "NICs of one port kind to join " + std::to_string(count) + " servers on one fabric, but " +
                             server.graph[n].id + " is " + to_string(server.graph[n].port_kind) + " where " +
                             first.id + " is " + to_string(first.port_kind));
  }
  if (fabric.sharp) {
    if (fabric.kind == FabricKind::none)
      throw InputError("--cluster", "", "sharp=on with a fabric whose switches could sum, not fabric=none");
    for (Vertex n : nics[0])
      if (t.graph[n].port_kind != LinkKind::infiniband)
        throw InputError("--cluster", "",
                         "sharp=on only where the NICs are InfiniBand (SHARP sums in InfiniBand switches), but " +
                             t.graph[n].id + " of " + server.name + " is " + to_string(t.graph[n].port_kind));
  }
  switch (fabric.kind) {
    case FabricKind::none:
      t.fabric = "";
      break;
    case FabricKind::single_switch: {
      t.fabric = "switch";
      Vertex sw = add_switch(t, "switch", "non-blocking switch", 0);
      for (auto& server_nics : nics)
        for (Vertex n : server_nics)
          cable(t, n, sw, t.graph[n].port_kind, t.graph[n].port_GBps, 1);
      break;
    }
    case FabricKind::fat_tree: {
      t.fabric = std::string("fat-tree:") + ratio;
      // A leaf has 32 downlink ports unless told otherwise (a Wedge100 / QM8700 class switch).
      const int leaf_servers =
          fabric.leaf_servers > 0 ? fabric.leaf_servers : std::max(1, 32 / per_server);
      const int leaves = (count + leaf_servers - 1) / leaf_servers;
      std::vector<Vertex> leaf;
      for (int l = 0; l < leaves; ++l)
        leaf.push_back(add_switch(t, "leaf" + std::to_string(l), "leaf switch", l));
      for (int s = 0; s < count; ++s)
        for (Vertex n : nics[s])
          cable(t, n, leaf[s / leaf_servers], t.graph[n].port_kind, t.graph[n].port_GBps, 1);
      const Node& nic0 = t.graph[nics[0][0]];
      add_spines(t, leaf, leaf_servers * per_server * nic0.port_GBps, fabric, nic0.port_kind);
      break;
    }
    case FabricKind::rail: {
      t.fabric = std::string("rail:") + ratio;
      // Rail r joins NIC r of every server; spines join the rails.
      std::vector<Vertex> rails;
      for (int r = 0; r < per_server; ++r)
        rails.push_back(add_switch(t, "rail" + std::to_string(r), "rail switch", r));
      for (int s = 0; s < count; ++s)
        for (int r = 0; r < per_server; ++r) {
          Vertex n = nics[s][r];
          cable(t, n, rails[r], t.graph[n].port_kind, t.graph[n].port_GBps, 1);
        }
      const Node& nic0 = t.graph[nics[0][0]];
      add_spines(t, rails, count * nic0.port_GBps, fabric, nic0.port_kind);
      break;
    }
  }
  if (fabric.sharp) {
    t.fabric += ",sharp";
    for (Vertex v : boost::make_iterator_range(boost::vertices(t.graph)))
      if (t.graph[v].kind == NodeKind::net_switch && t.graph[v].server < 0) t.graph[v].sharp = true;
  }
  t.name = server.name + ":" + std::to_string(count) + (t.fabric.empty() ? "" : "," + t.fabric);
  return t;
}

void set_nic_port_rate(Topology& cluster, double port_GBps, const std::string& origin) {
  Graph& g = cluster.graph;
  const std::vector<Vertex> nics = nodes_of_kind(cluster, NodeKind::nic);
  if (nics.empty()) throw InputError(origin, "", "a cluster with NICs to set the rate of, but " + cluster.name + " has none");
  const double old_GBps = g[nics.front()].port_GBps;
  for (Vertex n : nics)
    if (g[n].port_GBps != old_GBps) {
      char rates[96];
      std::snprintf(rates, sizeof rates, "%g and %g GB/s", old_GBps, g[n].port_GBps);
      throw InputError(origin, "",
                       "a cluster whose NICs share one port rate, to scale its fabric by, but " + cluster.name +
                           " has ports of " + rates + " (" + g[nics.front()].id + ", " + g[n].id + ")");
    }
  const double scale = port_GBps / old_GBps;
  for (Vertex n : nics) g[n].port_GBps = port_GBps;
  for (Edge e : boost::make_iterator_range(boost::edges(g)))
    if (g[e].kind == LinkKind::ethernet || g[e].kind == LinkKind::infiniband) g[e].bandwidth_GBps *= scale;
}

Topology build_cluster(const ClusterSpec& spec) {
  const bool file = spec.server.size() > 5 && spec.server.ends_with(".json");
  Topology server = file ? load_topology_file(spec.server) : server_model(spec.server);
  if (file) server.source = spec.server;
  if (spec.fabric.kind == FabricKind::none && spec.count == 1) return server;
  Topology t = build_cluster(server, spec.count, spec.fabric);
  validate(t, to_string(spec));
  return t;
}

}  // namespace basin::topo
