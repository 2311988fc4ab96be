// The basin.topology/1 JSON format: round trips, and every kind of bad input gets an error naming
// the file, the JSON path of the field and what was expected, with nothing written.
#include "../catch.h"
#include "helpers.h"
#include "../fifo_reader.h"

#include <nlohmann/json.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>

using namespace basin::topo;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

struct TempDir {
  fs::path path;
  TempDir() {
    char tmpl[] = "/tmp/basin-test-XXXXXX";
    path = mkdtemp(tmpl);
  }
  ~TempDir() { fs::remove_all(path); }
  std::string file(const std::string& name) const { return (path / name).string(); }
};

void write(const std::string& path, const std::string& text) {
  std::ofstream(path) << text;
}

// Loads `doc` from a file and returns the InputError it raises.
InputError load_error(const TempDir& dir, const std::string& text) {
  std::string path = dir.file("bad.json");
  write(path, text);
  try {
    load_topology_file(path);
  } catch (const InputError& e) {
    return e;
  }
  FAIL("no error for: " << text);
  throw;
}

json small_doc() {
  return json::parse(R"({
    "format": "basin.topology/1", "name": "two", "servers": 1,
    "nodes": [ {"id": "gpu0", "kind": "gpu", "server": 0, "index": 0},
               {"id": "gpu1", "kind": "gpu", "server": 0, "index": 1} ],
    "links": [ {"from": "gpu0", "to": "gpu1", "kind": "nvlink", "generation": 2, "count": 2,
                "bandwidth_GBps": 50, "latency_us": 0.6} ]
  })");
}

bool same_graph(const Topology& a, const Topology& b) {
  if (boost::num_vertices(a.graph) != boost::num_vertices(b.graph)) return false;
  if (num_links(a) != num_links(b) || a.servers != b.servers || a.name != b.name) return false;
  for (Vertex v : boost::make_iterator_range(boost::vertices(a.graph))) {
    const Node& n = a.graph[v];
    auto w = find_node(b, n.id);
    if (!w) return false;
    const Node& m = b.graph[*w];
    if (n.kind != m.kind || n.model != m.model || n.name != m.name || n.server != m.server ||
        n.index != m.index || n.numa != m.numa || n.memory_GB != m.memory_GB ||
        n.port_GBps != m.port_GBps || n.pci_bus != m.pci_bus)
      return false;
    for (Edge e : boost::make_iterator_range(boost::out_edges(v, a.graph))) {
      const Link& l = a.graph[e];
      auto to = *find_node(b, a.graph[boost::target(e, a.graph)].id);
      auto [f, found] = boost::edge(*w, to, b.graph);
      if (!found) return false;
      const Link& k = b.graph[f];
      if (l.kind != k.kind || l.generation != k.generation || l.width != k.width ||
          l.count != k.count || l.bandwidth_GBps != k.bandwidth_GBps ||
          l.latency_us != k.latency_us)
        return false;
    }
  }
  return true;
}

}  // namespace

TEST_CASE("every built-in model and a cluster survive save and load unchanged", "[topology]") {
  TempDir dir;
  auto spec = GENERATE(std::string("bigbasin"), std::string("dgx1"), std::string("dgx-a100"),
                       std::string("dgx-h100"), std::string("dgx-b200"), std::string("pcie8"),
                       std::string("gb200-nvl72"),  // NVLink-C2C links
                       std::string("dgx1:4,fabric=fat-tree:2,leaf-servers=2"));
  CAPTURE(spec);
  Topology t = load_any(spec);
  std::string path = dir.file("t.json");
  save_topology_file(t, path);
  Topology back = load_topology_file(path);
  REQUIRE(same_graph(t, back));
  REQUIRE(to_json(back) == to_json(t));
  REQUIRE(load_any(path).servers == t.servers);
}

TEST_CASE("one-way links may run both ways as two entries", "[topology]") {
  json doc = small_doc();
  doc["links"][0]["duplex"] = false;
  json back = doc["links"][0];
  std::swap(back["from"], back["to"]);
  doc["links"].push_back(back);
  REQUIRE(num_links(from_json(doc, "one-way")) == 2);
}

TEST_CASE("a minimal hand-written file loads with its numbers", "[topology]") {
  Topology t = from_json(small_doc(), "mem");
  REQUIRE(gpus(t).size() == 2);
  REQUIRE(num_links(t) == 2);  // duplex by default
  REQUIRE_THAT(route(t, gpus(t)[0], gpus(t)[1]).bandwidth_GBps, WithinRel(50.0, 1e-12));
  // The tree view shows the file's rate (50 GB/s over 2 links), not its generation's standard.
  REQUIRE_THAT(render_tree(t), HasText("NVLink 1 bond, 25 GB/s per link per direction"));
  json faster = small_doc();
  faster["links"][0]["bandwidth_GBps"] = 500;
  faster["nodes"].push_back({{"id", "gpu2"}, {"kind", "gpu"}, {"server", 0}, {"index", 2}});
  faster["links"].push_back({{"from", "gpu1"}, {"to", "gpu2"}, {"kind", "nvlink"}, {"generation", 2}, {"count", 1},
                             {"bandwidth_GBps", 25}, {"latency_us", 0.6}});
  const std::string tree = render_tree(from_json(faster, "mem"));
  CAPTURE(tree);
  REQUIRE_THAT(tree, HasText("NVLink 2 bonds (GB/s per direction after each)"));
  REQUIRE_THAT(tree, HasText("gpu0-gpu1 x2 500"));
  REQUIRE_THAT(tree, HasText("gpu1-gpu2 x1 25"));
}

TEST_CASE("bad topology files name the file and the field and what was expected", "[topology]") {
  TempDir dir;
  const std::string file = dir.file("bad.json");
  struct Case {
    const char* what;
    std::function<void(json&)> spoil;
    std::string path;     // JSON pointer the error must name
    std::string mention;  // words the explanation must contain
  };
  std::vector<Case> cases = {
      {"missing field", [](json& d) { d["links"][0].erase("bandwidth_GBps"); },
       "/links/0/bandwidth_GBps", "required"},
      {"unknown field", [](json& d) { d["nodes"][1]["colour"] = "red"; }, "/nodes/1/colour",
       "known fields"},
      {"zero bandwidth", [](json& d) { d["links"][0]["bandwidth_GBps"] = 0; },
       "/links/0/bandwidth_GBps", "above 0"},
      {"negative bandwidth", [](json& d) { d["links"][0]["bandwidth_GBps"] = -25; },
       "/links/0/bandwidth_GBps", "above 0"},
      {"bandwidth as text", [](json& d) { d["links"][0]["bandwidth_GBps"] = "fast"; },
       "/links/0/bandwidth_GBps", "number"},
      {"link to a missing node", [](json& d) { d["links"][0]["to"] = "gpu9"; }, "/links/0/to",
       "gpu9"},
      {"unknown node kind", [](json& d) { d["nodes"][0]["kind"] = "tpu"; }, "/nodes/0/kind",
       "gpu"},
      {"unknown link kind", [](json& d) { d["links"][0]["kind"] = "carrier-pigeon"; },
       "/links/0/kind", "nvlink"},
      {"duplicate id", [](json& d) { d["nodes"][1]["id"] = "gpu0"; }, "/nodes/1/id", "unique"},
      // NVLink has five generations (Blackwell's is the fifth); PCIe six; InfiniBand none here.
      {"NVLink generation 6", [](json& d) { d["links"][0]["generation"] = 6; },
       "/links/0/generation", "from 0 to 5"},
      {"generation on InfiniBand",
       [](json& d) {
         d["links"][0]["kind"] = "infiniband";
         d["links"][0]["generation"] = 4;
       },
       "/links/0/generation", "nvlink and pcie"},
      {"GPU memory of 0", [](json& d) { d["nodes"][0]["memory_GB"] = 0; }, "/nodes/0/memory_GB",
       "above 0"},
      {"a second link between the same GPUs", [](json& d) { d["links"].push_back(d["links"][0]); },
       "/links/1", "/links/0 already is"},
      {"the reverse of a duplex link", [](json& d) {
         json back = d["links"][0];
         std::swap(back["from"], back["to"]);
         back["bandwidth_GBps"] = 10;
         d["links"].push_back(back);
       },
       "/links/1", "from 'gpu1' to 'gpu0'"},
      {"two GPUs stating one index", [](json& d) { d["nodes"][1]["index"] = 0; }, "/nodes/1/index",
       "'gpu0' has"},
      {"wrong format", [](json& d) { d["format"] = "basin.topology/9"; }, "/format",
       "basin.topology/1"},
      {"isolated GPU",
       [](json& d) {
         d["nodes"].push_back({{"id", "gpu2"}, {"kind", "gpu"}, {"server", 0}, {"index", 2}});
       },
       "/nodes/2", "gpu2"},
      {"a GPU others can send to but not receive from",
       [](json& d) { d["links"][0]["duplex"] = false; }, "/nodes/0", "one way only"},
      {"cores on a GPU", [](json& d) { d["nodes"][0]["cores"] = 8; }, "/nodes/0/cores", "only on nodes of kind cpu"},
      {"memory on something other than a GPU",
       [](json& d) {
         d["nodes"].push_back({{"id", "cpu0"}, {"kind", "cpu"}, {"server", 0}, {"memory_GB", 512}});
       },
       "/nodes/2/memory_GB", "only on nodes of kind gpu"},
      {"no cores", [](json& d) {
         d["nodes"].push_back({{"id", "cpu0"}, {"kind", "cpu"}, {"server", 0}, {"cores", 0}});
       },
       "/nodes/2/cores", "at least 1"},
      {"a NIC port of a kind no fabric cables", [](json& d) {
         d["nodes"].push_back({{"id", "nic0"}, {"kind", "nic"}, {"server", 0}, {"port_GBps", 25}, {"port_kind", "ib"}});
       },
       "/nodes/2/port_kind", "ethernet or infiniband (the cable a fabric attaches), got 'ib'"},
      {"a cable faster than the NIC's port", [](json& d) {
         d["nodes"].push_back({{"id", "nic0"}, {"kind", "nic"}, {"server", 0}, {"port_GBps", 25}, {"port_kind", "infiniband"}});
         d["nodes"].push_back({{"id", "ib0"}, {"kind", "net_switch"}, {"server", -1}});
         d["links"].push_back({{"from", "nic0"}, {"to", "ib0"}, {"kind", "infiniband"}, {"bandwidth_GBps", 100}, {"latency_us", 1}});
       },
       "/links/1/bandwidth_GBps", "at most the port_GBps of 'nic0' (25.0)"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.what);
    json doc = small_doc();
    c.spoil(doc);
    InputError e = load_error(dir, doc.dump(2));
    CAPTURE(e.what());
    REQUIRE(e.origin == file);
    REQUIRE(e.path == c.path);
    REQUIRE(std::string(e.what()).find(file) != std::string::npos);
    REQUIRE(e.expected.find(c.mention) != std::string::npos);
  }
}

TEST_CASE("malformed JSON and missing files are input errors naming the file", "[topology]") {
  TempDir dir;
  InputError e = load_error(dir, R"({"format": "basin.topology/1", "nodes": [)");
  REQUIRE(e.expected.find("well-formed JSON") != std::string::npos);
  REQUIRE_THROWS_AS(load_topology_file(dir.file("nope.json")), InputError);
  REQUIRE_THROWS_AS(load_any(dir.file("nope.json")), InputError);
}

TEST_CASE("saving over an unwritable path leaves nothing behind", "[topology]") {
  TempDir dir;
  Topology t = server_model("dgx1");
  REQUIRE_THROWS_AS(save_topology_file(t, dir.file("no/such/dir/t.json")), InputError);
  // A failed save of a good file keeps the old contents: write, then fail into a directory.
  std::string path = dir.file("keep.json");
  save_topology_file(t, path);
  auto before = fs::file_size(path);
  fs::create_directory(dir.file("adir"));
  REQUIRE_THROWS(save_topology_file(t, dir.file("adir")));
  REQUIRE(fs::file_size(path) == before);
  for (const auto& entry : fs::directory_iterator(dir.path))  // no temporary files left
    REQUIRE(entry.path().filename().string().find(".tmp") == std::string::npos);
}

TEST_CASE("cluster files give a server by name or file with a count and a fabric", "[topology]") {
  TempDir dir;
  std::string server_file = dir.file("server.json");
  save_topology_file(server_model("dgx-a100"), server_file);
  std::string by_file = dir.file("c1.json");
  write(by_file, json{{"format", "basin.cluster/1"}, {"server", server_file}, {"count", 4},
                      {"fabric", {{"kind", "rail"}}}}.dump());
  Topology t = load_any(by_file);
  REQUIRE(t.servers == 4);
  REQUIRE(gpus(t).size() == 32);
  std::string by_name = dir.file("c2.json");
  write(by_name, json{{"format", "basin.cluster/1"}, {"server", "bigbasin"}, {"count", 0}}.dump());
  try {
    load_any(by_name);
    FAIL("count 0 accepted");
  } catch (const InputError& e) {
    REQUIRE(e.origin == by_name);
    REQUIRE(e.path == "/count");
  }
}

TEST_CASE("writing to a pipe or device writes through it instead of replacing it", "[topology]") {
  basin::test::FifoReader fifo;
  basin::topo::write_file_atomically(fifo.path, "through the pipe\n");
  REQUIRE(fifo.drain() == "through the pipe\n");
  REQUIRE(fifo.still_a_fifo());
}

TEST_CASE("hand-written files: devices on a server described, bounded numbers, no nested clusters",
          "[topology][json]") {
  const nlohmann::json base = to_json(load_any("dgx-h100"));
  auto refused = [&](nlohmann::json j, const std::string& path_part, const std::string& expected_part) {
    try {
      from_json(j, "hand.json");
      FAIL("accepted");
    } catch (const InputError& e) {
      CAPTURE(e.what());
      REQUIRE(e.origin == "hand.json");
      REQUIRE(e.path.find(path_part) != std::string::npos);
      REQUIRE(e.expected.find(expected_part) != std::string::npos);
    }
  };
  nlohmann::json outside = base;
  outside["nodes"][0]["server"] = -1;  // a device outside every server: only switches may be
  refused(outside, "/server", "net_switch nodes only");
  nlohmann::json beyond = base;
  beyond["nodes"][0]["server"] = 3;  // the file describes one server
  refused(beyond, "/server", "from 0 to 0");
  nlohmann::json fast = base;
  fast["links"][0]["bandwidth_GBps"] = 1e300;  // would stall the engine's fair sharing
  refused(fast, "/bandwidth_GBps", "at most 1e9");
  // A cluster file names one server to copy, never another cluster.
  const nlohmann::json inner = to_json(load_any("dgx-h100:2"));
  const nlohmann::json nested = {{"format", kClusterFormat}, {"server", inner}, {"count", 2}};
  try {
    from_json(nested, "nested.json");
    FAIL("accepted");
  } catch (const InputError& e) {
    // Said of the server the file holds: its /servers.
    REQUIRE(e.origin == "nested.json (/server)");
    REQUIRE(e.path == "/servers");
    REQUIRE(e.expected.find("describes 2 servers (a cluster cannot nest another)") != std::string::npos);
  }
  // A fabric field the kind has no use for is an error, not ignored.
  const nlohmann::json unused = {{"format", kClusterFormat}, {"server", "dgx-h100"}, {"count", 2},
                                 {"fabric", {{"kind", "switch"}, {"oversubscription", 4}}}};
  refused(unused, "/fabric/oversubscription", "only with kind fat-tree or rail");
}

TEST_CASE("a cluster of one server is still a cluster: another cluster file cannot take it as its server",
          "[topology][json]") {
  // One server on a switch: servers == 1, but with the fabric's switch inside it.
  const nlohmann::json inner = to_json(load_any("dgx-h100:1"));
  const nlohmann::json nested = {{"format", kClusterFormat}, {"server", inner}, {"count", 2}};
  REQUIRE_THROWS_AS(from_json(nested, "nested.json"), InputError);
}

TEST_CASE("a cluster whose server reaches no NIC is refused at load, naming a GPU cut off", "[topology]") {
  TempDir dir;
  // Two Big Basin servers on one switch; server 1's NIC cabled to nothing.
  json doc = to_json(load_any("bigbasin:2"));
  std::string cut_nic;
  for (const auto& n : doc["nodes"])
    if (n["kind"] == "nic" && n["server"] == 1) cut_nic = n["id"];
  REQUIRE_FALSE(cut_nic.empty());
  json kept = json::array();
  for (const auto& l : doc["links"]) {
    const bool to_fabric = (l["from"] == cut_nic || l["to"] == cut_nic) &&
                           (l["kind"] == "ethernet" || l["kind"] == "infiniband");
    if (!to_fabric) kept.push_back(l);
  }
  REQUIRE(kept.size() < doc["links"].size());
  doc["links"] = kept;
  InputError e = load_error(dir, doc.dump());
  CAPTURE(e.what());
  REQUIRE(e.path.rfind("/nodes/", 0) == 0);
  REQUIRE(e.expected.find("(server 1)") != std::string::npos);
  REQUIRE(e.expected.find("reach no NIC") != std::string::npos);
  // Servers joined by no fabric need only their own GPUs joined.
  REQUIRE_NOTHROW(load_any("bigbasin:2,fabric=none"));
}
