// What a link of each kind may join, as the hardware does: the checks a hand-written topology
// file passes before it loads, so that a file NVLinking a PCIe switch or cabling Ethernet between
// two GPUs is refused by name instead of being routed as if it could carry traffic.
#pragma once

#include <basin/topology.h>

#include <optional>
#include <string>

namespace basin::topo {

// Why a link of `kind` cannot join `a` and `b` (the expectation an error states), or nothing
// where it can: NVLink joins GPUs, NVSwitches and CPUs; C2C a CPU and a GPU; CPU interconnects
// CPUs; a network cable NICs and network switches, of the NIC's own port kind; PCIe anything but
// a network switch. Only network cables join two servers.
std::optional<std::string> link_end_fault(LinkKind kind, const Node& a, const Node& b);

// A network switch is of one network: the first switch whose cables are both Ethernet and
// InfiniBand, with the expectation to state, or nothing.
struct SwitchFault {
  Vertex node;
  std::string expected;
};
std::optional<SwitchFault> mixed_network_switch(const Topology& topo);

}  // namespace basin::topo
