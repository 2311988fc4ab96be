// Fabrics whose switches sum (InfiniBand SHARP): the spec and JSON that ask for them, the errors
// where they cannot be, and the aggregation trees found over a single switch, a fat tree and rails.
#include "../catch.h"
#include "helpers.h"

#include <nlohmann/json.hpp>

#include <set>

using namespace basin::topo;

namespace {

// The NICs channel c leaves its servers by on the built-in DGX models: NIC c of every server.
std::vector<Vertex> channel_nics(const Topology& t, int c) {
  std::vector<Vertex> out;
  for (int s = 0; s < t.servers; ++s) out.push_back(nodes_of_kind(t, NodeKind::nic, s).at(c));
  return out;
}

std::string expected_of(const std::string& spec) {
  try {
    build_cluster(parse_cluster_spec(spec));
  } catch (const InputError& e) {
    return e.expected;
  }
  return "accepted";
}

}  // namespace

TEST_CASE("sharp=on marks every fabric switch as summing, and prints back", "[topology][sharp]") {
  const ClusterSpec spec = parse_cluster_spec("dgx-h100:8,fabric=fat-tree:2,sharp=on");
  REQUIRE(spec.fabric.sharp);
  REQUIRE(parse_cluster_spec(to_string(spec)).fabric.sharp);
  const Topology t = build_cluster(spec);
  const auto switches = nodes_of_kind(t, NodeKind::net_switch);
  REQUIRE(switches.size() == 4);  // 8 servers of 8 NICs: two leaves of 32 ports, two spines
  for (Vertex v : switches) REQUIRE(t.graph[v].sharp);
  for (Vertex v : nodes_of_kind(t, NodeKind::nic)) REQUIRE_FALSE(t.graph[v].sharp);
  // Without it nothing sums, and no tree exists.
  const Topology plain = load_any("dgx-h100:8,fabric=fat-tree:2");
  for (Vertex v : nodes_of_kind(plain, NodeKind::net_switch)) REQUIRE_FALSE(plain.graph[v].sharp);
  REQUIRE_FALSE(sharp_tree(plain, channel_nics(plain, 0)).has_value());
}

TEST_CASE("sharp=on is refused where no switch could sum", "[topology][sharp]") {
  // Big Basin's NICs are 50 GbE: SHARP is InfiniBand's.
  REQUIRE_THAT(expected_of("bigbasin:4,sharp=on"), HasText("InfiniBand"));
  REQUIRE_THAT(expected_of("dgx-h100,sharp=on"), HasText("dgx-h100:4,sharp=on"));
  REQUIRE_THAT(expected_of("dgx-h100:4,fabric=none,sharp=on"), HasText("sharp=on"));
  REQUIRE_THAT(expected_of("dgx-h100:4,sharp=yes"), HasText("sharp=on or sharp=off"));
  REQUIRE(expected_of("dgx-h100:4,sharp=off") == "accepted");
}

TEST_CASE("a summing switch is written to JSON and read back; only switches may sum", "[topology][sharp]") {
  const Topology t = load_any("dgx-a100:2,sharp=on");
  const nlohmann::json j = to_json(t);
  const Topology back = from_json(j, "mem.json");
  for (Vertex v : nodes_of_kind(back, NodeKind::net_switch)) REQUIRE(back.graph[v].sharp);
  nlohmann::json bad = j;
  for (auto& n : bad["nodes"])
    if (n["kind"] == "gpu") {
      n["sharp"] = true;
      break;
    }
  try {
    from_json(bad, "bad.json");
    FAIL("accepted");
  } catch (const InputError& e) {
    REQUIRE(e.origin == "bad.json");
    REQUIRE_THAT(e.path, HasText("/sharp"));
  }
  // A cluster file asking an Ethernet server's fabric to sum names the file and its /fabric.
  const nlohmann::json cluster = {{"format", kClusterFormat}, {"server", "bigbasin"}, {"count", 2},
                                  {"fabric", {{"kind", "switch"}, {"sharp", true}}}};
  try {
    from_json(cluster, "ethernet.json");
    FAIL("accepted");
  } catch (const InputError& e) {
    REQUIRE(e.origin == "ethernet.json");
    REQUIRE(e.path == "/fabric");
    REQUIRE_THAT(e.expected, HasText("InfiniBand"));
  }
}

TEST_CASE("aggregation trees: one switch, a fat tree's leaves and spines, a rail", "[topology][sharp]") {
  SECTION("one switch is the root, one level above every NIC") {
    const Topology t = load_any("dgx-h100:4,sharp=on");
    const auto tree = sharp_tree(t, channel_nics(t, 3));
    REQUIRE(tree.has_value());
    REQUIRE(tree->levels == 1);
    REQUIRE(tree->up.size() == 4);
    for (auto [child, parent] : tree->up) REQUIRE(parent == tree->root);
  }
  SECTION("a fat tree: leaves sum their servers' NICs, a spine sums the leaves; channels alternate spines") {
    // 32 servers of 8 NICs: 4 servers a leaf (32 ports), 8 leaves, 2 spines.
    const Topology t = load_any("dgx-h100:32,fabric=fat-tree:4,sharp=on");
    std::set<Vertex> roots;
    for (int c = 0; c < 2; ++c) {
      const auto tree = sharp_tree(t, channel_nics(t, c), c);
      REQUIRE(tree.has_value());
      REQUIRE(tree->levels == 2);
      REQUIRE(tree->up.size() == 32 + 8);  // every NIC to its leaf, every leaf to the root once
      REQUIRE_THAT(t.graph[tree->root].id, HasText("spine"));
      roots.insert(tree->root);
    }
    REQUIRE(roots.size() == 2);
    // The servers under one leaf need no spine.
    std::vector<Vertex> one_leaf = channel_nics(t, 0);
    one_leaf.resize(4);
    const auto small = sharp_tree(t, one_leaf);
    REQUIRE(small->levels == 1);
    REQUIRE_THAT(t.graph[small->root].id, HasText("leaf0"));
  }
  SECTION("rails: channel c's NICs all hang off rail c, its root") {
    const Topology t = load_any("dgx-h100:16,fabric=rail,sharp=on");
    const auto tree = sharp_tree(t, channel_nics(t, 5));
    REQUIRE(tree->levels == 1);
    REQUIRE(t.graph[tree->root].id == "fabric/rail5");
  }
}
