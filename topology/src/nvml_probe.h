// NVML, loaded at run time: GPU names, memory and NVLink peers of the machine basin runs on.
//
// basin links no GPU driver library, so the same binary runs on machines without one; this file
// dlopen()s libnvidia-ml.so.1 when it exists and asks it what hwloc cannot see (NVLinks). Private
// to the topology layer.
#pragma once

#include <string>
#include <vector>

namespace basin::topo::detail {

struct NvmlNvLink {
  std::string remote_pci_bus;  // "0000:07:00.0": a GPU, or an NVSwitch
  int version = 0;             // as NVML reports it
};

struct NvmlGpu {
  int index = 0;        // NVML's index, as nvidia-smi numbers GPUs
  std::string name;     // "NVIDIA H100 80GB HBM3"
  std::string pci_bus;  // "0000:18:00.0"
  double memory_GB = 0;
  std::vector<NvmlNvLink> nvlinks;  // one entry per active link
};

struct NvmlProbe {
  bool loaded = false;           // the library was found and initialised
  std::string note;              // why not, or what was found
  std::vector<NvmlGpu> gpus;
};

NvmlProbe probe_nvml();

}  // namespace basin::topo::detail
