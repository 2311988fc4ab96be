// Hand-written topology files that the hardware could not be: links joining what their kind
// never joins, a switch on two networks, and servers a fabric cannot join. Each is refused by
// the file and the JSON pointer of the field, and a server copied into a cluster is blamed in its
// own file, not in the cluster made of its copies.
#include "../catch.h"
#include "../temp_dir.h"

#include <basin/topology.h>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>

using namespace basin::topo;
using nlohmann::json;

namespace {

// Writes `doc` as `name` in `dir`; returns its path.
std::string write(const basin::test::TempDir& dir, const std::string& name, const json& doc) {
  std::ofstream(dir / name) << doc.dump(1);
  return dir / name;
}

// A DGX-1 as a file: 8 GPUs, 4 PCIe switches, 4 InfiniBand NICs.
json dgx1() { return to_json(load_any("dgx1")); }

int index_of(const json& doc, const std::string& id) {
  for (size_t i = 0; i < doc["nodes"].size(); ++i)
    if (doc["nodes"][i]["id"] == id) return static_cast<int>(i);
  FAIL("no node " << id);
  return -1;
}

InputError refusal(const std::string& spec) {
  try {
    load_any(spec);
  } catch (const InputError& e) {
    return e;
  }
  FAIL("loaded " << spec);
  throw;
}

json link(const std::string& from, const std::string& to, const std::string& kind) {
  return {{"from", from}, {"to", to}, {"kind", kind}, {"bandwidth_GBps", 12.5}, {"latency_us", 1}};
}

}  // namespace

TEST_CASE("a link joins only what its kind joins in hardware", "[topology][json]") {
  basin::test::TempDir dir{"link-rules"};
  // The model itself loads from its file.
  REQUIRE_NOTHROW(load_any(write(dir, "dgx1.json", dgx1())));
  struct Odd {
    json link;
    const char* expected;
  };
  const Odd odd[] = {
      {link("pcisw0", "gpu5", "nvlink"), "an nvlink link between GPUs, NVSwitches or CPUs"},
      {link("gpu0", "gpu5", "ethernet"), "an ethernet cable between NICs and network switches"},
      {link("cpu0", "nic0", "infiniband"), "an infiniband cable between NICs and network switches"},
      {link("cpu0", "nic0", "cpu_interconnect"), "a cpu_interconnect link between two CPUs"},
      {link("gpu0", "gpu5", "c2c"), "a c2c link between a CPU and a GPU"},
  };
  for (const Odd& o : odd) {
    CAPTURE(o.link.dump());
    json doc = dgx1();
    doc["links"].push_back(o.link);
    const InputError e = refusal(write(dir, "odd.json", doc));
    REQUIRE(e.origin == (dir.path / "odd.json").string());
    REQUIRE(e.path == "/links/" + std::to_string(doc["links"].size() - 1) + "/kind");
    REQUIRE_THAT(e.expected, HasText(o.expected));
  }
  // Only network cables join servers: PCIe or NVLink between two servers' GPUs is refused.
  json two = to_json(load_any("dgx1:2"));
  two["links"].push_back(link("s0/gpu0", "s1/gpu0", "pcie"));
  InputError across = refusal(write(dir, "across.json", two));
  REQUIRE(across.path == "/links/" + std::to_string(two["links"].size() - 1) + "/kind");
  REQUIRE_THAT(across.expected, HasText("a pcie link inside one server"));
  // A cable of another kind than the NIC's port: the DGX-1's NICs are InfiniBand.
  json doc = dgx1();
  doc["nodes"].push_back({{"id", "sw"}, {"kind", "net_switch"}, {"server", -1}});
  doc["links"].push_back(link("nic0", "sw", "ethernet"));
  InputError e = refusal(write(dir, "port.json", doc));
  REQUIRE_THAT(e.expected, HasText("a cable of the port kind of nic0 (infiniband), got ethernet"));
  // PCIe to a network switch.
  doc["links"].back() = link("nic0", "sw", "pcie");
  e = refusal(write(dir, "pcie.json", doc));
  REQUIRE_THAT(e.expected, HasText("not to a network switch"));
  // One switch, Ethernet and InfiniBand NICs: nic1 made Ethernet.
  doc["links"].back() = link("nic0", "sw", "infiniband");
  doc["nodes"][index_of(doc, "nic1")]["port_kind"] = "ethernet";
  doc["links"].push_back(link("nic1", "sw", "ethernet"));
  e = refusal(write(dir, "mixed.json", doc));
  REQUIRE(e.path == "/nodes/" + std::to_string(index_of(doc, "sw")));
  REQUIRE_THAT(e.expected, HasText("a switch of one network, but sw has both"));
}

TEST_CASE("a server copied into a cluster is blamed in its own file", "[topology][json]") {
  basin::test::TempDir dir{"link-rules"};
  // GPUs that reach no NIC: the DGX-1's NICs cut from their PCIe switches.
  json cut = dgx1();
  json kept = json::array();
  for (const auto& l : cut["links"])
    if (l["from"].get<std::string>().rfind("nic", 0) != 0 && l["to"].get<std::string>().rfind("nic", 0) != 0)
      kept.push_back(l);
  cut["links"] = kept;
  const std::string box = write(dir, "box.json", cut);
  REQUIRE_NOTHROW(load_any(box));  // one server: its GPUs reach each other
  REQUIRE_NOTHROW(load_any(box + ":4,fabric=none"));
  InputError e = refusal(box + ":4");
  REQUIRE(e.origin == box);
  REQUIRE(e.path == "/nodes/" + std::to_string(index_of(cut, "gpu0")));
  REQUIRE_THAT(e.expected, HasText("gpu0 reaches none both ways"));
  // The same server named by a cluster file: still its own file's node.
  const std::string cluster = write(dir, "c.json", {{"format", kClusterFormat}, {"server", "box.json"}, {"count", 2}});
  e = refusal(cluster);
  REQUIRE(e.origin == box);
  REQUIRE(e.path == "/nodes/" + std::to_string(index_of(cut, "gpu0")));
  // Held inline, it is the cluster file's /server.
  e = refusal(write(dir, "inline.json", {{"format", kClusterFormat}, {"server", cut}, {"count", 2}}));
  REQUIRE(e.origin == (dir.path / "inline.json").string() + " (/server)");
  REQUIRE(e.path == "/nodes/" + std::to_string(index_of(cut, "gpu0")));

  // NICs of two kinds cannot share one fabric's switches: refused at the odd NIC's port_kind.
  json mixed = dgx1();
  mixed["nodes"][index_of(mixed, "nic1")]["port_kind"] = "ethernet";
  e = refusal(write(dir, "mixed-nics.json", mixed) + ":2");
  REQUIRE(e.path == "/nodes/" + std::to_string(index_of(mixed, "nic1")) + "/port_kind");
  REQUIRE_THAT(e.expected, HasText("NICs of one port kind"));
  REQUIRE_NOTHROW(load_any(write(dir, "mixed-nics.json", mixed) + ":2,fabric=none"));
  // No NIC at all, and a fabric switch inside the server.
  json bare = dgx1();
  json nodes = json::array();
  for (const auto& n : bare["nodes"])
    if (n["kind"] != "nic") nodes.push_back(n);
  bare["nodes"] = nodes;
  bare["links"] = kept;
  e = refusal(write(dir, "bare.json", bare) + ":2");
  REQUIRE(e.origin == (dir.path / "bare.json").string());
  REQUIRE(e.path == "/nodes");
  REQUIRE_THAT(e.expected, HasText("at least one NIC"));
  json nested = dgx1();
  nested["nodes"].push_back({{"id", "leaf"}, {"kind", "net_switch"}, {"server", -1}});
  nested["links"].push_back(link("nic0", "leaf", "infiniband"));
  e = refusal(write(dir, "nested.json", nested) + ":2");
  REQUIRE(e.path == "/nodes/" + std::to_string(nested["nodes"].size() - 1));
  REQUIRE_THAT(e.expected, HasText("fabric switch 'leaf'"));
}
