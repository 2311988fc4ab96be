// Cluster specs: parsing, errors, and the sizes and capacities of the fabrics they build.
#include "../catch.h"
#include "helpers.h"

using namespace basin::topo;
using basin_test::at;
using basin_test::gbit_to_GBps;

TEST_CASE("cluster specs parse into model and count and fabric and print back", "[topology]") {
  auto [text, model, count, kind, ratio] = GENERATE(
      std::tuple{"bigbasin:32", "bigbasin", 32, FabricKind::single_switch, 1.0},
      std::tuple{"dgx-h100:16,fabric=fat-tree:2", "dgx-h100", 16, FabricKind::fat_tree, 2.0},
      std::tuple{"dgx-a100:4,fabric=rail", "dgx-a100", 4, FabricKind::rail, 1.0},
      std::tuple{"dgx1", "dgx1", 1, FabricKind::none, 1.0});
  CAPTURE(text);
  ClusterSpec s = parse_cluster_spec(text);
  REQUIRE(s.server == model);
  REQUIRE(s.count == count);
  REQUIRE(s.fabric.kind == kind);
  REQUIRE(s.fabric.oversubscription == ratio);
  ClusterSpec again = parse_cluster_spec(to_string(s));
  REQUIRE(again.server == s.server);
  REQUIRE(again.count == s.count);
  REQUIRE(again.fabric.kind == s.fabric.kind);
  REQUIRE(again.fabric.oversubscription == s.fabric.oversubscription);
}

TEST_CASE("bad cluster specs are input errors that quote what was wrong", "[topology]") {
  auto [spec, quoted] = GENERATE(std::pair{"bigbasin:0", "'0'"}, std::pair{"bigbasin:x", "'x'"},
                                 std::pair{"bigbasin:4,fabric=torus", "torus"},
                                 std::pair{"bigbasin:4,fabric=fat-tree:0.5", "0.5"},
                                 std::pair{"bigbasin:4,colour=red", "colour"},
                                 std::pair{"bigbasin:4,fabric", "fabric"},
                                 std::pair{"nosuch:4", "nosuch"}, std::pair{":4", ":4"},
                                 std::pair{"bigbasin:4,fabric=switch:2", "switch:2"},
                                 // keys a fabric has no use for, or given twice, are not dropped
                                 std::pair{"bigbasin:4,spines=3", "spines only with"},
                                 std::pair{"bigbasin:4,fabric=rail,leaf-servers=2", "leaf-servers only with"},
                                 std::pair{"bigbasin:4,fabric=switch,fabric=rail", "fabric comes twice"});
  CAPTURE(spec);
  try {
    build_cluster(parse_cluster_spec(spec));
    FAIL("accepted");
  } catch (const InputError& e) {
    CAPTURE(e.what());
    REQUIRE(e.origin == "--cluster");
    REQUIRE(std::string(e.what()).find(quoted) != std::string::npos);
  }
}

TEST_CASE("32 Big Basin servers on one switch: counts worked out from one server", "[topology]") {
  Topology t = load_any("bigbasin:32");
  // Per server: 2 CPUs, 4 PCIe switches, 8 GPUs, 1 NIC; plus the one fabric switch.
  REQUIRE(boost::num_vertices(t.graph) == 32 * 15 + 1);
  // Per server, duplex: 16 NVLink bonds, 8 GPU and 4 switch PCIe links, the NIC's, QPI; plus the
  // NIC's cable to the switch.
  REQUIRE(num_links(t) == 2 * 32 * (16 + 8 + 4 + 1 + 1 + 1));
  REQUIRE(gpus(t).size() == 256);
  REQUIRE(t.graph[gpus(t)[8]].id == "s1/gpu0");  // rank order is (server, index)
}

TEST_CASE("fat tree puts 4 DGX H100 under each leaf with 2 spines and uplinks sized by the ratio", "[topology]") {
  Topology t = load_any("dgx-h100:16,fabric=fat-tree:2");
  // Default leaf: 32 ports / 8 NICs per server = 4 servers; 16 servers -> 4 leaves.
  auto switches = nodes_of_kind(t, NodeKind::net_switch);
  REQUIRE(switches.size() == 4 + 2);
  // Each leaf carries 4 x 8 x 400 Gb/s down, half of it up, split over 2 spines.
  const double up = 4 * 8 * gbit_to_GBps(400) / 2 / 2;
  auto [e, found] = boost::edge(at(t, "fabric/leaf0"), at(t, "fabric/spine1"), t.graph);
  REQUIRE(found);
  REQUIRE_THAT(t.graph[e].bandwidth_GBps, WithinRel(up, 1e-12));
  REQUIRE(t.graph[e].kind == LinkKind::infiniband);
  // Servers under one leaf talk at full NIC rate; across leaves the route is still NIC-bound
  // for one flow (the contention shows only when many flows share the uplinks).
  REQUIRE_THAT(route(t, at(t, "s0/gpu0"), at(t, "s1/gpu0")).bandwidth_GBps,
               WithinRel(gbit_to_GBps(400), 1e-12));
  REQUIRE_THAT(bisection_bandwidth_GBps(t), WithinRel(8 * 8 * gbit_to_GBps(400) / 2, 1e-9));
}

TEST_CASE("rail fabric: NIC r of every server on rail switch r", "[topology]") {
  Topology t = load_any("dgx-a100:4,fabric=rail");
  auto switches = nodes_of_kind(t, NodeKind::net_switch);
  REQUIRE(switches.size() == 8 + 2);  // 8 rails, 2 spines
  for (int s = 0; s < 4; ++s)
    for (int r = 0; r < 8; ++r) {
      std::string nic = "s" + std::to_string(s) + "/nic" + std::to_string(r);
      REQUIRE(boost::edge(at(t, nic), at(t, "fabric/rail" + std::to_string(r)), t.graph).second);
    }
  // Half the servers (2) x 8 NICs x 200 Gb/s cross the cut on the rails themselves.
  REQUIRE_THAT(bisection_bandwidth_GBps(t), WithinRel(2 * 8 * gbit_to_GBps(200), 1e-9));
}

TEST_CASE("a what-if NIC rate scales the cables and the spines alike, keeping the oversubscription", "[topology]") {
  Topology t = load_any("dgx-h100:16,fabric=fat-tree:2");
  set_nic_port_rate(t, gbit_to_GBps(800), "--compare-nic-GBps");
  // As if the servers had 800 Gb/s NICs: each leaf 4 x 8 x 800 Gb/s down, half up, over 2 spines.
  auto [up, found] = boost::edge(at(t, "fabric/leaf0"), at(t, "fabric/spine1"), t.graph);
  REQUIRE(found);
  REQUIRE_THAT(t.graph[up].bandwidth_GBps, WithinRel(4 * 8 * gbit_to_GBps(800) / 2 / 2, 1e-12));
  auto [cable, cabled] = boost::edge(at(t, "s3/nic5"), at(t, "fabric/leaf0"), t.graph);
  REQUIRE(cabled);
  REQUIRE_THAT(t.graph[cable].bandwidth_GBps, WithinRel(gbit_to_GBps(800), 1e-12));
  REQUIRE(t.graph[at(t, "s3/nic5")].port_GBps == gbit_to_GBps(800));
  // Inside the server nothing moves: the NIC's PCIe link is what it was.
  const Topology original = load_any("dgx-h100:16,fabric=fat-tree:2");
  REQUIRE(route(t, at(t, "s0/gpu0"), at(t, "s0/nic0")).bandwidth_GBps ==
          route(original, at(original, "s0/gpu0"), at(original, "s0/nic0")).bandwidth_GBps);
  // NICs of two rates give no one ratio: refused, by the flag.
  Topology mixed = load_any("dgx-h100:2");
  mixed.graph[at(mixed, "s1/nic2")].port_GBps = 25;
  try {
    set_nic_port_rate(mixed, 100, "--compare-nic-GBps");
    FAIL("scaled NICs of two rates");
  } catch (const InputError& e) {
    REQUIRE(e.origin == "--compare-nic-GBps");
    REQUIRE_THAT(e.expected, HasText("share one port rate"));
  }
}
