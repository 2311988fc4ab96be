// Discovery: the machine basin runs on (or an hwloc XML export of one) as a topology graph.
//
// hwloc gives NUMA nodes, packages and the PCI tree with GPUs, NICs and NVSwitches; NVLinks come
// from hwloc's "NVLinkBandwidth" distances (present in exports made where hwloc had NVML) or, on
// a live machine, from NVML loaded at run time. The PCI tree is folded into the few node kinds
// the model knows: a root port belongs to its host bridge, and an upstream switch port with its
// downstream ports is one PCIe switch. What had to be assumed is said in the report's notes.
#include <basin/topology.h>

#include "nvml_probe.h"

#include <hwloc.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>

namespace basin::topo {
namespace {

constexpr unsigned kNvidiaVendor = 0x10de;
// Bandwidth between NUMA nodes is not something hwloc reports. One UPI/QPI-class interconnect of
// two links is assumed (2 x 20.8 GB/s for UPI at 10.4 GT/s, Intel Xeon Scalable datasheet) and
// the assumption is noted in the report.
constexpr double kAssumedNumaGBps = 41.6;

std::string bus_id(const hwloc_obj_t obj) {
  const auto& p = obj->attr->pcidev;
  char text[32];
  std::snprintf(text, sizeof text, "%04x:%02x:%02x.%01x", p.domain, p.bus, p.dev, p.func);
  return text;
}

// NVLink generation of an NVIDIA GPU from its marketing name (NVIDIA architecture whitepapers).
int nvlink_generation(const std::string& model) {
  auto has = [&](const char* s) { return model.find(s) != std::string::npos; };
  if (has("P100")) return 1;
  if (has("V100")) return 2;
  if (has("A100") || has("A800")) return 3;
  if (has("H100") || has("H200") || has("H800") || has("GH200")) return 4;
  if (has("B100") || has("B200") || has("GB200")) return 5;
  return 0;
}

// PCIe generation and width whose rate matches hwloc's link speed (GB/s), or {0, 0}.
std::pair<int, int> pcie_shape(double linkspeed_GBps) {
  for (int gen = 1; gen <= 6; ++gen)
    for (int width : {1, 2, 4, 8, 16}) {
      double nominal = pcie_GBps(gen, width);
      if (std::abs(nominal - linkspeed_GBps) <= 0.03 * nominal) return {gen, width};
    }
  return {0, 0};
}

std::string read_first_line(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

struct Builder {
  hwloc_topology_t hw;
  bool live;
  DiscoverReport report;
  std::vector<Vertex> numa_nodes;             // by hwloc logical index
  std::map<hwloc_obj_t, Vertex> attach;       // hwloc bridge -> the node a device hangs off
  std::map<std::string, Vertex> gpu_by_bus;   // "0000:34:00.0" -> gpu
  std::map<hwloc_obj_t, Vertex> nvlink_peer;  // hwloc PCI dev (GPU or NVSwitch) -> node
  std::optional<Vertex> crossbar;
  int host_bridges = 0, switches = 0, nics = 0;
  bool assumed_pcie = false;

  Topology& topo() { return report.topo; }
  void note(std::string text) { report.notes.push_back(std::move(text)); }

  Link pcie_link(double linkspeed_GBps) {
    Link l{.kind = LinkKind::pcie, .latency_us = default_latency_us(LinkKind::pcie)};
    auto [gen, width] = pcie_shape(linkspeed_GBps);
    if (linkspeed_GBps <= 0) {  // hwloc could not read the link (virtual machines, old kernels)
      std::tie(gen, width) = std::pair{3, 16};
      linkspeed_GBps = pcie_GBps(3, 16);
      assumed_pcie = true;
    }
    l.generation = gen;
    l.width = width;
    l.bandwidth_GBps = linkspeed_GBps;
    return l;
  }

  int numa_of(hwloc_obj_t obj) {
    hwloc_obj_t anc = hwloc_get_non_io_ancestor_obj(hw, obj);
    for (size_t i = 0; i < numa_nodes.size(); ++i) {
      hwloc_obj_t n = hwloc_get_obj_by_type(hw, HWLOC_OBJ_NUMANODE, static_cast<unsigned>(i));
      if (anc && anc->nodeset && hwloc_bitmap_isincluded(n->nodeset, anc->nodeset))
        return static_cast<int>(i);
    }
    return 0;
  }

  void add_cpus() {
    int count = hwloc_get_nbobjs_by_type(hw, HWLOC_OBJ_NUMANODE);
    for (int i = 0; i < count; ++i) {
      hwloc_obj_t n = hwloc_get_obj_by_type(hw, HWLOC_OBJ_NUMANODE, i);
      Node cpu{.id = "cpu" + std::to_string(i), .kind = NodeKind::cpu};
      cpu.index = i;
      cpu.numa = i;
      cpu.cores = n->cpuset ? hwloc_get_nbobjs_inside_cpuset_by_type(hw, n->cpuset, HWLOC_OBJ_CORE)
                            : 0;
      hwloc_obj_t pkg = n->cpuset ? hwloc_get_ancestor_obj_by_type(hw, HWLOC_OBJ_PACKAGE, n) : nullptr;
      if (!pkg && n->cpuset)
        pkg = hwloc_get_next_obj_covering_cpuset_by_type(hw, n->cpuset, HWLOC_OBJ_PACKAGE, nullptr);
      if (pkg)
        if (const char* m = hwloc_obj_get_info_by_name(pkg, "CPUModel")) cpu.model = m;
      numa_nodes.push_back(add_node(topo(), std::move(cpu)));
    }
    for (size_t a = 0; a < numa_nodes.size(); ++a)
      for (size_t b = a + 1; b < numa_nodes.size(); ++b)
        add_link(topo(), numa_nodes[a], numa_nodes[b],
                 Link{.kind = LinkKind::cpu_interconnect,
                      .bandwidth_GBps = kAssumedNumaGBps,
                      .latency_us = default_latency_us(LinkKind::cpu_interconnect)});
    if (numa_nodes.size() > 1)
      note("CPU interconnect bandwidth is not reported by hwloc: assumed " +
           std::to_string(kAssumedNumaGBps).substr(0, 4) + " GB/s between NUMA nodes");
  }

  // Depth of a PCI bridge below its host bridge: 0 = root port, odd = switch upstream port,
  // even = switch downstream port.
  static int bridge_level(hwloc_obj_t b) {
    int level = 0;
    for (hwloc_obj_t p = b->parent; p && p->type == HWLOC_OBJ_BRIDGE &&
                                    p->attr->bridge.upstream_type != HWLOC_OBJ_BRIDGE_HOST;
         p = p->parent)
      ++level;
    return level;
  }

  // The node a device or bridge below `parent` connects to.
  Vertex parent_node(hwloc_obj_t parent) { return attach.at(parent); }

  void add_bridges() {
    for (hwloc_obj_t b = nullptr; (b = hwloc_get_next_bridge(hw, b));) {
      if (b->attr->bridge.upstream_type == HWLOC_OBJ_BRIDGE_HOST) {
        int numa = numa_of(b);
        Node hb{.id = "hostbridge" + std::to_string(host_bridges), .kind = NodeKind::host_bridge};
        hb.index = host_bridges++;
        hb.numa = numa;
        Vertex v = add_node(topo(), std::move(hb));
        // The root complex sits inside the CPU: not a bottleneck below the fastest port.
        add_link(topo(), numa_nodes.at(numa), v,
                 Link{.kind = LinkKind::pcie,
                      .generation = 0,
                      .bandwidth_GBps = pcie_GBps(5, 16),
                      .latency_us = 0});
        attach[b] = v;
        continue;
      }
      int level = bridge_level(b);
      if (level == 0) {  // root port: part of its host bridge
        attach[b] = parent_node(b->parent);
      } else if (level % 2 == 1) {  // upstream port of a switch
        Node sw{.id = "pcisw" + std::to_string(switches), .kind = NodeKind::pcie_switch};
        sw.index = switches++;
        sw.numa = topo().graph[parent_node(b->parent)].numa;
        char ids[16];
        std::snprintf(ids, sizeof ids, "%04x:%04x", b->attr->pcidev.vendor_id,
                      b->attr->pcidev.device_id);
        sw.model = std::string("PCIe switch ") + ids;
        sw.pci_bus = bus_id(b);
        Vertex v = add_node(topo(), std::move(sw));
        add_link(topo(), parent_node(b->parent), v, pcie_link(b->attr->pcidev.linkspeed));
        attach[b] = v;
      } else {  // downstream port: part of the switch above
        attach[b] = parent_node(b->parent);
      }
    }
    if (host_bridges == 0) note("hwloc reported no PCI host bridge: no PCI devices found");
  }

  void add_gpu(hwloc_obj_t dev, int fallback_index) {
    Node gpu{.id = "", .kind = NodeKind::gpu};
    gpu.index = fallback_index;
    gpu.pci_bus = bus_id(dev);
    for (hwloc_obj_t os = dev->io_first_child; os; os = os->next_sibling) {
      if (os->type != HWLOC_OBJ_OS_DEVICE || !os->name) continue;
      if (const char* m = hwloc_obj_get_info_by_name(os, "GPUModel")) gpu.model = m;
      int n = 0;
      if (std::sscanf(os->name, "nvml%d", &n) == 1) gpu.index = n;  // nvidia-smi's numbering
    }
    gpu.numa = topo().graph[parent_node(dev->parent)].numa;
    gpu.id = "gpu" + std::to_string(gpu.index);
    Vertex v = add_node(topo(), std::move(gpu));
    add_link(topo(), parent_node(dev->parent), v, pcie_link(dev->attr->pcidev.linkspeed));
    gpu_by_bus[topo().graph[v].pci_bus] = v;
    nvlink_peer[dev] = v;
  }

  void add_nic(hwloc_obj_t dev) {
    Node nic{.id = "nic" + std::to_string(nics), .kind = NodeKind::nic};
    nic.index = nics++;
    nic.pci_bus = bus_id(dev);
    nic.numa = topo().graph[parent_node(dev->parent)].numa;
    std::string netdev, ibdev;
    for (hwloc_obj_t os = dev->io_first_child; os; os = os->next_sibling) {
      if (os->type != HWLOC_OBJ_OS_DEVICE || !os->name) continue;
      if (os->attr->osdev.type == HWLOC_OBJ_OSDEV_OPENFABRICS) ibdev = os->name;
      if (os->attr->osdev.type == HWLOC_OBJ_OSDEV_NETWORK) netdev = os->name;
    }
    nic.name = !ibdev.empty() ? ibdev : netdev;
    char ids[24];
    std::snprintf(ids, sizeof ids, "NIC %04x:%04x", dev->attr->pcidev.vendor_id,
                  dev->attr->pcidev.device_id);
    nic.model = ids;
    Link up = pcie_link(dev->attr->pcidev.linkspeed);
    nic.port_kind = LinkKind::ethernet;
    if (!ibdev.empty() && live) {
      std::string layer = read_first_line("/sys/class/infiniband/" + ibdev + "/ports/1/link_layer");
      if (layer == "InfiniBand") nic.port_kind = LinkKind::infiniband;
      double gbit = 0;  // "100 Gb/sec (4X EDR)"
      if (std::sscanf(read_first_line("/sys/class/infiniband/" + ibdev + "/ports/1/rate").c_str(),
                      "%lf", &gbit) == 1)
        nic.port_GBps = gbit / 8;
    }
    if (nic.port_GBps <= 0 && !netdev.empty() && live) {
      double mbit = 0;  // -1 when the driver does not know (virtual NICs)
      if (std::sscanf(read_first_line("/sys/class/net/" + netdev + "/speed").c_str(), "%lf",
                      &mbit) == 1 && mbit > 0)
        nic.port_GBps = mbit / 8000;
    }
    if (nic.port_GBps <= 0) {
      nic.port_GBps = up.bandwidth_GBps;
      note("port speed of " + (nic.name.empty() ? nic.id : nic.name) +
           " unknown: bounded by its PCIe link, " + std::to_string(up.bandwidth_GBps).substr(0, 5) +
           " GB/s");
    }
    Vertex v = add_node(topo(), std::move(nic));
    add_link(topo(), parent_node(dev->parent), v, up);
  }

  Vertex nvswitch_crossbar() {
    if (!crossbar) {
      Node x{.id = "nvswitch", .kind = NodeKind::nvswitch, .model = "NVSwitch"};
      crossbar = add_node(topo(), std::move(x));
    }
    return *crossbar;
  }

  void add_devices() {
    std::vector<hwloc_obj_t> gpus_found;
    for (hwloc_obj_t d = nullptr; (d = hwloc_get_next_pcidev(hw, d));) {
      if (!attach.count(d->parent)) continue;  // not below a host bridge
      unsigned cls = d->attr->pcidev.class_id >> 8;
      bool nvidia = d->attr->pcidev.vendor_id == kNvidiaVendor;
      // hwloc's subtype, not the vendor id: real exports have NVSwitches whose config space
      // read as zeros (the DGX-2 fixture has one) and hwloc still knew what they were.
      if (d->subtype && std::string(d->subtype) == "NVSwitch") {
        nvlink_peer[d] = nvswitch_crossbar();
      } else if (nvidia && cls == 0x03) {
        gpus_found.push_back(d);
      } else if (cls == 0x02) {
        add_nic(d);
      }
    }
    // hwloc walks the PCI tree in bus order, which is nvidia-smi's order when NVML did not name
    // the GPUs.
    for (size_t i = 0; i < gpus_found.size(); ++i) add_gpu(gpus_found[i], static_cast<int>(i));
  }

  hwloc_obj_t pci_of(hwloc_obj_t obj) {
    return obj->type == HWLOC_OBJ_OS_DEVICE ? obj->parent : obj;
  }

  // NVLinks from hwloc's NVLinkBandwidth matrix (MB/s between GPUs and NVSwitches).
  bool add_hwloc_nvlinks() {
    unsigned nr = 1;
    hwloc_distances_s* dist = nullptr;
    if (hwloc_distances_get_by_name(hw, "NVLinkBandwidth", &nr, &dist, 0) != 0 || nr == 0)
      return false;
    std::map<std::pair<Vertex, Vertex>, double> gbps;  // merged: all NVSwitches are one crossbar
    const unsigned n = dist->nbobjs;
    for (unsigned i = 0; i < n; ++i)
      for (unsigned j = 0; j < n; ++j) {
        if (i == j || dist->values[i * n + j] == 0) continue;
        auto a = nvlink_peer.find(pci_of(dist->objs[i]));
        auto b = nvlink_peer.find(pci_of(dist->objs[j]));
        if (a == nvlink_peer.end() || b == nvlink_peer.end() || a->second == b->second) continue;
        gbps[{a->second, b->second}] += dist->values[i * n + j] / 1000.0;
      }
    hwloc_distances_release(hw, dist);
    for (auto [ends, total] : gbps) {
      auto [a, b] = ends;
      const Node& gpu = topo().graph[topo().graph[a].kind == NodeKind::gpu ? a : b];
      int gen = nvlink_generation(gpu.model);
      Link l{.kind = LinkKind::nvlink, .generation = gen,
             .bandwidth_GBps = total, .latency_us = default_latency_us(LinkKind::nvlink)};
      l.count = gen ? std::max(1, static_cast<int>(std::lround(total / nvlink_GBps_per_link(gen))))
                    : 1;
      add_link(topo(), a, b, l, /*duplex=*/false);
    }
    if (!gbps.empty()) note("NVLinks: from hwloc's NVLinkBandwidth distances");
    return !gbps.empty();
  }

  // NVLinks (and names, memory) from NVML on the live machine.
  void add_nvml(const detail::NvmlProbe& probe) {
    std::map<std::pair<Vertex, Vertex>, int> links;
    for (const auto& g : probe.gpus) {
      auto it = gpu_by_bus.find(g.pci_bus);
      if (it == gpu_by_bus.end()) {
        note("NVML GPU " + std::to_string(g.index) + " at " + g.pci_bus + " not in hwloc's PCI tree");
        continue;
      }
      Node& node = topo().graph[it->second];
      if (!g.name.empty()) node.model = g.name;
      node.memory_GB = g.memory_GB;
      for (const auto& l : g.nvlinks) {
        auto peer = gpu_by_bus.find(l.remote_pci_bus);
        Vertex other = peer != gpu_by_bus.end() ? peer->second : nvswitch_crossbar();
        ++links[{it->second, other}];
      }
    }
    for (auto [ends, count] : links) {
      auto [a, b] = ends;
      int gen = nvlink_generation(topo().graph[a].model);
      if (gen == 0) continue;
      Link l{.kind = LinkKind::nvlink, .generation = gen, .count = count,
             .bandwidth_GBps = count * nvlink_GBps_per_link(gen),
             .latency_us = default_latency_us(LinkKind::nvlink)};
      // NVML reports each GPU's own side of a GPU-GPU link; an NVSwitch reports nothing.
      add_link(topo(), a, b, l, /*duplex=*/crossbar && b == *crossbar);
    }
    if (!links.empty()) note("NVLinks: from NVML");
  }
};

}  // namespace

DiscoverReport discover(const DiscoverOptions& options) {
  const bool live = options.hwloc_xml.empty();
  const std::string origin = live ? "this machine" : options.hwloc_xml;
  hwloc_topology_t hw;
  if (hwloc_topology_init(&hw) != 0) throw std::runtime_error("hwloc_topology_init failed");
  std::unique_ptr<hwloc_topology, void (*)(hwloc_topology_t)> guard(hw, hwloc_topology_destroy);
  hwloc_topology_set_io_types_filter(hw, HWLOC_TYPE_FILTER_KEEP_ALL);
  if (!live) {
    if (access(options.hwloc_xml.c_str(), R_OK) != 0)
      throw InputError(origin, "", "a readable hwloc XML file, but it cannot be opened");
    if (hwloc_topology_set_xml(hw, options.hwloc_xml.c_str()) != 0)
      throw InputError(origin, "", "an hwloc XML export, but hwloc cannot use it");
  }
  if (hwloc_topology_load(hw) != 0)
    throw InputError(origin, "",
                     "an hwloc XML export this hwloc (" + std::string(HWLOC_VERSION) +
                         ") can read, but loading failed (hwloc 3.x exports need "
                         "`lstopo --export-xml-flags v2`)");

  Builder b{hw, live, {}, {}, {}, {}, {}, {}};
  if (live) {
    char host[256] = "localhost";
    gethostname(host, sizeof host - 1);
    b.topo().name = host;
  } else {
    std::string base = options.hwloc_xml.substr(options.hwloc_xml.find_last_of('/') + 1);
    b.topo().name = base.substr(0, base.rfind(".xml"));
  }
  b.add_cpus();
  b.add_bridges();
  b.add_devices();
  bool have_nvlinks = b.add_hwloc_nvlinks();
  if (live && options.use_nvml) {
    detail::NvmlProbe probe = detail::probe_nvml();
    b.note(probe.note);
    if (probe.loaded && !have_nvlinks) b.add_nvml(probe);
  }
  if (b.assumed_pcie)
    b.note("some PCIe link speeds were not reported: assumed Gen3 x16 (15.75 GB/s) for those");
  auto n_gpus = nodes_of_kind(b.topo(), NodeKind::gpu).size();
  b.note("found " + std::to_string(b.numa_nodes.size()) + " NUMA node(s), " +
         std::to_string(b.host_bridges) + " host bridge(s), " + std::to_string(b.switches) +
         " PCIe switch(es), " + std::to_string(n_gpus) + " GPU(s), " + std::to_string(b.nics) +
         " NIC(s)" + (b.crossbar ? ", NVSwitch" : ""));
  validate(b.topo(), origin);
  return std::move(b.report);
}

}  // namespace basin::topo
