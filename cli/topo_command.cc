// `basin topo`: show a server, a cluster or this machine as a tree, the GPU matrix, JSON or DOT;
// answer route and bisection queries; dump what was found to a JSON file that loads back.
#include "commands.h"

#include <basin/sim.h>
#include <basin/topology.h>

#include <nlohmann/json.hpp>

#include <cstdio>
#include <iostream>
#include <limits>
#include <optional>
#include <unordered_map>

namespace basin::cli {
namespace {

struct TopoOptions {
  std::string cluster = "bigbasin:32";
  bool discover = false;
  std::string hwloc_xml;
  bool no_nvml = false;
  std::string format = "tree";
  int server = 0;
  std::string dump;
  std::vector<std::string> route;
  bool bisection = false;
  bool list_models = false;
};

// The route the simulator's engine takes from a to b: the widest and, among those, the fastest,
// and among equals the one through each GPU's own NIC (sim::Network::own_nic), so what this
// prints is what `basin sim` and `basin select` route. Its bandwidth is the line rate (the
// hardware's); describe_route and route_json add the rate the engine times it at.
topo::Route engine_route(const topo::Topology& t, topo::Vertex a, topo::Vertex b) {
  // The engine routes between devices of servers; a fabric switch as an end is the graph's own.
  if (t.graph[a].server < 0 || t.graph[b].server < 0) return topo::route(t, a, b);
  topo::Route r;
  if (a == b) {
    r.reachable = true;
    r.bandwidth_GBps = std::numeric_limits<double>::infinity();
    return r;
  }
  sim::Network net(t);  // routed as the engine times it (NVLinks at their achievable rate)
  const sim::Network::RouteInfo* info = nullptr;
  try {
    info = &net.route(a, b);
  } catch (const topo::InputError&) {
    return r;  // unreachable
  }
  std::unordered_map<int, topo::Edge> by_id;
  for (auto [e, end] = boost::edges(t.graph); e != end; ++e) by_id.emplace(t.graph[*e].id, *e);
  for (int id : info->links) r.links.push_back(by_id.at(id));
  r.latency_us = info->latency_s * 1e6;
  r.reachable = info->bandwidth_GBps > 0;
  r.bandwidth_GBps = r.reachable ? std::numeric_limits<double>::infinity() : 0;
  for (topo::Edge e : r.links) r.bandwidth_GBps = std::min(r.bandwidth_GBps, t.graph[e].bandwidth_GBps);
  return r;
}

// The rate the engine moves data over a route at: its narrowest link at its achievable rate.
double timed_GBps(const topo::Topology& t, const topo::Route& r) {
  double GBps = std::numeric_limits<double>::infinity();
  for (topo::Edge e : r.links) GBps = std::min(GBps, t.graph[e].bandwidth_GBps * sim::achievable_share(t.graph[e]));
  return GBps;
}

std::string describe_route(const topo::Topology& t, const topo::Route& r, topo::Vertex a,
                           topo::Vertex b) {
  const auto& g = t.graph;
  std::string out = g[a].id + " -> " + g[b].id + ": ";
  if (!r.reachable) return out + "unreachable\n";
  char line[200];
  std::snprintf(line, sizeof line, "%.4g GB/s bottleneck (timed at %.4g), %.3g us, %zu hop(s), class %s\n",
                r.bandwidth_GBps, timed_GBps(t, r), r.latency_us, r.links.size(),
                topo::path_code(topo::path_class(t, a, b)).c_str());
  out += line;
  for (const auto& e : r.links) {
    const topo::Link& l = g[e];
    std::snprintf(line, sizeof line, "  %-18s -> %-18s %-16s %8.4g GB/s (timed at %.4g) %6.3g us\n",
                  g[boost::source(e, g)].id.c_str(), g[boost::target(e, g)].id.c_str(),
                  topo::to_string(l.kind), l.bandwidth_GBps, l.bandwidth_GBps * sim::achievable_share(l),
                  l.latency_us);
    out += line;
  }
  return out;
}

nlohmann::json route_json(const topo::Topology& t, const topo::Route& r, topo::Vertex a, topo::Vertex b) {
  const auto& g = t.graph;
  nlohmann::json out{{"from", g[a].id}, {"to", g[b].id}, {"reachable", r.reachable}};
  if (!r.reachable) return out;
  if (!r.links.empty()) {  // a node to itself has no links and no bandwidth to speak of
    out["bandwidth_GBps"] = r.bandwidth_GBps;
    out["timed_GBps"] = timed_GBps(t, r);
  }
  out["latency_us"] = r.latency_us;
  out["class"] = topo::path_code(topo::path_class(t, a, b));
  nlohmann::json links = nlohmann::json::array();
  for (const auto& e : r.links) {
    const topo::Link& l = g[e];
    links.push_back({{"from", g[boost::source(e, g)].id},
                     {"to", g[boost::target(e, g)].id},
                     {"kind", topo::to_string(l.kind)},
                     {"bandwidth_GBps", l.bandwidth_GBps},
                     {"timed_GBps", l.bandwidth_GBps * sim::achievable_share(l)},
                     {"latency_us", l.latency_us}});
  }
  out["links"] = std::move(links);
  return out;
}

topo::Vertex require_node(const topo::Topology& t, const std::string& id) {
  if (auto v = topo::find_node(t, id)) return *v;
  // Examples from this topology: a server's own ids are bare (gpu0), a cluster's carry the
  // server (s0/gpu0).
  const auto gpus = topo::gpus(t);
  const std::string like = gpus.empty() ? "" : " (like " + t.graph[gpus.front()].id + " or " + t.graph[gpus.back()].id + ")";
  throw topo::InputError("--route", "", "a node id of this topology" + like + ", but \"" + id + "\" is not one");
}

int run(const TopoOptions& o, const CLI::App& cmd) {
  if (o.list_models) {
    for (const auto& name : topo::server_model_names())
      std::printf("%-12s %s\n", name.c_str(), topo::server_model_description(name).c_str());
    return 0;
  }
  topo::Topology t;
  if (o.discover || !o.hwloc_xml.empty()) {
    if (cmd.count("--cluster"))
      throw topo::InputError("--cluster", "", "either --cluster or --discover/--hwloc-xml, not both");
    topo::DiscoverReport found = topo::discover({.hwloc_xml = o.hwloc_xml, .use_nvml = !o.no_nvml});
    for (const auto& n : found.notes) std::cerr << "basin topo: " << n << "\n";
    t = std::move(found.topo);
  } else {
    t = topo::load_any(o.cluster);
  }
  // Every flag is checked before --dump writes, so that bad input leaves no file behind.
  const bool query = o.route.size() == 2 || o.bisection;
  if (o.route.size() == 2 && o.bisection)
    throw topo::InputError("--bisection", "", "--route or --bisection, one query at a time, not both");
  if (query && cmd.count("--format") && o.format != "json")
    throw topo::InputError("--format", "", std::string("json or no --format with ") +
                                               (o.bisection ? "--bisection" : "--route") +
                                               " (a query prints its answer), got " + o.format);
  std::optional<std::pair<topo::Vertex, topo::Vertex>> ends;
  if (o.route.size() == 2) ends = std::pair{require_node(t, o.route[0]), require_node(t, o.route[1])};
  if (ends && ends->first == ends->second)
    throw topo::InputError("--route", "", "two different devices, got " + o.route[0] + " twice");
  if (o.server < 0 || o.server >= t.servers)
    throw topo::InputError("--server", "", "a server index in [0, " + std::to_string(t.servers) +
                                               "), but got " + std::to_string(o.server));
  if (!o.dump.empty()) {
    topo::save_topology_file(t, o.dump);
    std::cerr << "basin topo: wrote " << o.dump << "\n";
  }
  if (ends) {
    auto [a, b] = *ends;
    const topo::Route r = engine_route(t, a, b);
    if (o.format == "json") std::cout << route_json(t, r, a, b).dump(2) << "\n";
    else std::cout << describe_route(t, r, a, b);
    return 0;
  }
  if (o.bisection) {
    const double GBps = topo::bisection_bandwidth_GBps(t);
    if (o.format == "json")
      std::cout << nlohmann::json{{"topology", t.name}, {"bisection_GBps_per_direction", GBps}}.dump(2) << "\n";
    else
      std::printf("bisection bandwidth of %s: %.6g GB/s per direction\n", t.name.c_str(), GBps);
    return 0;
  }
  if (o.format == "tree") std::cout << topo::render_tree(t);
  else if (o.format == "matrix") std::cout << topo::render_matrix(t, o.server);
  else if (o.format == "json") std::cout << topo::to_json(t).dump(2) << "\n";
  else if (o.format == "dot") std::cout << topo::render_dot(t);
  else if (o.format == "summary") std::cout << topo::render_summary(t);
  return 0;
}

}  // namespace

std::function<int()> add_topo_command(CLI::App& app) {
  auto options = std::make_shared<TopoOptions>();
  CLI::App* cmd = app.add_subcommand("topo", "Show the topology of a server, a cluster or this machine");
  cmd->add_option("--cluster", options->cluster,
                  "Built-in spec MODEL[:COUNT][,fabric=switch|fat-tree[:R]|rail[:R]|none]"
                  "[,leaf-servers=N][,spines=N][,sharp=on|off], or a basin.topology/1 or basin.cluster/1 JSON file")
      ->capture_default_str();
  cmd->add_flag("--discover", options->discover, "Discover this machine (hwloc, NVML if present)");
  cmd->add_option("--hwloc-xml", options->hwloc_xml,
                  "Discover from an hwloc XML export (lstopo file.xml) instead of this machine");
  cmd->add_flag("--no-nvml", options->no_nvml, "Do not load NVML during discovery");
  cmd->add_option("--format", options->format,
                  "Output: tree, matrix, json, dot or summary; with --route or --bisection, json or left out (text)")
      ->check(CLI::IsMember({"tree", "matrix", "json", "dot", "summary"}))
      ->capture_default_str();
  cmd->add_option("--server", options->server, "Server whose GPU matrix --format matrix prints")
      ->capture_default_str();
  cmd->add_option("--dump", options->dump, "Also write the topology to this JSON file");
  cmd->add_option("--route", options->route,
                  "Print the route the simulator takes between two nodes, A B: each link's line rate and the "
                  "rate it is timed at")
      ->expected(2);
  cmd->add_flag("--bisection", options->bisection, "Print the bisection bandwidth");
  cmd->add_flag("--list-models", options->list_models, "List the built-in server models");
  return [options, cmd] { return run(*options, *cmd); };
}

}  // namespace basin::cli
