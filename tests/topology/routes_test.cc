// Widest-path routing and bisection bandwidth against hand-computed values.
#include "../catch.h"
#include "helpers.h"

using namespace basin::topo;
using basin_test::at;
using basin_test::gbit_to_GBps;
using basin_test::pcie_rate_GBps;

TEST_CASE("route prefers the widest path and then the lowest latency among the widest", "[topology]") {
  // a -> b directly at 10 GB/s, or a -> s -> b at 20 GB/s with more latency: widest wins.
  Topology t;
  Vertex a = add_node(t, {.id = "a", .kind = NodeKind::gpu});
  Vertex b = add_node(t, {.id = "b", .kind = NodeKind::gpu});
  Vertex s = add_node(t, {.id = "s", .kind = NodeKind::pcie_switch});
  Vertex s2 = add_node(t, {.id = "s2", .kind = NodeKind::pcie_switch});
  Vertex s3 = add_node(t, {.id = "s3", .kind = NodeKind::pcie_switch});
  add_link(t, a, b, {.kind = LinkKind::pcie, .bandwidth_GBps = 10, .latency_us = 1});
  add_link(t, a, s, {.kind = LinkKind::pcie, .bandwidth_GBps = 20, .latency_us = 2});
  add_link(t, s, b, {.kind = LinkKind::pcie, .bandwidth_GBps = 20, .latency_us = 2});
  // A second 20 GB/s path with 3 hops of 1 us: equally wide, less latency (3 < 4).
  add_link(t, a, s2, {.kind = LinkKind::pcie, .bandwidth_GBps = 25, .latency_us = 1});
  add_link(t, s2, s3, {.kind = LinkKind::pcie, .bandwidth_GBps = 20, .latency_us = 1});
  add_link(t, s3, b, {.kind = LinkKind::pcie, .bandwidth_GBps = 30, .latency_us = 1});
  Route r = route(t, a, b);
  REQUIRE(r.reachable);
  REQUIRE_THAT(r.bandwidth_GBps, WithinRel(20.0, 1e-12));
  REQUIRE_THAT(r.latency_us, WithinRel(3.0, 1e-12));
  REQUIRE(r.links.size() == 3);
  REQUIRE(boost::target(r.links[0], t.graph) == s2);
}

TEST_CASE("routes never forward through a third GPU", "[topology]") {
  // a - g - b over fast NVLinks is not a route from a to b; the slow direct link is.
  Topology t;
  Vertex a = add_node(t, {.id = "a", .kind = NodeKind::gpu});
  Vertex g = add_node(t, {.id = "g", .kind = NodeKind::gpu});
  Vertex b = add_node(t, {.id = "b", .kind = NodeKind::gpu});
  add_link(t, a, g, {.kind = LinkKind::nvlink, .generation = 2, .bandwidth_GBps = 50});
  add_link(t, g, b, {.kind = LinkKind::nvlink, .generation = 2, .bandwidth_GBps = 50});
  add_link(t, a, b, {.kind = LinkKind::pcie, .bandwidth_GBps = 5});
  REQUIRE_THAT(route(t, a, b).bandwidth_GBps, WithinRel(5.0, 1e-12));
}

TEST_CASE("between servers the bottleneck is the NIC port", "[topology]") {
  Topology t = build_cluster(parse_cluster_spec("bigbasin:4"));
  Route r = route(t, at(t, "s0/gpu0"), at(t, "s3/gpu6"));
  REQUIRE(r.reachable);
  REQUIRE_THAT(r.bandwidth_GBps, WithinRel(gbit_to_GBps(50), 1e-12));
  // DGX-1: GPU0 sits under mlx5_0's switch; 100 Gb/s EDR.
  Topology d = build_cluster(parse_cluster_spec("dgx1:2"));
  REQUIRE_THAT(route(d, at(d, "s0/gpu0"), at(d, "s1/gpu0")).bandwidth_GBps,
               WithinRel(gbit_to_GBps(100), 1e-12));
  // Same-server GPU pairs never leave the server, even when the network is wider.
  Topology h = build_cluster(parse_cluster_spec("pcie8:2"));
  for (Edge e : route(h, at(h, "s0/gpu0"), at(h, "s0/gpu7")).links)
    REQUIRE(h.graph[boost::target(e, h.graph)].server == 0);
}

TEST_CASE("bisection bandwidth of clusters equals the NIC ports crossing the cut", "[topology]") {
  // 32 Big Basin servers on one non-blocking switch: 16 servers x one 50 Gb/s port.
  REQUIRE_THAT(bisection_bandwidth_GBps(build_cluster(parse_cluster_spec("bigbasin:32"))),
               WithinRel(16 * gbit_to_GBps(50), 1e-9));
  // 16 DGX H100 on a fat tree with 8 servers per leaf, not oversubscribed: the leaves' uplinks
  // carry all 8 servers x 8 NICs x 400 Gb/s of one half.
  REQUIRE_THAT(bisection_bandwidth_GBps(build_cluster(
                   parse_cluster_spec("dgx-h100:16,fabric=fat-tree,leaf-servers=8"))),
               WithinRel(8 * 8 * gbit_to_GBps(400), 1e-9));
  // Oversubscribed 2:1, the uplinks carry half of that.
  REQUIRE_THAT(bisection_bandwidth_GBps(build_cluster(
                   parse_cluster_spec("dgx-h100:16,fabric=fat-tree:2,leaf-servers=8"))),
               WithinRel(8 * 8 * gbit_to_GBps(400) / 2, 1e-9));
}

TEST_CASE("bisection of one server is the GPU-half cut", "[topology]") {
  // DGX H100: 4 GPUs each side of the NVSwitch at 450 GB/s each. The max flow may add the PCIe
  // paths through the CPUs, at most one Gen5 x16 link per GPU of the half.
  double nvswitch_part = 4 * 450.0;
  double b = bisection_bandwidth_GBps(server_model("dgx-h100"));
  REQUIRE(b >= nvswitch_part);
  REQUIRE(b <= nvswitch_part + 4 * pcie_rate_GBps(5, 16));
}
