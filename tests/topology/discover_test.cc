// Discovery: from a real DGX-2's hwloc export (hwloc's own test data), and from this machine.
#include "../catch.h"
#include "helpers.h"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <set>

using namespace basin::topo;
using basin_test::parse_matrix;
namespace fs = std::filesystem;

namespace {
const std::string kDgx2 = std::string(BASIN_FIXTURES) + "/hwloc-nvidia-dgx2.xml";
}

TEST_CASE("DGX-2 hwloc export has 16 V100 on 2 NUMA nodes and one NVSwitch crossbar", "[topology]") {
  DiscoverReport r = discover({.hwloc_xml = kDgx2});
  const Topology& t = r.topo;
  auto all = gpus(t);
  REQUIRE(all.size() == 16);
  REQUIRE(nodes_of_kind(t, NodeKind::cpu).size() == 2);
  REQUIRE(nodes_of_kind(t, NodeKind::nvswitch).size() == 1);
  for (size_t i = 0; i < all.size(); ++i) {
    const Node& g = t.graph[all[i]];
    CAPTURE(g.id);
    REQUIRE(g.model == "Tesla V100-SXM3-32GB-H");
    REQUIRE(g.index == static_cast<int>(i));
    REQUIRE(g.numa == (i < 8 ? 0 : 1));  // each baseboard's PCIe tree hangs off one socket
  }
}

TEST_CASE("DGX-2 hwloc export gives NV6 everywhere as nvidia-smi prints on a DGX-2",
          "[topology]") {
  // nvidia-smi topo -m on a DGX-2 (NVIDIA/nccl-tests issue #78): every GPU pair NV6, since each
  // V100 has 6 NVLinks, one to each of its baseboard's 6 NVSwitches, and the boards are joined.
  Topology t = discover({.hwloc_xml = kDgx2}).topo;
  auto m = parse_matrix(render_matrix(t));
  for (int i = 0; i < 16; ++i)
    for (int j = 0; j < 16; ++j) {
      CAPTURE(i, j);
      REQUIRE(m.at({"GPU" + std::to_string(i), "GPU" + std::to_string(j)}) ==
              (i == j ? "X" : "NV6"));
    }
  // 6 links x 25 GB/s (NVLink 2, V100 whitepaper) between any two GPUs.
  auto all = gpus(t);
  REQUIRE_THAT(route(t, all[0], all[15]).bandwidth_GBps, WithinRel(6 * 25.0, 1e-9));
  // DGX-2 bisection: 2.4 TB/s total = 1.2 TB/s per direction across the two baseboards
  // (NVIDIA DGX-2 datasheet); the PCIe/CPU side adds at most the 41.6 GB/s CPU link assumed.
  double b = bisection_bandwidth_GBps(t);
  REQUIRE(b >= 1200.0);
  REQUIRE(b <= 1200.0 + 41.6 + 1e-9);
}

TEST_CASE("DGX-2 hwloc export: PCIe switches are found and GPU pairs share them", "[topology]") {
  Topology t = discover({.hwloc_xml = kDgx2}).topo;
  REQUIRE(nodes_of_kind(t, NodeKind::host_bridge).size() == 4);
  // Without the NVLinks, GPU0 and GPU1 share a PLX switch (PIX), GPU0 and GPU2 two (PXB).
  Topology pcie_only = t;
  std::vector<Edge> nvlinks;
  for (Edge e : boost::make_iterator_range(boost::edges(pcie_only.graph)))
    if (pcie_only.graph[e].kind == LinkKind::nvlink) nvlinks.push_back(e);
  for (Edge e : nvlinks) boost::remove_edge(e, pcie_only.graph);
  auto g = [&](int i) { return *find_node(pcie_only, "gpu" + std::to_string(i)); };
  REQUIRE(path_code(path_class(pcie_only, g(0), g(1))) == "PIX");
  REQUIRE(path_code(path_class(pcie_only, g(0), g(2))) == "PXB");
  REQUIRE(path_code(path_class(pcie_only, g(0), g(4))) == "NODE");
  REQUIRE(path_code(path_class(pcie_only, g(0), g(8))) == "SYS");
}

TEST_CASE("a discovered topology dumps to JSON and loads back the same", "[topology]") {
  auto xml = GENERATE(std::string(), kDgx2);  // this machine, then the DGX-2 export
  CAPTURE(xml);
  Topology t = discover({.hwloc_xml = xml, .use_nvml = false}).topo;
  std::string path = (fs::temp_directory_path() / "basin-discover-test.json").string();
  save_topology_file(t, path);
  Topology back = load_topology_file(path);
  fs::remove(path);
  REQUIRE(to_json(back) == to_json(t));
}

TEST_CASE("discovery of this machine finds its NUMA nodes and cores and PCI NICs", "[topology]") {
  DiscoverReport r = discover({});
  const Topology& t = r.topo;
  // Independent source: the kernel's own view in sysfs.
  int numa_dirs = 0;
  if (fs::exists("/sys/devices/system/node"))
    for (const auto& e : fs::directory_iterator("/sys/devices/system/node"))
      if (e.path().filename().string().rfind("node", 0) == 0 &&
          std::isdigit(static_cast<unsigned char>(e.path().filename().string()[4])))
        ++numa_dirs;
  auto cpus = nodes_of_kind(t, NodeKind::cpu);
  REQUIRE(cpus.size() == static_cast<size_t>(std::max(1, numa_dirs)));
  int cores = 0;
  for (Vertex c : cpus) cores += t.graph[c].cores;
  std::set<std::string> core_ids;  // (package, core) pairs of online CPUs
  for (const auto& e : fs::directory_iterator("/sys/devices/system/cpu")) {
    std::string name = e.path().filename().string();
    if (name.rfind("cpu", 0) != 0 || name.size() < 4 || !std::isdigit(static_cast<unsigned char>(name[3])))
      continue;
    std::ifstream pkg(e.path() / "topology/physical_package_id"), core(e.path() / "topology/core_id");
    std::string p, c;
    if (pkg >> p && core >> c) core_ids.insert(p + ":" + c);
  }
  if (!core_ids.empty()) REQUIRE(cores == static_cast<int>(core_ids.size()));
  // Every network interface backed by a PCI device is a NIC node (same PCI address).
  std::set<std::string> pci_nics;
  if (fs::exists("/sys/class/net"))
    for (const auto& e : fs::directory_iterator("/sys/class/net")) {
      fs::path dev = e.path() / "device";
      if (!fs::exists(dev)) continue;
      fs::path sub = fs::canonical(dev / "subsystem");
      if (sub.filename() == "pci") pci_nics.insert(fs::canonical(dev).filename().string());
    }
  std::set<std::string> found;
  for (Vertex n : nodes_of_kind(t, NodeKind::nic)) found.insert(t.graph[n].pci_bus);
  CAPTURE(r.notes);
  for (const auto& bus : pci_nics) {
    CAPTURE(bus);
    REQUIRE(found.count(bus) == 1);
  }
  REQUIRE_FALSE(r.notes.empty());
}

TEST_CASE("discovery reports unreadable or foreign XML as input errors", "[topology]") {
  REQUIRE_THROWS_AS(discover({.hwloc_xml = "/nonexistent/machine.xml"}), InputError);
  std::string path = (fs::temp_directory_path() / "basin-not-hwloc.xml").string();
  std::ofstream(path) << "<html><body>not a topology</body></html>\n";
  try {
    discover({.hwloc_xml = path});
    FAIL("accepted");
  } catch (const InputError& e) {
    REQUIRE(e.origin == path);
  }
  fs::remove(path);
}
