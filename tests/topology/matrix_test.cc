// The nvidia-smi style GPU matrix: Big Basin's cube mesh, DGX-1 against the matrix NVIDIA's tool
// prints on that machine, and path classes on every kind of PCIe arrangement.
#include "../catch.h"
#include "helpers.h"

using namespace basin::topo;
using basin_test::parse_matrix;

TEST_CASE("Big Basin matrix: every GPU has NVLink to exactly 4 peers and reaches 3 without it",
          "[topology]") {
  auto m = parse_matrix(render_matrix(server_model("bigbasin")));
  for (int i = 0; i < 8; ++i) {
    int nv = 0, other = 0;
    for (int j = 0; j < 8; ++j) {
      if (i == j) continue;
      const std::string& code = m.at({"GPU" + std::to_string(i), "GPU" + std::to_string(j)});
      CAPTURE(i, j, code);
      if (code == "NV1") ++nv;
      else if (code == "PHB" || code == "SYS" || code == "PIX" || code == "PXB" || code == "NODE")
        ++other;
      else FAIL("unexpected code " << code);
    }
    CAPTURE(i);
    REQUIRE(nv == 4);
    REQUIRE(other == 3);
    REQUIRE(m.at({"GPU" + std::to_string(i), "GPU" + std::to_string(i)}) == "X");
  }
}

// `nvidia-smi topo -m` on a DGX-1 with V100 (NVIDIA DGX-1 system documentation; the NVLink
// counts agree with NCCL's topology dump of that machine in NVIDIA/nccl issue #671). NIC columns
// are in mlx5 order; CPU affinity columns dropped.
constexpr const char* kPublishedDgx1 = R"(
        GPU0    GPU1    GPU2    GPU3    GPU4    GPU5    GPU6    GPU7    mlx5_0  mlx5_1  mlx5_2  mlx5_3
GPU0     X      NV1     NV1     NV2     NV2     SYS     SYS     SYS     PIX     PHB     SYS     SYS
GPU1    NV1      X      NV2     NV1     SYS     NV2     SYS     SYS     PIX     PHB     SYS     SYS
GPU2    NV1     NV2      X      NV2     SYS     SYS     NV1     SYS     PHB     PIX     SYS     SYS
GPU3    NV2     NV1     NV2      X      SYS     SYS     SYS     NV1     PHB     PIX     SYS     SYS
GPU4    NV2     SYS     SYS     SYS      X      NV1     NV1     NV2     SYS     SYS     PIX     PHB
GPU5    SYS     NV2     SYS     SYS     NV1      X      NV2     NV1     SYS     SYS     PIX     PHB
GPU6    SYS     SYS     NV1     SYS     NV1     NV2      X      NV2     SYS     SYS     PHB     PIX
GPU7    SYS     SYS     SYS     NV1     NV2     NV1     NV2      X      SYS     SYS     PHB     PIX
)";

TEST_CASE("DGX-1 matrix matches the nvidia-smi topo -m output NVIDIA publishes", "[topology]") {
  auto published = parse_matrix(kPublishedDgx1);
  auto ours = parse_matrix(render_matrix(server_model("dgx1")));
  REQUIRE(published.size() == 8 * 12);
  for (const auto& [cell, code] : published) {
    CAPTURE(cell.first, cell.second);
    REQUIRE(ours.count(cell) == 1);
    REQUIRE(ours.at(cell) == code);
  }
}

TEST_CASE("matrix legend is nvidia-smi's", "[topology]") {
  std::string text = render_matrix(server_model("dgx1"));
  REQUIRE(text.find("NV#  = Connection traversing a bonded set of # NVLinks") != std::string::npos);
  REQUIRE(text.find("PIX  = Connection traversing at most a single PCIe bridge") != std::string::npos);
}

TEST_CASE("path classes cover PIX PXB PHB NODE and SYS on a hand-built PCIe tree",
          "[topology]") {
  // cpu0 - hb0 - swA - swB - g0, g1 ; swA - g2 ; cpu0 - hb1 - g3 ; cpu1 - g4
  Topology t;
  auto add = [&](const char* id, NodeKind k) {
    Node n{.id = id, .kind = k};
    return add_node(t, n);
  };
  Vertex cpu0 = add("cpu0", NodeKind::cpu), cpu1 = add("cpu1", NodeKind::cpu);
  Vertex hb0 = add("hb0", NodeKind::host_bridge), hb1 = add("hb1", NodeKind::host_bridge);
  Vertex swA = add("swA", NodeKind::pcie_switch), swB = add("swB", NodeKind::pcie_switch);
  Vertex g0 = add("g0", NodeKind::gpu), g1 = add("g1", NodeKind::gpu), g2 = add("g2", NodeKind::gpu);
  Vertex g3 = add("g3", NodeKind::gpu), g4 = add("g4", NodeKind::gpu);
  Link pcie{.kind = LinkKind::pcie, .generation = 3, .width = 16, .bandwidth_GBps = 15.75};
  Link qpi{.kind = LinkKind::cpu_interconnect, .bandwidth_GBps = 38.4};
  add_link(t, cpu0, hb0, pcie);
  add_link(t, cpu0, hb1, pcie);
  add_link(t, hb0, swA, pcie);
  add_link(t, swA, swB, pcie);
  add_link(t, swB, g0, pcie);
  add_link(t, swB, g1, pcie);
  add_link(t, swA, g2, pcie);
  add_link(t, hb1, g3, pcie);
  add_link(t, cpu1, g4, pcie);
  add_link(t, cpu0, cpu1, qpi);
  REQUIRE(path_code(path_class(t, g0, g0)) == "X");
  REQUIRE(path_code(path_class(t, g0, g1)) == "PIX");
  REQUIRE(path_code(path_class(t, g0, g2)) == "PXB");
  REQUIRE(path_code(path_class(t, g0, g3)) == "NODE");
  REQUIRE(path_code(path_class(t, g3, g3)) == "X");
  REQUIRE(path_code(path_class(t, g0, g4)) == "SYS");
  REQUIRE(path_code(path_class(t, g2, g4)) == "SYS");
  // Path classes are symmetric.
  REQUIRE(path_code(path_class(t, g2, g0)) == "PXB");
  REQUIRE(path_code(path_class(t, g4, g0)) == "SYS");
}
