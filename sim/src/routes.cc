// Routes for the network engine, found in pieces so that routing a cluster costs time linear in
// its size. A route inside a server is searched on that server's own small graph. A route between
// servers is composed: source to one of its server's boundary devices (its NICs), across the
// fabric (switches and boundary devices only), and from a boundary device of the destination's
// server to the destination, taking the widest combination and, among the widest, the one of
// least latency. Searching the whole cluster graph for every pair instead made routing 4,096
// GPUs take seconds. What this gives up: a route that enters a third server and leaves it again
// (a server used as a router), which topo::route would allow and no real fabric does; tests
// check the composed routes against topo::route on the built-in clusters.
#include <basin/sim.h>

#include <algorithm>
#include <limits>

namespace basin::sim {

Network::View& Network::server(int index) {
  if (auto it = views_.find(index); it != views_.end()) return it->second;
  View v{topo::server_view(*topo_, index), topo::server_boundary(*topo_, index),
         topo::nodes_of_kind(*topo_, topo::NodeKind::gpu, index)};
  in_view_.resize(boost::num_vertices(topo_->graph));
  for (size_t i = 0; i < v.view.to_cluster.size(); ++i) in_view_[v.view.to_cluster[i]] = i;
  return views_.emplace(index, std::move(v)).first->second;
}

bool Network::own_nic(const View& v, topo::Vertex gpu, topo::Vertex nic) const {
  const auto& g = topo_->graph;
  if (g[gpu].kind != topo::NodeKind::gpu || g[nic].kind != topo::NodeKind::nic) return false;
  // Positions, not indices: a server may number its NICs with gaps, and a hand-written file may
  // leave its GPUs' indices out (all 0), which would send every GPU to the first NIC.
  const auto at = std::find(v.boundary.begin(), v.boundary.end(), nic);
  const auto rank = std::find(v.gpus.begin(), v.gpus.end(), gpu);
  if (at == v.boundary.end() || rank == v.gpus.end()) return false;
  return (at - v.boundary.begin()) ==
         (rank - v.gpus.begin()) * static_cast<long>(v.boundary.size()) / static_cast<long>(v.gpus.size());
}

Network::View& Network::fabric() {
  if (auto it = views_.find(-1); it != views_.end()) return it->second;
  View v{topo::fabric_view(*topo_), {}};
  in_fabric_.resize(boost::num_vertices(topo_->graph));
  for (size_t i = 0; i < v.view.to_cluster.size(); ++i) in_fabric_[v.view.to_cluster[i]] = i;
  return views_.emplace(-1, std::move(v)).first->second;
}

void Network::store(topo::Vertex a, topo::Vertex b, const topo::Graph& graph,
                    const topo::Route& r) {
  // An unreachable piece is kept (width 0): another boundary device may still connect.
  RouteInfo info;
  for (topo::Edge e : r.links) info.links.push_back(graph[e].id);
  info.latency_s = r.latency_us * 1e-6;
  info.bandwidth_GBps = r.bandwidth_GBps;
  routes_.emplace(key(a, b), std::move(info));
}

void Network::find_in_view(View& v, topo::Vertex a, const std::vector<topo::Vertex>& to) {
  const bool is_fabric = &v == &fabric();
  const std::vector<topo::Vertex>& local = is_fabric ? in_fabric_ : in_view_;
  std::vector<topo::Vertex> missing, targets;
  for (topo::Vertex b : to)
    if (!routes_.count(key(a, b)) &&
        std::find(missing.begin(), missing.end(), b) == missing.end()) {
      missing.push_back(b);
      targets.push_back(local[b]);
    }
  if (missing.empty()) return;
  auto found = topo::routes_from(v.view.topo, local[a], targets);
  for (size_t i = 0; i < missing.size(); ++i) store(a, missing[i], v.view.topo.graph, found[i]);
}

Network::Switches& Network::switches() {
  if (switches_) return *switches_;
  switches_ = std::make_unique<Switches>();
  Switches& sw = *switches_;
  sw.view = topo::switch_view(*topo_);
  std::unordered_map<topo::Vertex, topo::Vertex> local;
  for (size_t i = 0; i < sw.view.to_cluster.size(); ++i) local[sw.view.to_cluster[i]] = i;
  const auto& g = topo_->graph;
  // Every boundary device must hang off exactly one switch by one link each way.
  View& f = fabric();
  for (topo::Vertex v : f.view.to_cluster) {
    if (g[v].server < 0) continue;  // a switch
    Attachment at;
    int ups = 0, downs = 0;
    for (topo::Edge e : boost::make_iterator_range(boost::out_edges(v, g))) {
      topo::Vertex w = boost::target(e, g);
      if (g[w].server == g[v].server) continue;
      if (g[w].server >= 0 || !local.count(w)) return sw.attach.clear(), sw;
      ++ups;
      at.sw = local.at(w), at.up_id = g[e].id, at.up_GBps = g[e].bandwidth_GBps;
      at.up_us = g[e].latency_us;
    }
    for (topo::Edge e : boost::make_iterator_range(boost::in_edges(v, g))) {
      topo::Vertex w = boost::source(e, g);
      if (g[w].server == g[v].server) continue;
      if (!local.count(w) || local.at(w) != at.sw) return sw.attach.clear(), sw;
      ++downs;
      at.down_id = g[e].id, at.down_GBps = g[e].bandwidth_GBps, at.down_us = g[e].latency_us;
    }
    if (ups != 1 || downs != 1) return sw.attach.clear(), sw;
    sw.attach.emplace(v, at);
  }
  std::map<topo::Vertex, int> on_switch;  // devices counted so far on each switch, in vertex order
  for (topo::Vertex v : f.view.to_cluster)
    if (auto it = sw.attach.find(v); it != sw.attach.end()) sw.place[v] = on_switch[it->second.sw]++;
  return sw;
}

std::vector<int> Network::between_switches(topo::Vertex from, topo::Vertex to, double level, int place) {
  Switches& sw = *switches_;
  auto it = sw.trees.find({from, level});
  if (it == sw.trees.end())
    it = sw.trees.emplace(std::pair(from, level), topo::least_latency_from(sw.view.topo, from, level)).first;
  const topo::LatencyTree& tree = it->second;
  const topo::Graph& g = sw.view.topo.graph;
  // Back from `to`: every link into a switch that lies on some least-latency way to it is a
  // candidate; destination-based routing picks one by the destination's place (d-mod-k), so the
  // devices under one leaf spread over the spines, as InfiniBand's fat-tree routing and ECMP
  // spread them, instead of every way taking the first spine.
  // Hops from `from` along the tree: each step back must come nearer in hops too, so that links
  // of no latency (a hand-written fabric) cannot send the walk round in a loop.
  auto hops = [&](topo::Vertex v) {
    int n = 0;
    for (; v != from; v = boost::source(tree.via[v], g)) ++n;
    return n;
  };
  std::vector<int> links;
  unsigned key = static_cast<unsigned>(place);
  for (topo::Vertex v = to; v != from;) {
    std::vector<topo::Edge> ways;
    const int depth = hops(v);
    for (topo::Edge e : boost::make_iterator_range(boost::in_edges(v, g))) {
      const topo::Vertex u = boost::source(e, g);
      if (!(g[e].bandwidth_GBps >= level) || !tree.reaches(u)) continue;
      const double through = (u == from ? 0.0 : tree.latency_us[u]) + g[e].latency_us;
      if (through <= tree.latency_us[v] * (1 + 1e-12) + 1e-12 && hops(u) < depth) ways.push_back(e);
    }
    if (ways.empty()) ways.push_back(tree.via[v]);  // rounding: the tree's own way
    const topo::Edge e = ways[key % ways.size()];
    key /= static_cast<unsigned>(ways.size());
    links.push_back(g[e].id);
    v = boost::source(e, g);
  }
  std::reverse(links.begin(), links.end());
  return links;
}

// Source -> boundary x -> x's switch ~> y's switch -> boundary y -> destination, over every
// (x, y): the fabric piece is exactly the widest-then-least-latency route between x and y when
// both hang off one switch each, since every route between them starts and ends with those
// links; the switch-to-switch part is searched on the switches alone, once per source switch
// and width.
void Network::compose_across(topo::Vertex a, topo::Vertex b) {
  Switches& sw = switches();
  const auto& g = topo_->graph;
  const View& from = server(g[a].server);
  const View& to = server(g[b].server);
  const double unbounded = std::numeric_limits<double>::infinity();
  struct Best {
    double width = 0, latency_us = std::numeric_limits<double>::infinity();
    int own = -1;  // how many ends go through their GPU's own NIC: the last tie-break
    topo::Vertex x = 0, y = 0;
  } best;
  // Every piece is looked up once per GPU; the double loop below only does arithmetic.
  auto sides = [&](std::unordered_map<topo::Vertex, std::vector<End>>& cache, topo::Vertex gpu,
                   const View& v, bool outbound) -> const std::vector<End>& {
    auto [it, added] = cache.try_emplace(gpu);
    if (added)
      for (topo::Vertex d : v.boundary)
        it->second.push_back({d, &routes_.at(outbound ? key(gpu, d) : key(d, gpu)), &sw.attach.at(d),
                              own_nic(v, gpu, d)});
    return it->second;
  };
  const std::vector<End>& ends = sides(sw.ends, b, to, false);
  for (const End& start : sides(sw.starts, a, from, true)) {
    const topo::Vertex x = start.device;
    const RouteInfo& ax = *start.inside;
    const Attachment& up = *start.link;
    auto& widest = sw.widest[up.sw];
    if (widest.empty()) widest = topo::widest_from(sw.view.topo, up.sw);
    const int own_start = start.own_nic;
    for (const End& end : ends) {
      const RouteInfo& yb = *end.inside;
      const Attachment& down = *end.link;
      const double across = up.sw == down.sw ? unbounded : widest[down.sw];
      const double piece = std::min({up.up_GBps, across, down.down_GBps});
      const double width = std::min({ax.bandwidth_GBps, piece, yb.bandwidth_GBps});
      if (!(width > 0) || width < best.width) continue;
      const double ends_us = (ax.latency_s + yb.latency_s) * 1e6 + up.up_us + down.down_us;
      const int own = own_start + end.own_nic;
      if (width == best.width &&
          (ends_us > best.latency_us || (ends_us == best.latency_us && own <= best.own)))
        continue;  // cannot win
      double middle = 0;
      if (up.sw != down.sw) {
        auto it = sw.trees.find({up.sw, piece});
        if (it == sw.trees.end())
          it = sw.trees.emplace(std::pair(up.sw, piece),
                                topo::least_latency_from(sw.view.topo, up.sw, piece)).first;
        middle = it->second.latency_us[down.sw];
      }
      const double latency = ends_us + middle;
      if (width > best.width || latency < best.latency_us || (latency == best.latency_us && own > best.own))
        best = {width, latency, own, x, end.device};
    }
  }
  RouteInfo info;
  if (best.width > 0) {
    const RouteInfo &ax = routes_.at(key(a, best.x)), &xy = across_fabric(best.x, best.y),
                    &yb = routes_.at(key(best.y, b));
    info.links = ax.links;
    info.links.insert(info.links.end(), xy.links.begin(), xy.links.end());
    info.links.insert(info.links.end(), yb.links.begin(), yb.links.end());
    info.latency_s = best.latency_us * 1e-6;
    info.bandwidth_GBps = best.width;
  }
  routes_.emplace(key(a, b), std::move(info));
}

const Network::RouteInfo& Network::across_fabric(topo::Vertex x, topo::Vertex y) {
  if (auto it = routes_.find(key(x, y)); it != routes_.end()) return it->second;
  Switches& sw = switches();
  if (sw.attach.empty()) {
    find_in_view(fabric(), x, {y});
    return routes_.at(key(x, y));
  }
  // x's link up to its switch, the widest-then-least-latency way between the switches, and the
  // link down to y (as compose_across composes them).
  const Attachment &up = sw.attach.at(x), &down = sw.attach.at(y);
  RouteInfo info{{up.up_id}, (up.up_us + down.down_us) * 1e-6, std::min(up.up_GBps, down.down_GBps)};
  if (up.sw != down.sw) {
    auto& widest = sw.widest[up.sw];
    if (widest.empty()) widest = topo::widest_from(sw.view.topo, up.sw);
    const double piece = std::min({up.up_GBps, widest[down.sw], down.down_GBps});
    if (piece > 0) {
      const std::vector<int> middle = between_switches(up.sw, down.sw, piece, sw.place.at(y));
      info.links.insert(info.links.end(), middle.begin(), middle.end());
      info.latency_s += sw.trees.at({up.sw, piece}).latency_us[down.sw] * 1e-6;
    }
    info.bandwidth_GBps = piece;
  }
  info.links.push_back(down.down_id);
  if (!(info.bandwidth_GBps > 0)) info = RouteInfo{};  // the switches do not reach each other
  return routes_.emplace(key(x, y), std::move(info)).first->second;
}

double Network::route_through_GBps(topo::Vertex a, topo::Vertex b, int exit, int entry) {
  return through(a, b, exit, entry).bandwidth_GBps;
}

const Network::RouteInfo& Network::route_through(topo::Vertex a, topo::Vertex b, int exit, int entry) {
  const RouteInfo& r = through(a, b, exit, entry);
  if (!(r.bandwidth_GBps > 0)) {
    const auto& g = topo_->graph;
    throw topo::InputError(topo_->name, "", "a route from " + g[a].id + " to " + g[b].id + " through " +
                                                g[server(g[a].server).boundary[exit]].id + " and " +
                                                g[server(g[b].server).boundary[entry]].id + ", but there is none");
  }
  return r;
}

const Network::RouteInfo& Network::through(topo::Vertex a, topo::Vertex b, int exit, int entry) {
  const auto at = std::tuple(a, b, exit, entry);
  auto it = routes_through_.find(at);
  const auto& g = topo_->graph;
  if (it == routes_through_.end()) {
    const int sa = g[a].server, sb = g[b].server;
    if (sa < 0 || sb < 0 || sa == sb)
      throw std::logic_error("route_through: " + g[a].id + " and " + g[b].id + " are not on two servers");
    View& from = server(sa);
    View& to = server(sb);
    if (exit < 0 || exit >= static_cast<int>(from.boundary.size()) || entry < 0 ||
        entry >= static_cast<int>(to.boundary.size()))
      throw std::logic_error("route_through: no NIC " + std::to_string(exit) + " on " + g[a].id + "'s server or " +
                             std::to_string(entry) + " on " + g[b].id + "'s");
    const topo::Vertex x = from.boundary[exit], y = to.boundary[entry];
    find_in_view(from, a, {x});
    find_in_view(to, y, {b});
    const RouteInfo* parts[3] = {&routes_.at(key(a, x)), &across_fabric(x, y), &routes_.at(key(y, b))};
    RouteInfo info;
    info.bandwidth_GBps = std::min({parts[0]->bandwidth_GBps, parts[1]->bandwidth_GBps, parts[2]->bandwidth_GBps});
    if (info.bandwidth_GBps > 0)
      for (const RouteInfo* part : parts) {
        info.links.insert(info.links.end(), part->links.begin(), part->links.end());
        info.latency_s += part->latency_s;
      }
    else
      info.bandwidth_GBps = 0;
    it = routes_through_.emplace(at, std::move(info)).first;
  }
  return it->second;
}

void Network::find_routes(const std::vector<std::pair<topo::Vertex, topo::Vertex>>& pairs) {
  const auto& g = topo_->graph;
  std::map<topo::Vertex, std::vector<topo::Vertex>> inside, across, in_fabric;  // source -> destinations
  for (auto [a, b] : pairs) {
    if (routes_.count(key(a, b))) continue;
    int sa = g[a].server, sb = g[b].server;
    if (sa >= 0 && sa == sb) inside[a].push_back(b);
    else if (sa < 0 || sb < 0) in_fabric[a].push_back(b);
    else across[a].push_back(b);
  }
  for (auto& [a, destinations] : inside) find_in_view(server(g[a].server), a, destinations);
  // A fabric switch at one end (an in-network reduction's hop): both ends must be in the fabric
  // view, the switches and the servers' boundary devices. Between a boundary device and the switch
  // it hangs off, the route is their one link (the attachment compose_across uses), which saves a
  // search of the whole fabric per NIC; other pairs are searched on the fabric view.
  for (auto& [a, destinations] : in_fabric) {
    const Switches& sw = switches();
    auto attached = [&](topo::Vertex device, topo::Vertex to_switch) -> const Attachment* {
      const auto it = sw.attach.find(device);
      return it != sw.attach.end() && sw.view.to_cluster[it->second.sw] == to_switch ? &it->second : nullptr;
    };
    std::vector<topo::Vertex> searched;
    for (topo::Vertex b : destinations) {
      if (const Attachment* up = attached(a, b))
        routes_.emplace(key(a, b), RouteInfo{{up->up_id}, up->up_us * 1e-6, up->up_GBps});
      else if (const Attachment* down = attached(b, a))
        routes_.emplace(key(a, b), RouteInfo{{down->down_id}, down->down_us * 1e-6, down->down_GBps});
      else
        searched.push_back(b);
    }
    if (searched.empty()) continue;
    View& f = fabric();
    auto in_view = [&](topo::Vertex v) {
      return in_fabric_[v] < f.view.to_cluster.size() && f.view.to_cluster[in_fabric_[v]] == v;
    };
    for (topo::Vertex v : searched)
      if (!in_view(a) || !in_view(v))
        throw std::logic_error("route from " + g[a].id + " to " + g[v].id +
                               ": a fabric switch's routes start or end at a switch or a server's NIC");
    find_in_view(f, a, searched);
  }
  if (across.empty()) return;

  // The pieces inside servers, each searched once per GPU however many pairs need it: every
  // source to its server's boundary devices, every boundary device to each destination.
  std::map<int, std::vector<topo::Vertex>> entries;  // destination server -> new destinations
  for (auto& [a, destinations] : across) {
    if (g[a].server < 0)
      throw std::logic_error("route from " + g[a].id + ", which belongs to no server");
    if (exits_done_.insert(a).second) find_in_view(server(g[a].server), a, server(g[a].server).boundary);
    for (topo::Vertex b : destinations) {
      if (g[b].server < 0) throw std::logic_error("route to " + g[b].id + ", in no server");
      if (entries_done_.insert(b).second) entries[g[b].server].push_back(b);
    }
  }
  for (auto& [s, members] : entries)
    for (topo::Vertex y : server(s).boundary) find_in_view(server(s), y, members);

  if (!switches().attach.empty()) {
    for (auto& [a, destinations] : across)
      for (topo::Vertex b : destinations) compose_across(a, b);
    return;
  }
  for (auto& [a, destinations] : across) {
    View& from = server(g[a].server);
    std::vector<topo::Vertex> exits;
    for (topo::Vertex b : destinations) {
      const auto& boundary = server(g[b].server).boundary;
      exits.insert(exits.end(), boundary.begin(), boundary.end());
    }
    for (topo::Vertex x : from.boundary) find_in_view(fabric(), x, exits);

    // Compose: the widest (source -> x -> y -> destination), then the least latency.
    for (topo::Vertex b : destinations) {
      const RouteInfo* best[3] = {nullptr, nullptr, nullptr};
      double best_width = 0, best_latency = std::numeric_limits<double>::infinity();
      int best_own = -1;
      const View& to = server(g[b].server);
      // Whether each boundary device is the source's or the destination's own NIC, once each.
      std::vector<int> own_out, own_in;
      for (topo::Vertex x : from.boundary) own_out.push_back(own_nic(from, a, x));
      for (topo::Vertex y : to.boundary) own_in.push_back(own_nic(to, b, y));
      for (size_t i = 0; i < from.boundary.size(); ++i)
        for (size_t j = 0; j < to.boundary.size(); ++j) {
          const topo::Vertex x = from.boundary[i], y = to.boundary[j];
          const RouteInfo* parts[3] = {&routes_.at(key(a, x)), &routes_.at(key(x, y)),
                                       &routes_.at(key(y, b))};
          double width = std::min({parts[0]->bandwidth_GBps, parts[1]->bandwidth_GBps,
                                   parts[2]->bandwidth_GBps});
          double latency = parts[0]->latency_s + parts[1]->latency_s + parts[2]->latency_s;
          const int own = own_out[i] + own_in[j];
          if (width > best_width || (width == best_width && latency < best_latency) ||
              (width == best_width && latency == best_latency && own > best_own)) {
            best_width = width, best_latency = latency, best_own = own;
            std::copy(parts, parts + 3, best);
          }
        }
      RouteInfo info;
      if (best_width <= 0) {  // no route; route() reports it if a schedule needs it
        routes_.emplace(key(a, b), std::move(info));
        continue;
      }
      info = RouteInfo{{}, best_latency, best_width};
      for (const RouteInfo* part : best)
        info.links.insert(info.links.end(), part->links.begin(), part->links.end());
      routes_.emplace(key(a, b), std::move(info));
    }
  }
}

const Network::RouteInfo& Network::route(topo::Vertex a, topo::Vertex b) {
  auto it = routes_.find(key(a, b));
  if (it == routes_.end()) {
    find_routes({{a, b}});
    it = routes_.find(key(a, b));
  }
  if (!(it->second.bandwidth_GBps > 0)) {
    const auto& g = topo_->graph;
    // Servers on no fabric (fabric=none) reach each other by no route: say so, and what runs.
    const bool apart = g[a].server != g[b].server && g[a].server >= 0 && g[b].server >= 0;
    const auto per_server = topo::nodes_of_kind(*topo_, topo::NodeKind::gpu, g[a].server).size();
    throw topo::InputError(topo_->name, "",
                           "a route from " + g[a].id + " to " + g[b].id + ", but there is none" +
                               (apart && topo_->fabric.empty()
                                    ? " (its servers are joined by no fabric, as fabric=none makes them: use the GPUs of one "
                                      "server, --gpus " + std::to_string(per_server) + " or fewer)"
                                    : std::string()));
  }
  return it->second;
}

double Network::route_GBps(topo::Vertex a, topo::Vertex b) { return route(a, b).bandwidth_GBps; }

const std::vector<topo::Vertex>& Network::nics(int index) { return server(index).boundary; }

const std::vector<int>& Network::closest_nics(topo::Vertex gpu) {
  if (auto it = closest_nics_.find(gpu); it != closest_nics_.end()) return it->second;
  const auto& g = topo_->graph;
  if (g[gpu].server < 0 || g[gpu].kind != topo::NodeKind::gpu)
    throw std::logic_error("closest_nics: " + g[gpu].id + " is not a server's GPU");
  View& v = server(g[gpu].server);
  find_in_view(v, gpu, v.boundary);
  // A NIC's width is its route's from the GPU and its own port's (a slow NIC beside a fast one is
  // not as close: ncclTopoSelectNets weighs the NIC's speed too).
  auto width_to = [&](topo::Vertex x) {
    const double route = routes_.at(key(gpu, x)).bandwidth_GBps;
    return g[x].kind == topo::NodeKind::nic ? std::min(route, g[x].port_GBps) : route;
  };
  double width = 0, latency = std::numeric_limits<double>::infinity();
  for (topo::Vertex x : v.boundary) {
    const double w = width_to(x), l = routes_.at(key(gpu, x)).latency_s;
    if (w > width || (w == width && l < latency)) width = w, latency = l;
  }
  std::vector<int> closest;
  for (size_t i = 0; width > 0 && i < v.boundary.size(); ++i) {
    // Latencies are sums of the same links' figures in another order: equal within rounding.
    if (width_to(v.boundary[i]) == width && routes_.at(key(gpu, v.boundary[i])).latency_s <= latency * (1 + 1e-9))
      closest.push_back(static_cast<int>(i));
  }
  std::stable_partition(closest.begin(), closest.end(), [&](int i) { return own_nic(v, gpu, v.boundary[i]); });
  return closest_nics_.emplace(gpu, std::move(closest)).first->second;
}

topo::Vertex Network::own_nic_of(topo::Vertex gpu) {
  const auto& g = topo_->graph;
  if (g[gpu].server < 0 || g[gpu].kind != topo::NodeKind::gpu)
    throw std::logic_error("own_nic_of: " + g[gpu].id + " is not a server's GPU");
  View& v = server(g[gpu].server);
  for (topo::Vertex nic : v.boundary)
    if (own_nic(v, gpu, nic)) return nic;
  throw topo::InputError(topo_->name, "", "a NIC for " + g[gpu].id + " to reach the other servers by, but its server has none");
}

}  // namespace basin::sim
