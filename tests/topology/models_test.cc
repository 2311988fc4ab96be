// Built-in server models: each loads, validates, has the published device counts, and its
// bottleneck bandwidths equal what the vendors' numbers give when worked out by hand.
#include "../catch.h"
#include "helpers.h"

using namespace basin::topo;
using basin_test::at;
using basin_test::gbit_to_GBps;
using basin_test::pcie_rate_GBps;

namespace {

int nvlink_bonds(const Topology& t) {
  int n = 0;
  for (Edge e : boost::make_iterator_range(boost::edges(t.graph)))
    if (t.graph[e].kind == LinkKind::nvlink) ++n;
  return n / 2;  // duplex: one directed link each way
}

double bw(const Topology& t, const char* a, const char* b) {
  return route(t, at(t, a), at(t, b)).bandwidth_GBps;
}

}  // namespace

TEST_CASE("every built-in server model loads and validates with its GPUs", "[topology]") {
  auto name = GENERATE(from_range(server_model_names()));
  CAPTURE(name);
  Topology t = server_model(name);
  REQUIRE_NOTHROW(validate(t, name));
  // Eight GPUs a server; the GB200 NVL72 rack is one NVLink domain of 72 (its datasheet).
  REQUIRE(gpus(t).size() == (name == "gb200-nvl72" ? 72u : 8u));
  REQUIRE(t.servers == 1);
  REQUIRE_FALSE(server_model_description(name).empty());
  for (Vertex g : gpus(t)) REQUIRE(t.graph[g].memory_GB > 0);
}

TEST_CASE("the models of the issue and today's Blackwell servers are all built in", "[topology]") {
  auto names = server_model_names();
  for (const char* want : {"bigbasin", "dgx1", "dgx-a100", "dgx-h100", "dgx-b200", "gb200-nvl72", "pcie8"}) {
    CAPTURE(want);
    REQUIRE(std::find(names.begin(), names.end(), want) != names.end());
  }
  REQUIRE_THROWS_AS(server_model("dgx-9000"), InputError);
}

TEST_CASE("Big Basin has 8 P100 on a hybrid cube mesh of 16 NVLink 1 bonds and one 50 GbE NIC",
          "[topology]") {
  Topology t = server_model("bigbasin");
  REQUIRE(nodes_of_kind(t, NodeKind::nic).size() == 1);
  REQUIRE(nodes_of_kind(t, NodeKind::cpu).size() == 2);
  REQUIRE(nvlink_bonds(t) == 16);  // 8 GPUs x 4 links / 2 ends (Goyal et al. 2017, fig. of Big Basin)
  const Node& nic = t.graph[nodes_of_kind(t, NodeKind::nic)[0]];
  REQUIRE_THAT(nic.port_GBps, WithinRel(gbit_to_GBps(50), 1e-12));
  REQUIRE(nic.port_kind == LinkKind::ethernet);
  // NVLink 1 on P100: 20 GB/s per link per direction (NVIDIA Tesla P100 whitepaper).
  REQUIRE_THAT(bw(t, "gpu0", "gpu1"), WithinRel(20.0, 1e-12));
  REQUIRE_THAT(bw(t, "gpu0", "gpu4"), WithinRel(20.0, 1e-12));
  // No NVLink between gpu0 and gpu5: the route may not forward through another GPU, so it goes
  // over PCIe Gen3 x16 and QPI; the x16 link is the narrowest.
  Route r = route(t, at(t, "gpu0"), at(t, "gpu5"));
  REQUIRE(r.reachable);
  REQUIRE_THAT(r.bandwidth_GBps, WithinRel(pcie_rate_GBps(3, 16), 1e-9));
  for (Edge e : r.links) REQUIRE(t.graph[e].kind != LinkKind::nvlink);
  // GPU0 to the NIC: the NIC's own PCIe Gen3 x8 slot is narrower than the x16 ones.
  REQUIRE_THAT(bw(t, "gpu0", "nic0"), WithinRel(pcie_rate_GBps(3, 8), 1e-9));
}

TEST_CASE("DGX-1: V100 with 24 NVLink 2 links in 16 bonds and 4 x 100 Gb/s InfiniBand",
          "[topology]") {
  Topology t = server_model("dgx1");
  REQUIRE(nvlink_bonds(t) == 16);
  int links = 0;
  for (Edge e : boost::make_iterator_range(boost::edges(t.graph)))
    if (t.graph[e].kind == LinkKind::nvlink) links += t.graph[e].count;
  REQUIRE(links == 2 * 24);  // 6 links per V100, 8 GPUs, counted from both ends
  auto nics = nodes_of_kind(t, NodeKind::nic);
  REQUIRE(nics.size() == 4);
  for (Vertex n : nics) {
    REQUIRE(t.graph[n].port_kind == LinkKind::infiniband);
    REQUIRE_THAT(t.graph[n].port_GBps, WithinRel(gbit_to_GBps(100), 1e-12));
  }
  // NVLink 2: 25 GB/s per link per direction (V100 whitepaper); gpu0-gpu3 is a double link.
  REQUIRE_THAT(bw(t, "gpu0", "gpu1"), WithinRel(25.0, 1e-12));
  REQUIRE_THAT(bw(t, "gpu0", "gpu3"), WithinRel(50.0, 1e-12));
  REQUIRE_THAT(bw(t, "gpu0", "gpu5"), WithinRel(pcie_rate_GBps(3, 16), 1e-9));
}

TEST_CASE("DGX A100, H100 and B200: every GPU pair through the NVSwitch at full NVLink rate",
          "[topology]") {
  // A100: 12 NVLink 3 links x 25 GB/s = 300 GB/s per direction (600 GB/s total, A100 datasheet).
  // H100: 18 NVLink 4 links x 25 GB/s = 450 GB/s per direction (900 GB/s total, H100 datasheet).
  // B200: 18 NVLink 5 links, 1.8 TB/s total = 900 GB/s per direction (DGX B200 datasheet).
  auto [name, per_gpu_GBps, nic_gbit] =
      GENERATE(std::tuple{"dgx-a100", 300.0, 200.0}, std::tuple{"dgx-h100", 450.0, 400.0},
               std::tuple{"dgx-b200", 900.0, 400.0});
  CAPTURE(name);
  Topology t = server_model(name);
  REQUIRE(nodes_of_kind(t, NodeKind::nvswitch).size() == 1);
  auto nics = nodes_of_kind(t, NodeKind::nic);
  REQUIRE(nics.size() == 8);
  for (Vertex n : nics) REQUIRE_THAT(t.graph[n].port_GBps, WithinRel(gbit_to_GBps(nic_gbit), 1e-12));
  auto all = gpus(t);
  for (size_t i = 0; i < all.size(); ++i)
    for (size_t j = 0; j < all.size(); ++j) {
      if (i == j) continue;
      CAPTURE(i, j);
      REQUIRE_THAT(route(t, all[i], all[j]).bandwidth_GBps, WithinRel(per_gpu_GBps, 1e-12));
    }
}

TEST_CASE("PCIe server has no NVLink and its GPUs meet at a switch or cross the CPUs at x16 rate",
          "[topology]") {
  Topology t = server_model("pcie8");
  REQUIRE(nvlink_bonds(t) == 0);
  REQUIRE(nodes_of_kind(t, NodeKind::nic).size() == 2);
  REQUIRE(nodes_of_kind(t, NodeKind::pcie_switch).size() == 4);
  REQUIRE_THAT(bw(t, "gpu0", "gpu1"), WithinRel(pcie_rate_GBps(3, 16), 1e-9));
  REQUIRE_THAT(bw(t, "gpu0", "gpu7"), WithinRel(pcie_rate_GBps(3, 16), 1e-9));
  // Same switch is fewer hops than across the sockets: lower latency.
  REQUIRE(route(t, at(t, "gpu0"), at(t, "gpu1")).latency_us <
          route(t, at(t, "gpu0"), at(t, "gpu7")).latency_us);
}

TEST_CASE("GB200 NVL72: 72 GPUs in one NVLink domain, a Grace per two, a NIC per GPU", "[topology]") {
  // GB200 NVL72 datasheet: 72 Blackwell GPUs and 36 Grace CPUs, 1.8 TB/s of NVLink 5 per GPU
  // (900 GB/s each way) to every other GPU of the rack; NVLink-C2C 900 GB/s bidirectional
  // between a Grace and its GPUs; one 400 Gb/s ConnectX-7 per GPU (SuperPOD reference design).
  Topology t = server_model("gb200-nvl72");
  const auto all = gpus(t);
  REQUIRE(all.size() == 72);
  REQUIRE(nodes_of_kind(t, NodeKind::cpu).size() == 36);
  REQUIRE(nodes_of_kind(t, NodeKind::nvswitch).size() == 1);
  const auto nics = nodes_of_kind(t, NodeKind::nic);
  REQUIRE(nics.size() == 72);
  for (Vertex n : nics) REQUIRE_THAT(t.graph[n].port_GBps, WithinRel(gbit_to_GBps(400), 1e-12));
  // Every pair, the first and the last tray included, meets at the switch at 900 GB/s: NV18.
  const std::vector<Route> from_first = routes_from(t, all.front(), all);
  for (size_t j = 1; j < all.size(); ++j) {
    CAPTURE(j);
    REQUIRE_THAT(from_first[j].bandwidth_GBps, WithinRel(18 * 50.0, 1e-12));
  }
  REQUIRE(path_code(path_class(t, all.front(), all.back())) == "NV18");
  REQUIRE(nvlink_sharp_switch(t, all).has_value());
  // A GPU reaches its own NIC over NVLink-C2C (450 GB/s) and the NIC's PCIe Gen5 x16: the PCIe
  // link is the narrower; outside the PCIe tree, nvidia-smi calls that pair SYS.
  REQUIRE_THAT(bw(t, "gpu0", "nic0"), WithinRel(pcie_rate_GBps(5, 16), 1e-9));
  REQUIRE(path_code(path_class(t, at(t, "gpu0"), at(t, "nic0"))) == "SYS");
  int c2c = 0;
  for (Edge e : boost::make_iterator_range(boost::out_edges(at(t, "gpu0"), t.graph)))
    if (t.graph[e].kind == LinkKind::c2c) {
      ++c2c;
      REQUIRE_THAT(t.graph[e].bandwidth_GBps, WithinRel(900.0 / 2, 1e-12));
    }
  REQUIRE(c2c == 1);
  // The last tray alike: GPU 71 on the 36th Grace, beside its own NIC.
  REQUIRE(t.graph[at(t, "gpu71")].numa == 35);
  REQUIRE_THAT(bw(t, "gpu71", "nic71"), WithinRel(pcie_rate_GBps(5, 16), 1e-9));
  REQUIRE(route(t, at(t, "gpu71"), at(t, "nic71")).links.size() == 2);  // C2C, then PCIe
  // Two racks on one switch: half the machine talks to the other through 72 NICs of 50 GB/s.
  REQUIRE_THAT(bisection_bandwidth_GBps(load_any("gb200-nvl72:2")), WithinRel(72 * gbit_to_GBps(400), 1e-9));
}
