// Routes between leaves of a fat tree spread over its spines by destination, as InfiniBand's
// fat-tree routing (d-mod-k) and ECMP spread them: the fabric's capacity, not its spine count,
// sets what crosses it. Every way through the first spine made two spines price a leaf's uplink
// at half and four at a quarter.
#include "../catch.h"

#include <basin/plan.h>
#include <basin/sim.h>

#include <nlohmann/json.hpp>

#include <map>
#include <set>
#include <string>

using namespace basin;

namespace {

// Links leaving leaf switches for spine switches, by id.
std::set<int> leaf_uplinks(const topo::Topology& t) {
  std::set<int> out;
  const auto& g = t.graph;
  for (topo::Edge e : boost::make_iterator_range(boost::edges(g))) {
    const auto& from = g[boost::source(e, g)];
    const auto& to = g[boost::target(e, g)];
    if (from.kind == topo::NodeKind::net_switch && to.kind == topo::NodeKind::net_switch &&
        from.id.find("leaf") != std::string::npos && to.id.find("spine") != std::string::npos)
      out.insert(g[e].id);
  }
  return out;
}

}  // namespace

TEST_CASE("routes from one leaf to another spread over every spine, by destination", "[sim][fabric]") {
  // 8 DGX H100s, 4 under each leaf, 2 or 4 spines: the 32 NICs under the second leaf are reached
  // from a GPU of the first through each spine equally often (32 / spines each).
  for (int spines : {2, 4}) {
    CAPTURE(spines);
    const topo::Topology t =
        topo::load_any("dgx-h100:8,fabric=fat-tree:2,leaf-servers=4,spines=" + std::to_string(spines));
    sim::Network net(t);
    const std::set<int> uplinks = leaf_uplinks(t);
    REQUIRE(uplinks.size() == static_cast<size_t>(2 * spines));
    const auto gpus = plan::pick_gpus(t, 64, 8);
    std::map<int, int> routes_through;  // uplink -> routes from s0/gpu0 to the second leaf's NICs
    for (int i = 32; i < 64; ++i)
      for (int link : net.route(gpus[0], gpus[i]).links)
        if (uplinks.count(link)) ++routes_through[link];
    REQUIRE(routes_through.size() == static_cast<size_t>(spines));
    for (auto [link, count] : routes_through) REQUIRE(count == 32 / spines);
  }
}

TEST_CASE("NCCL's ring over an oversubscribed fat tree runs at the leaves' uplink whatever the spines", "[sim][fabric]") {
  // 16 DGX H100s, 4 under each leaf, oversubscription 4: a leaf's 32 NICs of 50 GB/s give 1600
  // GB/s down and 400 up, split over the spines. NCCL's channel rings visit the servers in order,
  // so each leaf is left by one server's 8 channels (400 GB/s of NICs): the uplink exactly holds
  // them, and the ring takes the same time on 1, 2 or 4 spines. Line rates, no overheads: the
  // NICs' 400 GB/s aggregate then binds, 2(p-1)/p n / 400 GB/s.
  const double moved = 2.0 * 127 / 128;
  for (int spines : {1, 2, 4}) {
    CAPTURE(spines);
    const topo::Topology t =
        topo::load_any("dgx-h100:16,fabric=fat-tree:4,leaf-servers=4,spines=" + std::to_string(spines));
    sim::Network net(t, {.per_message_overhead_us = 0, .reduce_GBps = 0, .line_rate = true});
    const sim::CollectiveCost rings = sim::channel_rings_cost(net, plan::pick_gpus(t, 128, 8));
    REQUIRE_THAT(rings.seconds_per_byte, WithinRel(moved / 400e9, 1e-6));
  }
}

TEST_CASE("a fabric whose switch links take no time still routes, over every spine", "[sim][fabric]") {
  // Hand-written fabrics may give leaf-spine links latency 0: every switch is then equally near,
  // and the walk back from the destination must still come nearer in hops at each step.
  nlohmann::json doc = topo::to_json(topo::load_any("dgx-h100:8,fabric=fat-tree:2,leaf-servers=4,spines=2"));
  int zeroed = 0;
  for (auto& l : doc["links"])
    if (l["from"].get<std::string>().starts_with("fabric/") && l["to"].get<std::string>().starts_with("fabric/"))
      l["latency_us"] = 0, ++zeroed;
  REQUIRE(zeroed == 4);  // 2 leaves x 2 spines, each a duplex entry
  const topo::Topology t = topo::from_json(doc, "zero-latency fabric");
  sim::Network net(t);
  const auto gpus = plan::pick_gpus(t, 64, 8);
  const std::set<int> uplinks = leaf_uplinks(t);
  std::set<int> used;
  for (int i = 0; i < 32; ++i) {
    const auto& r = net.route(gpus[32 + i], gpus[i]);
    REQUIRE(r.links.size() == 8);  // GPU-switch-NIC, NIC-leaf-spine-leaf-NIC, NIC-switch-GPU
    for (int link : r.links)
      if (uplinks.count(link)) used.insert(link);
  }
  REQUIRE(used.size() == 2);  // the second leaf's two uplinks
}
