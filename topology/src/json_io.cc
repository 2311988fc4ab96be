// The basin.topology/1 and basin.cluster/1 JSON formats (docs/topology-format.md): a strict
// reader whose every error names the file, the JSON pointer of the field and what was expected,
// and a writer whose output loads back to the same graph. Files are read and written by
// file_io.cc.
#include <basin/topology.h>

#include "link_rules.h"

#include <algorithm>
#include <filesystem>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

namespace basin::topo {
namespace {

using nlohmann::json;

// Reads fields of one JSON object, remembering where it is, so that errors point at the field.
struct ObjectReader {
  const json& obj;
  std::string path;
  const std::string& origin;

  ObjectReader(const json& j, std::string p, const std::string& o, std::set<std::string> allowed)
      : obj(j), path(std::move(p)), origin(o) {
    if (!obj.is_object()) fail("", "an object, got " + std::string(obj.type_name()));
    require_known_fields(obj, {allowed.begin(), allowed.end()}, origin, path);
  }
  [[noreturn]] void fail(const std::string& field, const std::string& expected) const {
    throw InputError(origin, path + field, expected);
  }
  bool has(const char* key) const { return obj.contains(key); }
  const json& at(const char* key) const {
    if (!obj.contains(key)) fail(std::string("/") + key, std::string("a required field '") + key + "'");
    return obj.at(key);
  }
  std::string str(const char* key, bool required = true, std::string fallback = "") const {
    if (!required && !has(key)) return fallback;
    const json& v = at(key);
    if (!v.is_string()) fail(std::string("/") + key, "a string, got " + v.dump());
    return v.get<std::string>();
  }
  double number(const char* key, bool required, double fallback, double min, bool strict) const {
    if (!required && !has(key)) return fallback;
    const json& v = at(key);
    if (!v.is_number()) fail(std::string("/") + key, "a number, got " + v.dump());
    double x = v.get<double>();
    if (strict ? !(x > min) : !(x >= min))
      fail(std::string("/") + key, std::string("a number ") + (strict ? "above " : "of at least ") +
                                       json(min).dump() + ", got " + v.dump());
    return x;
  }
  // Bounded above too: get<int>() of a larger number wraps, and 1e10 servers is no cluster.
  int integer(const char* key, bool required, int fallback, int min,
              int max = std::numeric_limits<int>::max()) const {
    if (!required && !has(key)) return fallback;
    const json& v = at(key);
    // get<long long>() of an unsigned above LLONG_MAX is negative, so `< min` catches it.
    if (!v.is_number_integer() || v.get<long long>() < min || v.get<long long>() > max)
      fail(std::string("/") + key,
           "an integer " + (max == std::numeric_limits<int>::max()
                                ? "of at least " + std::to_string(min)
                                : "from " + std::to_string(min) + " to " + std::to_string(max)) +
               ", got " + v.dump());
    return v.get<int>();
  }
  bool boolean(const char* key, bool fallback) const {
    if (!has(key)) return fallback;
    const json& v = at(key);
    if (!v.is_boolean()) fail(std::string("/") + key, "true or false, got " + v.dump());
    return v.get<bool>();
  }
};

std::string kinds_list(bool nodes) {
  std::string out;
  if (nodes) {
    for (NodeKind k : all_node_kinds()) out += std::string(out.empty() ? "" : ", ") + to_string(k);
  } else {
    for (LinkKind k : all_link_kinds()) out += std::string(out.empty() ? "" : ", ") + to_string(k);
  }
  return out;
}

LinkKind read_link_kind(const ObjectReader& r, const char* key) {
  std::string text = r.str(key);
  auto kind = link_kind_from_string(text);
  if (!kind) r.fail(std::string("/") + key, "a link kind among " + kinds_list(false) + ", got '" + text + "'");
  return *kind;
}

json node_to_json(const Node& n) {
  json j = {{"id", n.id}, {"kind", to_string(n.kind)}};
  if (!n.model.empty()) j["model"] = n.model;
  if (!n.name.empty()) j["name"] = n.name;
  j["server"] = n.server;
  j["index"] = n.index;
  if (n.numa >= 0) j["numa"] = n.numa;
  if (n.memory_GB > 0) j["memory_GB"] = n.memory_GB;
  if (n.cores > 0) j["cores"] = n.cores;
  if (!n.pci_bus.empty()) j["pci_bus"] = n.pci_bus;
  if (n.kind == NodeKind::nic) {
    j["port_GBps"] = n.port_GBps;
    j["port_kind"] = to_string(n.port_kind);
  }
  if (n.sharp) j["sharp"] = true;
  return j;
}

Node node_from_json(const json& j, const std::string& path, const std::string& origin) {
  ObjectReader r(j, path, origin,
                 {"id", "kind", "model", "name", "server", "index", "numa", "memory_GB", "cores",
                  "pci_bus", "port_GBps", "port_kind", "sharp"});
  Node n;
  n.id = r.str("id");
  if (n.id.empty()) r.fail("/id", "a non-empty id");
  std::string kind = r.str("kind");
  auto k = node_kind_from_string(kind);
  if (!k) r.fail("/kind", "a node kind among " + kinds_list(true) + ", got '" + kind + "'");
  n.kind = *k;
  n.model = r.str("model", false);
  n.name = r.str("name", false);
  n.server = r.integer("server", false, 0, -1);
  n.index = r.integer("index", false, 0, 0);
  n.numa = r.integer("numa", false, -1, -1);
  n.memory_GB = r.number("memory_GB", false, 0, 0, true);  // absent when unknown, never 0
  if (r.has("memory_GB") && n.kind != NodeKind::gpu) r.fail("/memory_GB", "memory_GB only on nodes of kind gpu");
  // Absent when unknown (the input pipeline is then left out of a prediction, and said so);
  // 0 would read as that silently.
  n.cores = r.integer("cores", false, 0, 1);
  if (r.has("cores") && n.kind != NodeKind::cpu) r.fail("/cores", "cores only on nodes of kind cpu");
  n.pci_bus = r.str("pci_bus", false);
  if (n.kind == NodeKind::nic) {
    n.port_GBps = r.number("port_GBps", true, 0, 0, true);
    const std::string port = r.str("port_kind");
    const auto cable = link_kind_from_string(port);
    if (!cable || (*cable != LinkKind::ethernet && *cable != LinkKind::infiniband))
      r.fail("/port_kind", "ethernet or infiniband (the cable a fabric attaches), got '" + port + "'");
    n.port_kind = *cable;
  } else if (r.has("port_GBps") || r.has("port_kind")) {
    r.fail(r.has("port_GBps") ? "/port_GBps" : "/port_kind", "port_GBps and port_kind only on nodes of kind nic");
  }
  n.sharp = r.boolean("sharp", false);
  if (n.sharp && n.kind != NodeKind::net_switch)
    r.fail("/sharp", "sharp only on nodes of kind net_switch (a switch that sums in the network)");
  return n;
}

json link_to_json(const Graph& g, Edge e, bool duplex) {
  const Link& l = g[e];
  json j = {{"from", g[boost::source(e, g)].id}, {"to", g[boost::target(e, g)].id},
            {"kind", to_string(l.kind)}};
  if (l.generation) j["generation"] = l.generation;
  if (l.width) j["width"] = l.width;
  if (l.count != 1) j["count"] = l.count;
  j["bandwidth_GBps"] = l.bandwidth_GBps;
  j["latency_us"] = l.latency_us;
  if (!duplex) j["duplex"] = false;
  return j;
}

bool same_numbers(const Link& a, const Link& b) {
  return a.kind == b.kind && a.generation == b.generation && a.width == b.width &&
         a.count == b.count && a.bandwidth_GBps == b.bandwidth_GBps && a.latency_us == b.latency_us;
}

json parse_file(const std::string& path) {
  const std::string text = read_text_file(path, "a readable basin.topology/1 or basin.cluster/1 file");
  try {
    return json::parse(text);
  } catch (const json::parse_error& e) {
    throw InputError(path, "", std::string("well-formed JSON: ") + e.what());
  }
}

Topology cluster_from_json(const json& doc, const std::string& origin) {
  ObjectReader r(doc, "", origin, {"format", "name", "server", "count", "fabric"});
  ClusterSpec spec;
  spec.count = r.integer("count", true, 1, 1, kMaxServers);
  Topology server;
  const json& s = r.at("server");
  if (s.is_string()) {
    std::string name = s.get<std::string>();
    if (name.ends_with(".json")) {
      std::filesystem::path p(name);
      if (p.is_relative()) p = std::filesystem::path(origin).parent_path() / p;
      server = load_topology_file(p.string());
      server.source = p.string();
    } else {
      try {
        server = server_model(name);
      } catch (const InputError& e) {
        throw InputError(origin, "/server", e.expected);
      }
    }
  } else {
    server = from_json(s, origin + " (/server)");
    server.source = origin + " (/server)";
  }
  if (r.has("fabric")) {
    ObjectReader f(r.at("fabric"), "/fabric", origin,
                   {"kind", "oversubscription", "leaf_servers", "spines", "sharp"});
    std::string kind = f.str("kind");
    if (kind == "switch") spec.fabric.kind = FabricKind::single_switch;
    else if (kind == "fat-tree") spec.fabric.kind = FabricKind::fat_tree;
    else if (kind == "rail") spec.fabric.kind = FabricKind::rail;
    else if (kind == "none") spec.fabric.kind = FabricKind::none;
    else f.fail("/kind", "switch, fat-tree, rail or none, got '" + kind + "'");
    spec.fabric.oversubscription = f.number("oversubscription", false, 1, 1, false);
    spec.fabric.leaf_servers = f.integer("leaf_servers", false, 0, 1);
    spec.fabric.spines = f.integer("spines", false, 2, 1);
    spec.fabric.sharp = f.boolean("sharp", false);
    // Fields the fabric has no use for would be dropped silently.
    if (spec.fabric.kind != FabricKind::fat_tree && f.has("leaf_servers"))
      f.fail("/leaf_servers", "leaf_servers only with kind fat-tree, got kind " + kind);
    if (spec.fabric.kind != FabricKind::fat_tree && spec.fabric.kind != FabricKind::rail &&
        (f.has("oversubscription") || f.has("spines")))
      f.fail(f.has("spines") ? "/spines" : "/oversubscription",
             "oversubscription and spines only with kind fat-tree or rail, got kind " + kind);
  }
  Topology t;
  try {
    t = build_cluster(server, spec.count, spec.fabric);
  } catch (const InputError& e) {
    // What is wrong with the server file is said of it; what the fabric asks, of this file's /fabric.
    if (!server.source.empty() && e.origin == server.source) throw;
    throw InputError(origin, e.path.empty() ? "/fabric" : e.path, e.expected);
  }
  if (r.has("name")) t.name = r.str("name");
  validate(t, origin);
  return t;
}

}  // namespace

nlohmann::json to_json(const Topology& topo) {
  const Graph& g = topo.graph;
  json nodes = json::array();
  for (Vertex v : boost::make_iterator_range(boost::vertices(g))) nodes.push_back(node_to_json(g[v]));
  // Links in id order; a link and its reverse with the same numbers become one duplex entry.
  std::vector<Edge> by_id(boost::num_edges(g));
  for (Edge e : boost::make_iterator_range(boost::edges(g))) by_id.at(g[e].id) = e;
  json links = json::array();
  for (size_t i = 0; i < by_id.size(); ++i) {
    Edge e = by_id[i];
    bool duplex = false;
    if (i + 1 < by_id.size()) {
      Edge r = by_id[i + 1];
      duplex = boost::source(r, g) == boost::target(e, g) &&
               boost::target(r, g) == boost::source(e, g) && same_numbers(g[e], g[r]);
    }
    links.push_back(link_to_json(g, e, duplex));
    if (duplex) ++i;
  }
  return json{{"format", kTopologyFormat}, {"name", topo.name}, {"servers", topo.servers},
              {"fabric", topo.fabric},     {"nodes", nodes},    {"links", links}};
}

Topology from_json(const nlohmann::json& doc, const std::string& origin) {
  if (!doc.is_object()) throw InputError(origin, "", "a JSON object at the top");
  if (!doc.contains("format"))
    throw InputError(origin, "/format", std::string("a field 'format' of \"") + kTopologyFormat +
                                            "\" or \"" + kClusterFormat + "\"");
  const json& format = doc.at("format");
  if (format == kClusterFormat) return cluster_from_json(doc, origin);
  if (format != kTopologyFormat)
    throw InputError(origin, "/format", std::string("\"") + kTopologyFormat + "\" or \"" +
                                            kClusterFormat + "\", got " + format.dump());
  ObjectReader r(doc, "", origin, {"format", "name", "servers", "fabric", "nodes", "links"});
  Topology t;
  t.name = r.str("name", false);
  t.servers = r.integer("servers", false, 1, 1);
  t.fabric = r.str("fabric", false);
  const json& nodes = r.at("nodes");
  if (!nodes.is_array() || nodes.empty()) r.fail("/nodes", "a non-empty array of nodes");
  std::map<std::pair<int, int>, std::string> gpu_at;  // (server, index) stated -> the node's id
  for (size_t i = 0; i < nodes.size(); ++i) {
    std::string path = "/nodes/" + std::to_string(i);
    Node n = node_from_json(nodes[i], path, origin);
    if (t.by_id.count(n.id))
      throw InputError(origin, path + "/id", "a unique node id, got '" + n.id + "' again");
    // A GPU's index is its rank order in its server: two GPUs stating one are a typo. (Left out,
    // GPUs take their place in the file.)
    if (n.kind == NodeKind::gpu && nodes[i].contains("index")) {
      auto [it, fresh] = gpu_at.emplace(std::pair(n.server, n.index), n.id);
      if (!fresh)
        throw InputError(origin, path + "/index",
                         "an index no other GPU of server " + std::to_string(n.server) + " has, got " +
                             std::to_string(n.index) + ", which '" + it->second + "' has");
    }
    add_node(t, std::move(n));
  }
  std::map<std::pair<Vertex, Vertex>, size_t> linked;  // directed pair -> its first entry
  const json& links = r.at("links");
  if (!links.is_array()) r.fail("/links", "an array of links");
  for (size_t i = 0; i < links.size(); ++i) {
    ObjectReader l(links[i], "/links/" + std::to_string(i), origin,
                   {"from", "to", "kind", "generation", "width", "count", "bandwidth_GBps",
                    "latency_us", "duplex"});
    auto endpoint = [&](const char* key) {
      std::string id = l.str(key);
      auto v = find_node(t, id);
      if (!v) l.fail(std::string("/") + key, "the id of a node listed in /nodes, got '" + id + "'");
      return *v;
    };
    Vertex a = endpoint("from"), b = endpoint("to");
    if (a == b) l.fail("/to", "a node other than 'from'");
    Link link;
    link.kind = read_link_kind(l, "kind");
    // Generations the link tables know (link_specs.cc): NVLink 1 to 5, PCIe 1 to 6; 0 is
    // "unknown", as discovery writes it for a GPU it has no name for. Others have none.
    const int newest = link.kind == LinkKind::nvlink ? 5 : link.kind == LinkKind::pcie ? 6 : 0;
    if (newest == 0 && l.has("generation") && l.at("generation") != 0)
      l.fail("/generation", std::string("no generation on a link of kind ") + to_string(link.kind) +
                                " (nvlink and pcie links have one), got " + l.at("generation").dump());
    link.generation = l.integer("generation", false, 0, 0, newest);
    link.width = l.integer("width", false, 0, 0);
    link.count = l.integer("count", false, 1, 1);
    link.bandwidth_GBps = l.number("bandwidth_GBps", true, 0, 0, true);
    link.latency_us = l.number("latency_us", true, 0, 0, false);
    const bool duplex = l.boolean("duplex", true);
    // (A node on a server the file does not describe is said of the node, by validate below.)
    auto described = [&](Vertex v) { return t.graph[v].server >= -1 && t.graph[v].server < t.servers; };
    if (described(a) && described(b))
      if (const auto fault = link_end_fault(link.kind, t.graph[a], t.graph[b])) l.fail("/kind", *fault);
    // A network cable carries no more than the NIC's port at either end sends or takes (times
    // `count`, parallel cables from as many ports).
    if (link.kind == LinkKind::ethernet || link.kind == LinkKind::infiniband)
      for (Vertex end : {a, b})
        if (const Node& nic = t.graph[end];
            nic.kind == NodeKind::nic && link.bandwidth_GBps > nic.port_GBps * link.count)
          l.fail("/bandwidth_GBps", "at most the port_GBps of '" + nic.id + "' (" + json(nic.port_GBps).dump() +
                                        (link.count > 1 ? " x count " + std::to_string(link.count) : "") +
                                        "), which the " + to_string(link.kind) + " cable attaches to, got " +
                                        json(link.bandwidth_GBps).dump());
    // One entry per pair and direction: a second would be routed past, not added to (an NVLink
    // bond is one entry with its count and total bandwidth).
    for (auto pair : {std::pair(a, b), std::pair(b, a)}) {
      if (pair.first == b && !duplex) break;
      if (auto [it, fresh] = linked.emplace(pair, i); !fresh)
        l.fail("", "one link from '" + t.graph[pair.first].id + "' to '" + t.graph[pair.second].id +
                       "', which /links/" + std::to_string(it->second) +
                       " already is (a bond of several is one entry with its count and total bandwidth_GBps)");
    }
    add_link(t, a, b, link, duplex);
  }
  if (const auto fault = mixed_network_switch(t))
    throw InputError(origin, "/nodes/" + std::to_string(fault->node), fault->expected);
  validate(t, origin);
  return t;
}

Topology load_topology_file(const std::string& path) {
  // A cluster file names its server's file, which may be a cluster file in turn: a file that
  // names itself, directly or through others, would recurse until the stack overflows.
  thread_local std::vector<std::filesystem::path> loading;
  std::error_code ec;
  std::filesystem::path key = std::filesystem::weakly_canonical(path, ec);
  if (ec) key = std::filesystem::absolute(path).lexically_normal();
  if (std::find(loading.begin(), loading.end(), key) != loading.end()) {
    std::string chain;
    for (const auto& p : loading) chain += p.string() + " -> ";
    throw InputError(path, "/server", "a server that does not include this file again, but the "
                                      "files include each other: " + chain + key.string());
  }
  loading.push_back(key);
  struct Pop {
    std::vector<std::filesystem::path>& v;
    ~Pop() { v.pop_back(); }
  } pop{loading};
  return from_json(parse_file(path), path);
}


void save_topology_file(const Topology& topo, const std::string& path) {
  write_file_atomically(path, to_json(topo).dump(2) + "\n");
}

Topology load_any(const std::string& spec_or_file) {
  Topology t = spec_or_file.ends_with(".json") ? load_topology_file(spec_or_file)
                                               : build_cluster(parse_cluster_spec(spec_or_file));
  t.source = spec_or_file;
  // A file without a name is called by its file name in what basin prints ("box", not "").
  if (t.name.empty()) t.name = std::filesystem::path(spec_or_file).stem().string();
  return t;
}

void require_known_fields(const json& obj, const std::vector<std::string>& known,
                          const std::string& origin, const std::string& path) {
  if (!obj.is_object()) return;
  for (const auto& [key, value] : obj.items()) {
    if (std::find(known.begin(), known.end(), key) != known.end()) continue;
    std::string list;
    for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
    throw InputError(origin, path + "/" + key, "no field '" + key + "' here (known fields: " + list + ")");
  }
}

}  // namespace basin::topo
