// Built-in server models: the machines of the public record that basin predicts for without
// having them. Each model states where its numbers come from; where a vendor does not publish a
// detail (which PCIe switch a NIC hangs off, say) the choice is marked as an assumption.
// Link bandwidths come from link_specs.cc, never from literals here.
#include <basin/topology.h>

#include <functional>
#include <utility>

namespace basin::topo {
namespace {

// Small helpers so each model reads like its block diagram.
struct ServerBuilder {
  Topology topo;

  Vertex cpu(int index, const std::string& model, int cores) {
    Node n{.id = "cpu" + std::to_string(index), .kind = NodeKind::cpu, .model = model};
    n.index = index;
    n.numa = index;
    n.cores = cores;
    return add_node(topo, std::move(n));
  }
  Vertex pcie_switch(int index, int numa, const std::string& model) {
    Node n{.id = "pcisw" + std::to_string(index), .kind = NodeKind::pcie_switch, .model = model};
    n.index = index;
    n.numa = numa;
    return add_node(topo, std::move(n));
  }
  Vertex gpu(int index, int numa, const std::string& model, double memory_GB) {
    Node n{.id = "gpu" + std::to_string(index), .kind = NodeKind::gpu, .model = model};
    n.index = index;
    n.numa = numa;
    n.memory_GB = memory_GB;
    return add_node(topo, std::move(n));
  }
  Vertex nic(int index, int numa, const std::string& model, const std::string& name,
             double port_GBps, LinkKind port_kind) {
    Node n{.id = "nic" + std::to_string(index), .kind = NodeKind::nic, .model = model};
    n.name = name;
    n.index = index;
    n.numa = numa;
    n.port_GBps = port_GBps;
    n.port_kind = port_kind;
    return add_node(topo, std::move(n));
  }
  void c2c(Vertex cpu, Vertex gpu) {
    add_link(topo, cpu, gpu,
             Link{.kind = LinkKind::c2c,
                  .bandwidth_GBps = c2c_GBps(),
                  .latency_us = default_latency_us(LinkKind::c2c)});
  }
  Vertex nvswitch(const std::string& model) {
    Node n{.id = "nvswitch", .kind = NodeKind::nvswitch, .model = model};
    return add_node(topo, std::move(n));
  }
  void pcie(Vertex a, Vertex b, int generation, int width) {
    add_link(topo, a, b,
             Link{.kind = LinkKind::pcie,
                  .generation = generation,
                  .width = width,
                  .bandwidth_GBps = pcie_GBps(generation, width),
                  .latency_us = default_latency_us(LinkKind::pcie)});
  }
  void nvlink(Vertex a, Vertex b, int generation, int count) {
    add_link(topo, a, b,
             Link{.kind = LinkKind::nvlink,
                  .generation = generation,
                  .count = count,
                  .bandwidth_GBps = count * nvlink_GBps_per_link(generation),
                  .latency_us = default_latency_us(LinkKind::nvlink)});
  }
  void cpu_interconnect(Vertex a, Vertex b, int count, double GBps_per_link) {
    add_link(topo, a, b,
             Link{.kind = LinkKind::cpu_interconnect,
                  .count = count,
                  .bandwidth_GBps = count * GBps_per_link,
                  .latency_us = default_latency_us(LinkKind::cpu_interconnect)});
  }
};

// Gb/s of a network port to GB/s per direction.
constexpr double gbit(double gigabits) { return gigabits / 8.0; }

// The hybrid cube mesh of DGX-1 and Big Basin: two fully connected quads {0..3} and {4..7}, and
// each GPU linked to its counterpart in the other quad. Each pair's number of bonded links.
using LinkCount = std::function<int(int, int)>;
void cube_mesh(ServerBuilder& b, const std::vector<Vertex>& g, int generation, const LinkCount& n) {
  const std::pair<int, int> pairs[] = {{0, 1}, {0, 2}, {0, 3}, {1, 2}, {1, 3}, {2, 3},
                                       {4, 5}, {4, 6}, {4, 7}, {5, 6}, {5, 7}, {6, 7},
                                       {0, 4}, {1, 5}, {2, 6}, {3, 7}};
  for (auto [x, y] : pairs)
    if (int count = n(x, y); count > 0) b.nvlink(g[x], g[y], generation, count);
}

// Eight GPUs on `count` PCIe switches (4 or 8), the first half of the switches under CPU 0, the
// rest under CPU 1.
std::vector<Vertex> gpus_on_switches(ServerBuilder& b, Vertex cpu0, Vertex cpu1, int count,
                                     const std::string& switch_model, int pcie_generation,
                                     const std::string& gpu_model, double memory_GB,
                                     std::vector<Vertex>* switches) {
  std::vector<Vertex> g;
  const int per_switch = 8 / count;
  for (int s = 0; s < count; ++s) {
    int numa = s < count / 2 ? 0 : 1;
    Vertex sw = b.pcie_switch(s, numa, switch_model);
    b.pcie(numa == 0 ? cpu0 : cpu1, sw, pcie_generation, 16);
    for (int k = 0; k < per_switch; ++k) {
      Vertex v = b.gpu(per_switch * s + k, numa, gpu_model, memory_GB);
      b.pcie(sw, v, pcie_generation, 16);
      g.push_back(v);
    }
    if (switches) switches->push_back(sw);
  }
  return g;
}

std::vector<Vertex> gpus_on_four_switches(ServerBuilder& b, Vertex cpu0, Vertex cpu1,
                                          const std::string& switch_model, int pcie_generation,
                                          const std::string& gpu_model, double memory_GB,
                                          std::vector<Vertex>* switches) {
  return gpus_on_switches(b, cpu0, cpu1, 4, switch_model, pcie_generation, gpu_model, memory_GB, switches);
}

Topology big_basin() {
  // Goyal et al. 2017, section 5: Big Basin servers, 8 NVIDIA Tesla P100 SXM2 GPUs (16 GB) on
  // NVLink, one 50 Gbit Ethernet card per server. Open Compute Big Basin design: the GPUs sit on
  // PCIe Gen3 x16 switches (two GPUs each) attached to a dual-socket head node; the head node's
  // CPU (assumed Xeon E5-2680 v4, 14 cores, QPI 2 x 9.6 GT/s = 19.2 GB/s each) and the NIC on
  // socket 0 are assumptions.
  ServerBuilder b;
  b.topo.name = "bigbasin";
  Vertex cpu0 = b.cpu(0, "Xeon E5-2680 v4 (assumed)", 14);
  Vertex cpu1 = b.cpu(1, "Xeon E5-2680 v4 (assumed)", 14);
  b.cpu_interconnect(cpu0, cpu1, 2, 19.2);
  auto g = gpus_on_four_switches(b, cpu0, cpu1, "PCIe Gen3 switch", 3, "Tesla P100-SXM2-16GB", 16,
                                 nullptr);
  // P100 has 4 NVLink 1.0 links: one to each of three quad peers and one to the other quad.
  cube_mesh(b, g, 1, [](int, int) { return 1; });
  Vertex nic = b.nic(0, 0, "50GbE NIC", "eth0", gbit(50), LinkKind::ethernet);
  b.pcie(cpu0, nic, 3, 8);
  return std::move(b.topo);
}

Topology dgx1() {
  // NVIDIA DGX-1 with Tesla V100 (DGX-1 System Architecture whitepaper, 2017): 8 V100 SXM2 16 GB
  // on an NVLink 2.0 hybrid cube mesh where some pairs bond two links (6 links per GPU); four
  // PLX PEX8764 PCIe Gen3 switches, each with two GPUs and one 100 Gb/s EDR InfiniBand NIC; two
  // Xeon E5-2698 v4 (20 cores; Intel ARK: 2 QPI links at 9.6 GT/s, 19.2 GB/s each way).
  // The NVLink pairs and NIC placement match NVIDIA's published `nvidia-smi topo -m` output.
  ServerBuilder b;
  b.topo.name = "dgx1";
  Vertex cpu0 = b.cpu(0, "Xeon E5-2698 v4", 20);
  Vertex cpu1 = b.cpu(1, "Xeon E5-2698 v4", 20);
  b.cpu_interconnect(cpu0, cpu1, 2, 19.2);
  std::vector<Vertex> sw;
  auto g = gpus_on_four_switches(b, cpu0, cpu1, "PLX PEX8764", 3, "Tesla V100-SXM2-16GB", 16, &sw);
  cube_mesh(b, g, 2, [](int x, int y) {
    const std::pair<int, int> doubled[] = {{0, 3}, {0, 4}, {1, 2}, {1, 5},
                                           {2, 3}, {4, 7}, {5, 6}, {6, 7}};
    for (auto p : doubled)
      if (p == std::pair(x, y)) return 2;
    return 1;
  });
  // NIC k on switch k, named as the driver enumerates them in NVIDIA's output.
  const char* names[] = {"mlx5_0", "mlx5_1", "mlx5_2", "mlx5_3"};
  for (int k = 0; k < 4; ++k) {
    Vertex nic = b.nic(k, k < 2 ? 0 : 1, "ConnectX-4 EDR", names[k], gbit(100), LinkKind::infiniband);
    b.pcie(sw[k], nic, 3, 16);
  }
  return std::move(b.topo);
}

// DGX A100, H100 and B200 share a shape: an NVSwitch crossbar, PCIe switches holding the GPUs
// and the eight compute NICs (DGX A100: four, each with two GPUs and two NICs; DGX H100: eight,
// each GPU beside its own NIC), two CPU sockets.
struct NvSwitchServer {
  std::string name, cpu_model, switch_model, gpu_model, nvswitch_model, nic_model;
  int cores, pcie_generation, nvlink_generation, nvlinks_per_gpu;
  double memory_GB, cpu_link_GBps, nic_gbit;
  int cpu_links;
  int pcie_switches = 4;  // 4: two GPUs and two NICs on each; 8: each GPU with its own NIC
};

Topology nvswitch_server(const NvSwitchServer& m) {
  ServerBuilder b;
  b.topo.name = m.name;
  Vertex cpu0 = b.cpu(0, m.cpu_model, m.cores);
  Vertex cpu1 = b.cpu(1, m.cpu_model, m.cores);
  b.cpu_interconnect(cpu0, cpu1, m.cpu_links, m.cpu_link_GBps);
  std::vector<Vertex> sw;
  auto g = gpus_on_switches(b, cpu0, cpu1, m.pcie_switches, m.switch_model, m.pcie_generation, m.gpu_model,
                            m.memory_GB, &sw);
  // Every GPU spreads its links over all NVSwitch chips, so any pair of GPUs sees all of them:
  // one crossbar node keeps `nvidia-smi topo -m` (NV12 / NV18) and the pair bandwidth right.
  Vertex nvs = b.nvswitch(m.nvswitch_model);
  for (Vertex v : g) b.nvlink(v, nvs, m.nvlink_generation, m.nvlinks_per_gpu);
  for (int k = 0; k < 8; ++k) {
    Vertex nic = b.nic(k, k < 4 ? 0 : 1, m.nic_model, "mlx5_" + std::to_string(k), gbit(m.nic_gbit),
                       LinkKind::infiniband);
    b.pcie(sw[k * m.pcie_switches / 8], nic, m.pcie_generation, 16);
  }
  return std::move(b.topo);
}

Topology dgx_a100() {
  // NVIDIA DGX A100 System Architecture whitepaper (2020): 8 A100 SXM4 40 GB, 6 NVSwitches, 12
  // NVLink 3.0 links per GPU (600 GB/s bidirectional); 8 ConnectX-6 HDR 200 Gb/s compute NICs on
  // four PCIe Gen4 switches; 2 AMD EPYC 7742 (64 cores). Socket link: AMD EPYC 7002 allows 4
  // xGMI x16 links at 18 GT/s (36 GB/s each way each); peak, not measured.
  return nvswitch_server({.name = "dgx-a100",
                          .cpu_model = "AMD EPYC 7742",
                          .switch_model = "PCIe Gen4 switch",
                          .gpu_model = "A100-SXM4-40GB",
                          .nvswitch_model = "6 x NVSwitch gen2",
                          .nic_model = "ConnectX-6 HDR",
                          .cores = 64,
                          .pcie_generation = 4,
                          .nvlink_generation = 3,
                          .nvlinks_per_gpu = 12,
                          .memory_GB = 40,
                          .cpu_link_GBps = 36,
                          .nic_gbit = 200,
                          .cpu_links = 4});
}

Topology dgx_h100() {
  // NVIDIA DGX H100 user guide and H100 whitepaper (2022): 8 H100 SXM5 80 GB, 4 NVSwitch gen3
  // chips, 18 NVLink 4.0 links per GPU (900 GB/s bidirectional); 8 ConnectX-7 400 Gb/s compute
  // NICs on PCIe Gen5 switches; 2 Xeon Platinum 8480C (56 cores; Intel ARK: 4 UPI links at
  // 16 GT/s, 32 GB/s each way each). Each NIC serves one GPU (the user guide's table of OSFP
  // ports, ConnectX devices and their GPUs), which nvidia-smi shows as the one NIC beside each
  // GPU: eight switches of one GPU and one NIC here.
  return nvswitch_server({.name = "dgx-h100",
                          .cpu_model = "Xeon Platinum 8480C",
                          .switch_model = "PCIe Gen5 switch",
                          .gpu_model = "H100-SXM5-80GB",
                          .nvswitch_model = "4 x NVSwitch gen3",
                          .nic_model = "ConnectX-7 NDR",
                          .cores = 56,
                          .pcie_generation = 5,
                          .nvlink_generation = 4,
                          .nvlinks_per_gpu = 18,
                          .memory_GB = 80,
                          .cpu_link_GBps = 32,
                          .nic_gbit = 400,
                          .cpu_links = 4,
                          .pcie_switches = 8});
}

Topology dgx_b200() {
  // NVIDIA DGX B200 datasheet and user guide (2024): 8 B200 GPUs with 1,440 GB of GPU memory in
  // all (180 GB each), 2 NVLink 5 switch chips, 18 NVLink 5.0 links per GPU (1.8 TB/s
  // bidirectional); 8 single-port ConnectX-7 400 Gb/s compute NICs on PCIe Gen5 switches; 2 Xeon
  // Platinum 8570 (56 cores; Intel ARK: 4 UPI links at 20 GT/s, 40 GB/s each way each). That each
  // GPU has its own NIC on its own switch, as on DGX H100, is an assumption.
  return nvswitch_server({.name = "dgx-b200",
                          .cpu_model = "Xeon Platinum 8570",
                          .switch_model = "PCIe Gen5 switch",
                          .gpu_model = "B200-180GB",
                          .nvswitch_model = "2 x NVLink 5 switch",
                          .nic_model = "ConnectX-7 NDR",
                          .cores = 56,
                          .pcie_generation = 5,
                          .nvlink_generation = 5,
                          .nvlinks_per_gpu = 18,
                          .memory_GB = 180,
                          .cpu_link_GBps = 40,
                          .nic_gbit = 400,
                          .cpu_links = 4,
                          .pcie_switches = 8});
}

Topology gb200_nvl72() {
  // NVIDIA GB200 NVL72 datasheet and the DGX GB200 SuperPOD reference architecture (2024-25): one
  // rack is one NVLink domain of 72 Blackwell GPUs (13.4 TB of HBM3e: 186 GB each) in 18 compute
  // trays, every GPU with 18 NVLink 5.0 links into the 9 NVLink switch trays, which one crossbar
  // stands for, as in DGX H100. A tray holds two GB200 superchips, each a Grace CPU (72 Arm
  // Neoverse V2 cores) with two GPUs on NVLink-C2C, and four ConnectX-7 400 Gb/s compute NICs,
  // one per GPU. The whole rack is one `server` here: the unit the NVLink domain spans, so the
  // hierarchical allreduce's intra-server phases run over NVLink across all 72 GPUs. Assumed
  // where the documents are silent: NIC k of a tray sits on PCIe Gen5 x16 under the Grace of
  // GPU k (nvidia-smi reports every GPU-NIC pair of a tray as SYS, which a GPU outside the PCIe
  // tree gives), and the tray's two Graces share one CPU link as wide as NVLink-C2C.
  ServerBuilder b;
  b.topo.name = "gb200-nvl72";
  Vertex nvs = b.nvswitch("NVLink 5 switch trays (9 x 2 chips)");
  std::vector<Vertex> grace;
  for (int c = 0; c < 36; ++c) grace.push_back(b.cpu(c, "Grace (Neoverse V2)", 72));
  for (int t = 0; t < 18; ++t) b.cpu_interconnect(grace[2 * t], grace[2 * t + 1], 1, c2c_GBps());
  for (int k = 0; k < 72; ++k) {
    const int cpu = k / 2;
    Vertex gpu = b.gpu(k, cpu, "GB200", 186);
    b.c2c(grace[cpu], gpu);
    b.nvlink(gpu, nvs, 5, 18);
    // Named through the rack; the OS of tray k / 4 calls its four NICs mlx5_0 to mlx5_3.
    Vertex nic = b.nic(k, cpu, "ConnectX-7 NDR", "mlx5_" + std::to_string(k), gbit(400), LinkKind::infiniband);
    b.pcie(grace[cpu], nic, 5, 16);
  }
  return std::move(b.topo);
}

Topology pcie8() {
  // A plain 8-GPU PCIe server of the kind sold for training without NVLink: 8 Tesla V100 PCIe
  // 32 GB on four PCIe Gen3 switches, 2 Xeon Gold 6248 (20 cores; Intel ARK: 3 UPI links at
  // 10.4 GT/s, 20.8 GB/s each way each), one 100 Gb/s Ethernet NIC on each socket. A generic
  // configuration, not one vendor's product.
  ServerBuilder b;
  b.topo.name = "pcie8";
  Vertex cpu0 = b.cpu(0, "Xeon Gold 6248", 20);
  Vertex cpu1 = b.cpu(1, "Xeon Gold 6248", 20);
  b.cpu_interconnect(cpu0, cpu1, 3, 20.8);
  gpus_on_four_switches(b, cpu0, cpu1, "PCIe Gen3 switch", 3, "Tesla V100-PCIE-32GB", 32, nullptr);
  for (int k = 0; k < 2; ++k) {
    Vertex nic = b.nic(k, k, "ConnectX-5 100GbE", "eth" + std::to_string(k), gbit(100),
                       LinkKind::ethernet);
    b.pcie(k == 0 ? cpu0 : cpu1, nic, 3, 16);
  }
  return std::move(b.topo);
}

struct ModelEntry {
  const char* name;
  const char* description;
  Topology (*build)();
};

const ModelEntry kModels[] = {
    {"bigbasin", "Big Basin: 8 P100 SXM2, NVLink 1 hybrid cube mesh, one 50 GbE NIC (Goyal et al.)",
     big_basin},
    {"dgx1", "DGX-1: 8 V100 SXM2, NVLink 2 hybrid cube mesh, 4 x 100 Gb/s EDR InfiniBand", dgx1},
    {"dgx-a100", "DGX A100: 8 A100 SXM4, NVSwitch (NV12), 8 x 200 Gb/s HDR InfiniBand", dgx_a100},
    {"dgx-h100", "DGX H100: 8 H100 SXM5, NVSwitch gen3 (NV18), 8 x 400 Gb/s NDR InfiniBand",
     dgx_h100},
    {"dgx-b200", "DGX B200: 8 B200, NVLink 5 switch (NV18), 8 x 400 Gb/s NDR InfiniBand", dgx_b200},
    {"gb200-nvl72", "GB200 NVL72 rack: 72 B200 in one NVLink 5 domain, 36 Grace, 72 x 400 Gb/s NDR",
     gb200_nvl72},
    {"pcie8", "PCIe server: 8 V100 PCIe on 4 Gen3 switches, 2 x 100 GbE, no NVLink", pcie8},
};

}  // namespace

std::vector<std::string> server_model_names() {
  std::vector<std::string> out;
  for (const auto& m : kModels) out.emplace_back(m.name);
  return out;
}

std::string server_model_description(std::string_view name) {
  for (const auto& m : kModels)
    if (name == m.name) return m.description;
  return "";
}

Topology server_model(std::string_view name) {
  for (const auto& m : kModels)
    if (name == m.name) {
      Topology t = m.build();
      validate(t, std::string("built-in model ") + m.name);
      return t;
    }
  std::string known;
  for (const auto& m : kModels) known += std::string(known.empty() ? "" : ", ") + m.name;
  throw InputError("--cluster", "",
                   "a server model among " + known + ", got '" + std::string(name) + "'");
}

}  // namespace basin::topo
