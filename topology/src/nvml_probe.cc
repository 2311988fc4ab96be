// NVML at run time (see nvml_probe.h). The handful of NVML declarations used here are restated
// from NVML's public API reference because nvml.h is not part of every CUDA toolkit install; the
// _v2/_v3 entry points are the ABI-stable ones the driver exports.
#include "nvml_probe.h"

#include <dlfcn.h>

#include <cstdio>

namespace basin::topo::detail {
namespace {

using nvmlReturn_t = int;
using nvmlDevice_t = struct nvmlDevice_st*;
constexpr nvmlReturn_t kNvmlSuccess = 0;
constexpr unsigned kNvmlMaxLinks = 18;  // NVML_NVLINK_MAX_LINKS

struct nvmlPciInfo_t {  // nvmlPciInfo_st as of NVML 10+ (GetPciInfo_v3)
  char busIdLegacy[16];
  unsigned domain;
  unsigned bus;
  unsigned device;
  unsigned pciDeviceId;
  unsigned pciSubSystemId;
  char busId[32];
};

struct nvmlMemory_t {
  unsigned long long total, free, used;
};

struct Nvml {
  void* lib = nullptr;
  nvmlReturn_t (*init)() = nullptr;
  nvmlReturn_t (*shutdown)() = nullptr;
  const char* (*error_string)(nvmlReturn_t) = nullptr;
  nvmlReturn_t (*count)(unsigned*) = nullptr;
  nvmlReturn_t (*handle)(unsigned, nvmlDevice_t*) = nullptr;
  nvmlReturn_t (*name)(nvmlDevice_t, char*, unsigned) = nullptr;
  nvmlReturn_t (*pci)(nvmlDevice_t, nvmlPciInfo_t*) = nullptr;
  nvmlReturn_t (*memory)(nvmlDevice_t, nvmlMemory_t*) = nullptr;
  nvmlReturn_t (*link_state)(nvmlDevice_t, unsigned, int*) = nullptr;
  nvmlReturn_t (*link_remote)(nvmlDevice_t, unsigned, nvmlPciInfo_t*) = nullptr;
  nvmlReturn_t (*link_version)(nvmlDevice_t, unsigned, unsigned*) = nullptr;

  template <typename F>
  bool bind(F& fn, const char* symbol) {
    fn = reinterpret_cast<F>(dlsym(lib, symbol));
    return fn != nullptr;
  }
};

std::string bus_id(const nvmlPciInfo_t& info) {
  char text[32];
  std::snprintf(text, sizeof text, "%04x:%02x:%02x.0", info.domain & 0xffff, info.bus & 0xff,
                info.device & 0xff);
  return text;
}

}  // namespace

NvmlProbe probe_nvml() {
  NvmlProbe probe;
  Nvml nv;
  nv.lib = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
  if (!nv.lib) {
    probe.note = "NVML: libnvidia-ml.so.1 not found (no NVIDIA driver): no GPUs from NVML";
    return probe;
  }
  bool ok = nv.bind(nv.init, "nvmlInit_v2") && nv.bind(nv.shutdown, "nvmlShutdown") &&
            nv.bind(nv.error_string, "nvmlErrorString") &&
            nv.bind(nv.count, "nvmlDeviceGetCount_v2") &&
            nv.bind(nv.handle, "nvmlDeviceGetHandleByIndex_v2") &&
            nv.bind(nv.name, "nvmlDeviceGetName") && nv.bind(nv.pci, "nvmlDeviceGetPciInfo_v3") &&
            nv.bind(nv.memory, "nvmlDeviceGetMemoryInfo");
  if (!ok) {
    probe.note = "NVML: libnvidia-ml.so.1 lacks the expected entry points (driver too old)";
    dlclose(nv.lib);
    return probe;
  }
  bool links = nv.bind(nv.link_state, "nvmlDeviceGetNvLinkState") &&
               nv.bind(nv.link_remote, "nvmlDeviceGetNvLinkRemotePciInfo_v2") &&
               nv.bind(nv.link_version, "nvmlDeviceGetNvLinkVersion");
  if (nvmlReturn_t rc = nv.init(); rc != kNvmlSuccess) {
    probe.note = std::string("NVML: nvmlInit_v2 failed: ") + nv.error_string(rc);
    dlclose(nv.lib);
    return probe;
  }
  unsigned count = 0;
  if (nvmlReturn_t rc = nv.count(&count); rc != kNvmlSuccess) {
    probe.note = std::string("NVML: nvmlDeviceGetCount_v2 failed: ") + nv.error_string(rc);
    count = 0;
  }
  for (unsigned i = 0; i < count; ++i) {
    nvmlDevice_t dev = nullptr;
    if (nv.handle(i, &dev) != kNvmlSuccess) continue;
    NvmlGpu gpu;
    gpu.index = static_cast<int>(i);
    char name[96] = {};
    if (nv.name(dev, name, sizeof name) == kNvmlSuccess) gpu.name = name;
    nvmlPciInfo_t pci{};
    if (nv.pci(dev, &pci) == kNvmlSuccess) gpu.pci_bus = bus_id(pci);
    nvmlMemory_t mem{};
    if (nv.memory(dev, &mem) == kNvmlSuccess) gpu.memory_GB = mem.total / 1e9;
    for (unsigned link = 0; links && link < kNvmlMaxLinks; ++link) {
      int active = 0;
      if (nv.link_state(dev, link, &active) != kNvmlSuccess || !active) continue;
      nvmlPciInfo_t remote{};
      if (nv.link_remote(dev, link, &remote) != kNvmlSuccess) continue;
      unsigned version = 0;
      nv.link_version(dev, link, &version);
      gpu.nvlinks.push_back({bus_id(remote), static_cast<int>(version)});
    }
    probe.gpus.push_back(std::move(gpu));
  }
  nv.shutdown();
  dlclose(nv.lib);
  probe.loaded = true;
  if (probe.note.empty())
    probe.note = "NVML: " + std::to_string(probe.gpus.size()) + " GPU(s)" +
                 (links ? "" : ", driver without NVLink queries");
  return probe;
}

}  // namespace basin::topo::detail
