// One source of truth for the numbers a link's kind implies: per-link NVLink bandwidth by
// generation, PCIe bandwidth by generation and width, and nominal per-hop latencies. Built-in
// models and discovery call these instead of repeating the figures. Measured values that
// calibrate the simulator belong in profiles/, not here.
#include <basin/topology.h>

namespace basin::topo {

double nvlink_GBps_per_link(int generation) {
  switch (generation) {
    // NVIDIA Tesla P100 whitepaper (2016): 4 NVLinks, 160 GB/s bidirectional in all -> 20 GB/s
    // per link per direction.
    case 1: return 20.0;
    // NVIDIA Tesla V100 whitepaper (2017): 6 NVLink 2.0 links, 300 GB/s in all -> 25 GB/s.
    case 2: return 25.0;
    // NVIDIA A100 whitepaper (2020): 12 NVLink 3.0 links, 600 GB/s in all -> 25 GB/s.
    case 3: return 25.0;
    // NVIDIA H100 whitepaper (2022): 18 NVLink 4.0 links, 900 GB/s in all -> 25 GB/s.
    case 4: return 25.0;
    // NVIDIA Blackwell datasheet: 18 NVLink 5.0 links, 1.8 TB/s in all -> 50 GB/s.
    case 5: return 50.0;
    default: return 0.0;
  }
}

double pcie_GBps(int generation, int width) {
  // PCI-SIG base specifications: transfer rate per lane and line coding.
  // Gen1 2.5 GT/s and Gen2 5 GT/s with 8b/10b; Gen3 8, Gen4 16, Gen5 32 GT/s with 128b/130b;
  // Gen6 64 GT/s PAM4 with 242/256 FLIT efficiency. One transfer carries one bit per lane.
  double gts = 0, coding = 0;
  switch (generation) {
    case 1: gts = 2.5; coding = 8.0 / 10.0; break;
    case 2: gts = 5.0; coding = 8.0 / 10.0; break;
    case 3: gts = 8.0; coding = 128.0 / 130.0; break;
    case 4: gts = 16.0; coding = 128.0 / 130.0; break;
    case 5: gts = 32.0; coding = 128.0 / 130.0; break;
    case 6: gts = 64.0; coding = 242.0 / 256.0; break;
    default: return 0.0;
  }
  return gts * coding * width / 8.0;
}

double c2c_GBps() {
  // NVIDIA Grace Hopper and GB200 datasheets: NVLink-C2C, 900 GB/s bidirectional between the
  // Grace CPU and a GPU -> 450 GB/s each way.
  return 450.0;
}

double default_latency_us(LinkKind kind) {
  // NCCL's tuning model (src/graph/tuning.cc, hwLat, Ring/LL) charges 0.6 us per NVLink hop,
  // 1.0 us per PCIe hop and 2.7 us per network hop. CPU interconnect: the same order as a PCIe
  // hop. Ethernet carries Gloo's TCP traffic (the Big Basin setting), and the kernel's TCP stack
  // is most of a message's cost. Gloo's published benchmark (README of March 2017,
  // allreduce_ring_chunked, 4 machines on 40GbE) took 263 us at p50 for one element; that
  // algorithm's critical path is 13 one-way messages (2p chunks, two passes double-buffered, a
  // final barrier), so ~20.2 us per message host to host. A host-to-host route here is two
  // PCIe hops (2 us) and two Ethernet hops, and the engine adds 5 us per message
  // (NetworkParams): 6.6 us per Ethernet hop makes up the rest.
  switch (kind) {
    case LinkKind::nvlink: return 0.6;
    case LinkKind::pcie: return 1.0;
    case LinkKind::cpu_interconnect: return 1.0;
    case LinkKind::infiniband: return 2.7;
    case LinkKind::ethernet: return 6.6;
    // NCCL's hwLat has no figure of its own for NVLink-C2C; it is an NVLink-class hop.
    case LinkKind::c2c: return 0.6;
  }
  return 0.0;
}

}  // namespace basin::topo
