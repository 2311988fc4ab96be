// basin topology: the hardware as a graph of devices and directed links.
//
// This is the one public header of the topology layer. Everything downstream (the simulator, the
// planner, the executor) sees hardware only through it: a server or a cluster is built from a
// built-in model, a cluster spec, a JSON file or the machine it runs on, and then queried for
// routes, bandwidths and nvidia-smi style path classes. It depends on nothing else of basin's.
#pragma once

#include <boost/graph/adjacency_list.hpp>
#include <nlohmann/json_fwd.hpp>

#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace basin::topo {

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

// Bad input (a file, a spec, a flag): names where it came from, the JSON path of the field and
// what was expected. The command line maps it to exit code 2.
struct InputError : std::runtime_error {
  InputError(std::string origin, std::string path, std::string expected);
  std::string origin;    // file name, or "--cluster" for a spec given on the command line
  std::string path;      // JSON pointer of the offending field ("/links/3/bandwidth_GBps"), or ""
  std::string expected;  // what was expected, and what was found
};

// ---------------------------------------------------------------------------------------------
// Nodes and links
// ---------------------------------------------------------------------------------------------

// c2c: NVLink-C2C, the coherent chip-to-chip link between a Grace CPU and its GPUs (GB200).
enum class LinkKind { nvlink, pcie, cpu_interconnect, ethernet, infiniband, c2c };

enum class NodeKind {
  gpu,
  cpu,          // a CPU socket / NUMA node; acts as the PCIe host bridge when none is modelled
  host_bridge,  // a PCIe root complex below a NUMA node (hwloc's HostBridge)
  pcie_switch,
  nvswitch,     // the NVSwitch fabric of one server, as one crossbar
  nic,
  net_switch,   // an Ethernet or InfiniBand switch of the cluster fabric
};

struct Node {
  std::string id;         // unique in the topology: "gpu3", or "s7/gpu3" inside a cluster
  NodeKind kind = NodeKind::gpu;
  std::string model;      // "Tesla P100-SXM2-16GB", "ConnectX-4", ...; may be empty
  std::string name;       // display name where one exists ("mlx5_0"); may be empty
  int server = 0;         // the server it belongs to; -1 for cluster fabric switches
  int index = 0;          // position among nodes of its kind in its server (GPU0..GPU7)
  int numa = -1;          // the NUMA node it is closest to; -1 when unknown
  double memory_GB = 0;   // GPU memory
  int cores = 0;          // CPU cores of a socket / NUMA node
  std::string pci_bus;    // "0000:06:00.0" where known
  // NICs: the line rate of the network port (per direction) and its network, which the cable to
  // the fabric's switch takes when servers are joined into a cluster.
  double port_GBps = 0;
  LinkKind port_kind = LinkKind::ethernet;
  // net_switch: sums allreduce data passing through it (InfiniBand SHARP, what NCCL's CollNet and
  // multi-server NVLS use), so a reduction tree of such switches carries each byte once per link.
  bool sharp = false;
};

struct Link {
  LinkKind kind = LinkKind::pcie;
  int generation = 0;         // NVLink or PCIe generation; 0 where it does not apply
  int width = 0;              // PCIe lanes
  int count = 1;              // bonded NVLinks, or parallel cables/ports aggregated
  double bandwidth_GBps = 0;  // per direction
  double latency_us = 0;      // one traversal of this hop
  int id = -1;                // dense index of this directed link: 0 .. num_links()-1
};

using Graph = boost::adjacency_list<boost::vecS, boost::vecS, boost::bidirectionalS, Node, Link>;
using Vertex = Graph::vertex_descriptor;
using Edge = Graph::edge_descriptor;

struct Topology {
  std::string name;
  std::string source;         // the file or cluster spec it was loaded from (load_any), for errors
  Graph graph;
  int servers = 1;            // number of servers it describes
  std::string fabric;         // how servers are connected ("switch", "fat-tree:2", ...), or ""
  std::unordered_map<std::string, Vertex> by_id;
};

const char* to_string(NodeKind kind);
const char* to_string(LinkKind kind);
std::optional<NodeKind> node_kind_from_string(std::string_view text);
std::optional<LinkKind> link_kind_from_string(std::string_view text);
std::vector<NodeKind> all_node_kinds();  // in the order the JSON format lists them
std::vector<LinkKind> all_link_kinds();

// Building. A duplex link adds one directed link each way with the same numbers.
Vertex add_node(Topology& topo, Node node);
void add_link(Topology& topo, Vertex a, Vertex b, Link link, bool duplex = true);
std::optional<Vertex> find_node(const Topology& topo, std::string_view id);
const Node& node(const Topology& topo, Vertex v);
int num_links(const Topology& topo);  // directed links

// GPUs ordered by (server, index): the rank order used everywhere downstream.
std::vector<Vertex> gpus(const Topology& topo);
std::vector<Vertex> nodes_of_kind(const Topology& topo, NodeKind kind, int server = -1);

// Structural checks that JSON loading cannot express: unique ids, bandwidths above 0 and at most
// kMaxLinkGBps, every device on one of the servers described (fabric switches may be on none,
// -1), every GPU reaching another GPU. Throws InputError naming `origin`.
inline constexpr double kMaxLinkGBps = 1e9;
void validate(const Topology& topo, const std::string& origin);

// ---------------------------------------------------------------------------------------------
// Link numbers: one source of truth for each (sources noted in link_specs.cc)
// ---------------------------------------------------------------------------------------------

double nvlink_GBps_per_link(int generation);   // per direction, one link
double pcie_GBps(int generation, int width);    // per direction, after line coding
double c2c_GBps();                               // NVLink-C2C, per direction, one CPU-GPU link
double default_latency_us(LinkKind kind);       // nominal per-hop latency

// ---------------------------------------------------------------------------------------------
// Built-in servers and clusters
// ---------------------------------------------------------------------------------------------

// "bigbasin", "dgx1", "dgx-a100", "dgx-h100", "dgx-b200", "gb200-nvl72", "pcie8".
std::vector<std::string> server_model_names();
std::string server_model_description(std::string_view name);
Topology server_model(std::string_view name);  // throws InputError for an unknown name

enum class FabricKind { none, single_switch, fat_tree, rail };

struct FabricSpec {
  FabricKind kind = FabricKind::single_switch;
  double oversubscription = 1;  // fat tree and rail: leaf downlink / uplink bandwidth
  int leaf_servers = 0;         // fat tree: servers under one leaf; 0 = 32 ports / NICs per server
  int spines = 2;               // fat tree and rail: spine switches
  bool sharp = false;           // every switch sums in the network (InfiniBand SHARP); IB NICs only
};

// The most servers a cluster may have: past it a spec or file is a typo ("bigbasin:3200000"),
// whose graph would take minutes and gigabytes to build, or overflow.
inline constexpr int kMaxServers = 65536;

struct ClusterSpec {
  std::string server;  // a built-in model name or a path to a one-server topology JSON
  int count = 1;       // 1 to kMaxServers
  FabricSpec fabric;
};

// "bigbasin:32", "dgx-h100:16,fabric=fat-tree:2,leaf-servers=4", "dgx1" (one server, no fabric),
// "dgx-h100:16,sharp=on" (InfiniBand switches that sum in the network).
ClusterSpec parse_cluster_spec(std::string_view spec, const std::string& origin = "--cluster");
std::string to_string(const ClusterSpec& spec);
Topology build_cluster(const ClusterSpec& spec);
Topology build_cluster(const Topology& server, int count, const FabricSpec& fabric);
// The same cluster with every NIC's port at `port_GBps` (a what-if): each Ethernet or InfiniBand
// link, cables and the switches' uplinks alike, scaled by the new rate over the old, so that an
// oversubscription stays what it was. The NICs must share one port rate (InputError naming
// `origin` otherwise, or where there are none).
void set_nic_port_rate(Topology& cluster, double port_GBps, const std::string& origin);

// A spec or a file: "bigbasin:32", "dgx1", or a path ending in .json (basin.topology/1 or
// basin.cluster/1).
Topology load_any(const std::string& spec_or_file);

// ---------------------------------------------------------------------------------------------
// JSON (format documented in docs/topology-format.md)
// ---------------------------------------------------------------------------------------------

inline constexpr const char* kTopologyFormat = "basin.topology/1";
inline constexpr const char* kClusterFormat = "basin.cluster/1";

nlohmann::json to_json(const Topology& topo);
Topology from_json(const nlohmann::json& doc, const std::string& origin);
Topology load_topology_file(const std::string& path);
// Writes atomically (temporary file, fsync, rename): a failed save leaves no partial file.
void save_topology_file(const Topology& topo, const std::string& path);
void write_file_atomically(const std::string& path, const std::string& contents);
// Throws the InputError write_file_atomically would for a missing or unwritable directory or a
// path that is a directory, writing nothing: a command that writes several files checks them
// all first, so that one bad path leaves none of them written.
void require_writable(const std::string& path);
// The whole of a file the user named: throws InputError naming `path`, `what` (such as "a
// basin.plan/1 file") and why when it is missing, a directory or unreadable.
std::string read_text_file(const std::string& path, const std::string& what);
// Every key of the JSON object `obj` (at `path` in the file `origin`) must be one of `known`: a
// misspelt optional field would otherwise read as absent and a default be taken silently. Throws
// InputError naming the key and the known fields. Not an object: nothing to check here (the
// caller's own reader names the wrong type).
void require_known_fields(const nlohmann::json& obj, const std::vector<std::string>& known,
                          const std::string& origin, const std::string& path);

// ---------------------------------------------------------------------------------------------
// Queries
// ---------------------------------------------------------------------------------------------

struct Route {
  std::vector<Edge> links;      // directed links from source to destination, in order
  double bandwidth_GBps = 0;    // the narrowest link on the route (0 when unreachable)
  double latency_us = 0;        // sum of hop latencies
  bool reachable = false;
};

// The widest (bottleneck-bandwidth) route, and among the widest the one of least latency. GPUs
// other than the endpoints never forward traffic, and a route between two devices of the same
// server never leaves the server.
Route route(const Topology& topo, Vertex from, Vertex to);
// result[i] == route(topo, from, to[i]), found with one widest-path search plus one least-latency
// search per distinct width among the destinations (a handful of link speeds), instead of two
// searches per destination.
std::vector<Route> routes_from(const Topology& topo, Vertex from, const std::vector<Vertex>& to);

// The two passes of route(), from one source to every vertex, for callers that compose routes
// from pieces: the widest bottleneck to each vertex (0: unreachable), and the least-latency
// routes over links at least min_GBps wide. Same transit rule (no GPU but the source forwards).
std::vector<double> widest_from(const Topology& topo, Vertex from);
struct LatencyTree {
  Vertex from = 0;
  std::vector<double> latency_us;  // by vertex; infinity when unreachable
  std::vector<Edge> via;           // the link each vertex is reached by
  bool reaches(Vertex v) const;
  Route route_to(const Graph& g, Vertex to) const;  // links and latency (width left 0)
};
LatencyTree least_latency_from(const Topology& topo, Vertex from, double min_GBps);

// One server's devices and the links among them as a topology of its own. Its links keep the ids
// they have in the whole cluster (so routes found here name cluster links), and to_cluster maps
// its vertices back. Routes inside a server never leave it, so they can be found on this small
// graph in time that does not grow with the cluster.
struct ServerView {
  Topology topo;
  std::vector<Vertex> to_cluster;  // view vertex -> cluster vertex
};
ServerView server_view(const Topology& topo, int server);
// The devices of a server with a link leaving it (its NICs, as a rule): every route to another
// server starts at one of them.
std::vector<Vertex> server_boundary(const Topology& topo, int server);
// What joins the servers: every node outside all servers (the fabric's switches) and every
// server's boundary devices, with the links among them; ids kept as in server_view.
ServerView fabric_view(const Topology& topo);
// Only the nodes outside all servers (the fabric's switches) and the links among them.
ServerView switch_view(const Topology& topo);

// nvidia-smi topo -m classes, best to worst.
enum class PathClass {
  self,     // X: the device itself
  nvlink,   // NV#: a bonded set of # NVLinks, direct or through the NVSwitch crossbar
  pix,      // at most one PCIe switch
  pxb,      // several PCIe switches, no host bridge
  phb,      // through one PCIe host bridge (the CPU)
  node,     // between host bridges inside one NUMA node
  sys,      // across the CPU interconnect between NUMA nodes (QPI/UPI/xGMI)
  net,      // different servers: only through the network
};

struct PathInfo {
  PathClass cls = PathClass::sys;
  int nvlinks = 0;  // for PathClass::nvlink
};

PathInfo path_class(const Topology& topo, Vertex a, Vertex b);
std::string path_code(const PathInfo& info);  // "X", "NV4", "PIX", ..., "NET"
const char* path_legend();                     // the legend printed under the matrix

// The NVSwitch crossbar that can sum in the switch (NVLink SHARP, what NCCL's NVLS algorithm uses:
// third-generation NVSwitch and later, reached over NVLink 4 or later) and to which every GPU in
// `gpus` has NVLinks of its own, both ways; nullopt where there is none: GPUs on several servers,
// an older NVSwitch (NVLink 3 and before), NVLinks straight between GPUs, fewer than two GPUs.
std::optional<Vertex> nvlink_sharp_switch(const Topology& topo, const std::vector<Vertex>& gpus);

// An in-network reduction tree (InfiniBand SHARP) over the fabric switches that sum, joining the
// given devices (the NICs one channel leaves its servers by): `up` lists the tree's links as
// (child, parent) pairs, from each device's link to its switch up to the root; the sums flow up
// them and the result back down the reverse links. The root is a summing switch that all devices
// reach through summing switches only, in the fewest levels; `which` picks among equally low roots
// (channel c takes root c modulo their number, spreading the channels over a fat tree's spines).
// nullopt when there is none: no summing switch, or a device not below one.
struct SharpTree {
  Vertex root = 0;
  std::vector<std::pair<Vertex, Vertex>> up;  // (child, parent), devices' links first
  int levels = 0;                             // links from the deepest device to the root
};
std::optional<SharpTree> sharp_tree(const Topology& topo, const std::vector<Vertex>& devices, int which = 0);

// Bandwidth (GB/s, each direction) across the cut between the first and second half of the
// servers (or of the GPUs of a single server), as the maximum flow between the halves.
double bisection_bandwidth_GBps(const Topology& topo);

// ---------------------------------------------------------------------------------------------
// Text renderings
// ---------------------------------------------------------------------------------------------

std::string render_tree(const Topology& topo);
std::string render_matrix(const Topology& topo, int server = 0);
std::string render_dot(const Topology& topo);
std::string render_summary(const Topology& topo);

// ---------------------------------------------------------------------------------------------
// Discovery of the machine it runs on
// ---------------------------------------------------------------------------------------------

struct DiscoverOptions {
  std::string hwloc_xml;  // read this hwloc XML export instead of the live machine
  bool use_nvml = true;   // load NVML at run time for GPU names, memory and NVLinks
};

struct DiscoverReport {
  Topology topo;
  std::vector<std::string> notes;  // what was found and what was not (driver absent, ...)
};

DiscoverReport discover(const DiscoverOptions& options);

}  // namespace basin::topo
