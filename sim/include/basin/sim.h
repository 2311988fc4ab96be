// basin simulator: how long one data-parallel training iteration takes on a topology.
//
// Collectives are schedules of point-to-point transfers between concrete GPUs (collectives.cc),
// timed by a flow-level network engine over the topology's links (network.cc): flows sharing a
// link share its bandwidth max-min fairly. A collective's time is affine in its message size for
// a fixed schedule, so each (algorithm, GPU set) is solved once and every gradient bucket after
// that costs O(1) (collective_cost.cc). The iteration model (iteration.cc) overlaps bucket
// allreduces with backward compute from a device profile, and checks the input pipeline.
#pragma once

#include <basin/topology.h>

#include <cstdint>
#include <map>
#include <unordered_map>
#include <unordered_set>
#include <memory>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

namespace basin::sim {

// ---------------------------------------------------------------------------------------------
// Collective schedules
// ---------------------------------------------------------------------------------------------

// One point-to-point transfer of `fraction` of the collective's message (bytes = fraction * n).
// `reduce`: the receiver adds what arrives into its own buffer (costs reduction time).
struct Transfer {
  int src = 0;  // positions in the schedule's rank list
  int dst = 0;
  double fraction = 0;
  bool reduce = false;
  // For a transfer between servers, the NICs it leaves and enters by, as positions in each
  // server's NIC list (Network::nics); -1 (both) leaves the choice to the route (Network::route).
  // Set by the schedules that place NCCL's channels on NICs (nccl_channels.cc).
  int exit_nic = -1;
  int entry_nic = -1;
};

// Transfers that run at the same time; the step ends when the last one ends. A step that a
// schedule repeats identically (a ring's 2(p-1) steps) is stored once with its repeat count and
// solved once.
struct Step {
  std::vector<Transfer> transfers;
  int repeat = 1;
  // A pipelined step (a tree's or a chain's chunks flowing through several ranks at once) pays
  // its route latency and per-message overhead once per hop of the pipeline's depth, and its
  // bandwidth term once: the steady state in which every link of the pipeline is busy.
  int latency_hops = 1;
};

struct Schedule {
  std::string algorithm;
  int ranks = 0;
  std::vector<Step> steps;
};

enum class Algorithm {
  ring, halving_doubling, recursive_doubling, tree, bcube, torus_2d, hierarchical, nvls, nvls_tree, collnet_chain
};

std::vector<std::string> algorithm_names();  // as accepted by --algorithm
// Throws topo::InputError naming `origin` for an unknown name.
Algorithm algorithm_from_string(const std::string& name, const std::string& origin = "--algorithm");
const char* to_string(Algorithm a);

// Allreduce over ranks 0..p-1.
//  ring:               reduce-scatter then allgather around a ring: 2(p-1) steps of n/p.
//  halving_doubling:   Rabenseifner: reduce-scatter by recursive halving, allgather by
//                      recursive doubling, 2 log2(p) steps, 2(p-1)/p n bytes per rank. For p not
//                      a power of two, Gloo's binary blocks: ranks split into power-of-two blocks
//                      (p's binary digits, largest first), each block reduce-scatters inside
//                      itself, the blocks' partial results flow from the smallest block up to the
//                      largest and the results back down, then each block allgathers.
//  recursive_doubling: log2(p) steps exchanging the whole vector; for p not a power of two the
//                      extra r = p - 2^floor(log2 p) ranks first fold into partners and are sent
//                      the result at the end (Thakur et al. 2005).
//  tree:               NCCL's double binary tree: two binary trees, each reducing half of the
//                      vector up to its root and broadcasting it down, pipelined in chunks, the
//                      second tree placed so that the first's inner ranks are its leaves.
//  bcube:              Gloo's bcube, generalised to mixed radix: p = d1 * d2 * ... (digits at
//                      most `base`); reduce-scatter along each digit in turn among the d_i ranks
//                      that differ only in that digit, then allgather in reverse.
//  torus_2d:           ranks as an x by p/x grid (rank = row * x + column): reduce-scatter along
//                      the rows, allreduce each 1/x piece down the columns, allgather along the
//                      rows; each phase a ring (Mikami et al. 2018, Ying et al. 2018).
//  nvls:               the NVSwitch sums (NVLink SHARP, NCCL's NVLS; nvls_cost, in_switch.cc): each
//                      GPU has the switch fetch its 1/p of every GPU's vector, summed in flight,
//                      and store the sum to all GPUs; pipelined, each GPU's NVLinks carry
//                      (1 + 1/p) n each way. Every rank on one such switch
//                      (topo::nvlink_sharp_switch). Across servers (NCCL's NVLS with IB SHARP), each
//                      server's switch sums its GPUs' vectors and the fabric's switches sum the
//                      servers' (nvls_parts): every GPU of a server heads one channel whose
//                      1/channels of the sum goes up an aggregation tree through its own NIC and
//                      comes back down; a fabric that sums (topo::sharp_tree) is needed.
//  nvls_tree:          NCCL's NVLS-tree, for such servers (nvls_tree_parts; on one it is nvls): each
//                      server's switch sums its GPUs' vectors, every GPU of a server heads one
//                      channel whose 1/channels of the sum crosses between servers on NCCL's double
//                      binary tree, and the switch stores the result to all; pipelined, the
//                      slower of the two parts sets the rate.
//  collnet_chain:      NCCL's CollNet chain, between servers on a fabric that sums (InfiniBand
//                      SHARP; collnet_chain_cost): per channel (one per GPU of a server, each
//                      1/channels of the vector) a chain through each server's GPUs to its c-th
//                      GPU, which sends the chain's sum through its own NIC up channel c's
//                      aggregation tree and passes the total back down the chain. On one server,
//                      the chains alone (NCCL's tree there: CollNet needs two servers).
Schedule ring_allreduce(int p);
Schedule halving_doubling_allreduce(int p);
Schedule recursive_doubling_allreduce(int p);
Schedule tree_allreduce(int p);
Schedule bcube_allreduce(int p, int base = 4);
Schedule torus_2d_allreduce(int p, int x);
// The digits bcube uses for p ranks: p's prime factors merged greedily while a digit stays <= base.
std::vector<int> bcube_digits(int p, int base);
// The grid width torus_2d uses when not told: the divisor of p closest to sqrt(p), not below it.
int torus_2d_default_width(int p);
// parent[r] in NCCL's binary tree over p ranks (-1 for the root), tree 0 or 1 of the pair.
std::vector<int> binary_tree_parents(int p, int which);
Schedule allreduce_schedule(Algorithm a, int p);  // flat algorithms; torus_2d uses the default width
// NCCL's ring across servers (nccl_channels.cc): one ring per channel, `channels` of them (0: as
// many as the most ranks on a server), each carrying 1/channels of the vector. `servers` lists
// each server's ranks in their ring order inside it (at least one on each, counts may differ);
// channel c visits every server's list rotated to start at its (c mod its ranks)-th rank, so it enters a server there and
// leaves from the rank before: the channels cross between servers on different GPUs, and so
// through different NICs, as NCCL's per-channel rings do (src/graph/search.cc); channel_rings_cost
// also places them on NICs. One server: the plain ring, one channel.
Schedule channel_rings_allreduce(const std::vector<std::vector<int>>& servers, int channels = 0);
// Ring allreduce over several rings at once, each with 1/rings of the vector; each ring is a rank
// order, a permutation of 0..p-1 (throws std::invalid_argument otherwise).
Schedule rings_allreduce(const std::vector<std::vector<int>>& rings);
// NCCL's rings inside one server of point-to-point NVLinks (nvlink_rings.cc): link-disjoint
// Hamiltonian cycles over the direct GPU-to-GPU NVLinks among `gpus`, as many as the links hold
// (or as a bounded search finds on large meshes), each in both directions (on two GPUs, one ring
// per link), as rank orders (positions in `gpus`). Empty where there is none: GPUs on an NVSwitch
// or on PCIe only, or direct NVLinks that close no cycle through all of `gpus`.
std::vector<std::vector<int>> nvlink_rings(const topo::Topology& topo, const std::vector<topo::Vertex>& gpus);
// NCCL's tree across servers (same file, same `servers`): per channel (`channels`, 0: as many as
// the most ranks on a server; each 1/channels of the vector), a chain through each server's ranks
// ending at its (c mod its ranks)-th rank, which joins NCCL's double binary tree between the servers
// (binary_tree_parents over servers, half the channel's share on each tree). One pipelined step:
// 2 (ranks per server - 1 + tree height) hops of latency, every chain hop and tree edge
// streaming at once.
Schedule channel_trees_allreduce(const std::vector<std::vector<int>>& servers, int channels = 0);
// The part of NCCL's NVLS-tree between servers (same file, same `servers`): per channel (one per
// rank of a server, each 1/channels of the vector) the double binary tree between the servers'
// c-th ranks, with no chain inside a server (there the switch sums: nvls_tree_parts).
Schedule head_trees_allreduce(const std::vector<std::vector<int>>& servers);
// Appends the allgather that undoes a reduce-scatter: its steps in reverse order, sending the
// same pieces back without reducing (halving-doubling, bcube).
void append_mirrored_allgather(Schedule& s, const std::vector<Step>& reduce_scatter);

// ---------------------------------------------------------------------------------------------
// Network engine
// ---------------------------------------------------------------------------------------------

struct NetworkParams {
  // Software cost of sending one message, paid once per step; the messages a step sends from one
  // server to others queue in that host's network stack, so a step pays it once per message
  // leaving its busiest server (8 GPUs of a server each talking to another server pay 8x).
  double per_message_overhead_us = 0;
  double reduce_GBps = 0;              // rate of the receiver's reduction (0: free)
  // Time transfers at the links' line rates instead of the rates GPUs drive them at
  // (achievable_share): the topology's own figures, as `basin topo --route` shows them.
  bool line_rate = false;
};

// The share of a link's line rate that transfers between GPUs reach, which every schedule the
// engine times moves data at. NVLink: the GB/s per link NCCL's topology model counts on for
// the GPU generation that brought that NVLink generation (NCCL 2.28 src/graph/topo.h,
// SMxx_NVLINK_BW: P100 18 of 20, V100 and A100 20 of 25, H100 20.6 of 25, B200 40.1 of 50),
// which is what NCCL's ring measures (about 370 GB/s over an H100's 18 links, NVIDIA/nccl-tests#212)
// and what any copy over those links gets at best. PCIe: the share of its bytes that are
// payload (pcie_payload_share). Other links: 1 (their line rate; NICs are known to run 6-8%
// below it, docs/decisions.md).
double achievable_share(const topo::Link& link);
// PCIe of a generation: 128-byte payloads in packets of 24 bytes more (Gen1-5; 16 on Gen6),
// 0.842 of line rate, which published host-device copies reach to within a few percent.
double pcie_payload_share(int generation);
// The topology with every link at line rate x achievable_share: what Network times.
topo::Topology achievable_view(const topo::Topology& topo);

// Time of a collective of n bytes: latency_s + n * seconds_per_byte (exact for one schedule:
// every flow's size scales with n, so every completion time does).
// A named part of a collective's time ("network", "pcie staging", ...), affine like the whole.
struct CostTerm {
  std::string name;
  double latency_s = 0;
  double seconds_per_byte = 0;
  double time_s(double bytes) const { return bytes > 0 ? latency_s + bytes * seconds_per_byte : 0; }
};

struct CollectiveCost {
  double latency_s = 0;
  double seconds_per_byte = 0;
  // For each link the collective uses (by dense link id): seconds it is busy per byte of message,
  // for the link-utilization counters of the trace.
  std::unordered_map<int, double> busy_s_per_byte;
  // The phases the time is made of, summing to latency_s and seconds_per_byte; empty when the
  // collective is one undivided network phase.
  std::vector<CostTerm> terms;
  // Messages under `small_below_bytes` take another schedule (Gloo reduces buffers under 256 KiB
  // on the host instead of with NCCL; NCCL's tuner takes LL for small ones); null when one
  // schedule serves every size. `small` may have its own `small`, below a smaller size.
  std::shared_ptr<const CollectiveCost> small;
  double small_below_bytes = 0;
  // The cost that applies to a message of this size (this one or one down the `small` chain).
  const CollectiveCost& for_bytes(double bytes) const {
    return small && bytes < small_below_bytes ? small->for_bytes(bytes) : *this;
  }
  double time_s(double bytes) const {
    const CollectiveCost& c = for_bytes(bytes);
    return bytes > 0 ? c.latency_s + bytes * c.seconds_per_byte : 0;
  }
  // A phase that runs after this one; one size class at a time (std::invalid_argument when
  // either has a `small`).
  void add(const CollectiveCost& phase);
  // The same cost with every term of that name taken out (what the time would be without it).
  CollectiveCost without(const std::string& term) const;
};
// `c` as one term of the given name, for composing phases with CollectiveCost::add.
CollectiveCost named(CollectiveCost c, const std::string& name);
// For every message size the fastest of `costs`: the lower envelope of their lines (of each
// one's pieces where it already changes with size, through `small`), as a chain of `small`
// costs. What a tuner that picks per size among them runs (NCCL's, choosing LL, LL128 or
// Simple). Throws std::invalid_argument when `costs` is empty, or a piece has a latency or rate
// that is not finite.
CollectiveCost fastest_of(const std::vector<CollectiveCost>& costs);
// For every message size priced[i] where rank_by[i] is the fastest (the same number of each):
// what a tuner runs that chooses by one model (NCCL's corrected tables) and runs at the cost of
// another. fastest_of(costs) is fastest_of(costs, costs).
CollectiveCost fastest_of(const std::vector<CollectiveCost>& rank_by, const std::vector<CollectiveCost>& priced);
// The same envelope as (index into `costs` of the fastest, from which message size in bytes),
// in increasing sizes from 0: for a tuner that chooses by one model and runs at the cost of
// another (NCCL's by its corrected tables; plan::nccl_choice_cost).
std::vector<std::pair<size_t, double>> fastest_segments(const std::vector<CollectiveCost>& costs);

// For each link kind ("nvlink", "pcie", "ethernet", ...), the seconds per message byte that its
// busiest link is busy.
std::map<std::string, double> busiest_links(const topo::Topology& topo, const CollectiveCost& cost);
// The utilization (0..1) of those links while a collective of `bytes` runs.
std::map<std::string, double> link_utilization(const std::map<std::string, double>& busiest,
                                               const CollectiveCost& cost, double bytes);

// Flows routed over the topology's directed links. Routes are computed once per GPU pair.
class Network {
 public:
  // Keeps a reference to `topo`, or (links at achievable rates, unless params.line_rate) its own
  // achievable_view of it; topology() is what it times.
  Network(const topo::Topology& topo, NetworkParams params = {});
  Network(const topo::Topology&& topo, NetworkParams params = {}) = delete;  // it may keep a reference
  // Time of a schedule whose rank i runs on gpus[i] (topology vertices).
  CollectiveCost cost(const Schedule& s, const std::vector<topo::Vertex>& gpus);
  // Makespan in seconds of concurrent flows of the given sizes between vertex pairs, with
  // max-min fair sharing and re-sharing as flows finish (no latency).
  double transfer_time_s(const std::vector<std::pair<topo::Vertex, topo::Vertex>>& pairs,
                         const std::vector<double>& bytes);
  // Finds every missing route among `pairs` at once: one search per source for the pairs that
  // cross servers, and searches on the server's own small graph for pairs inside one server.
  void find_routes(const std::vector<std::pair<topo::Vertex, topo::Vertex>>& pairs);
  struct RouteInfo {
    std::vector<int> links;  // dense link ids, source to destination
    double latency_s = 0;
    double bandwidth_GBps = 0;  // the narrowest link; 0 when there is no route
  };
  // The route a transfer from a to b takes (found once, then cached); throws topo::InputError
  // when there is none.
  const RouteInfo& route(topo::Vertex a, topo::Vertex b);
  // Bottleneck bandwidth of the route from a to b, in GB/s (cached like every route).
  double route_GBps(topo::Vertex a, topo::Vertex b);
  // The NIC a GPU's own traffic leaves its server by (see own_nic); throws topo::InputError when
  // its server has none.
  topo::Vertex own_nic_of(topo::Vertex gpu);
  // A server's NICs (the devices its routes leave by), in the order Transfer::exit_nic and
  // entry_nic count them.
  const std::vector<topo::Vertex>& nics(int server);
  // Positions in nics() of the NICs as close to `gpu` as its closest: routes to them equally
  // wide (the NIC's port counted) and of equal latency (the same links' kinds and hops, as NICs
  // beside a GPU on one PCIe switch are), the GPU's own NIC (own_nic) first if it is one of them. NCCL spreads a GPU's
  // channels over these (src/graph/search.cc, ncclTopoSelectNets). Empty when the server has
  // no NIC the GPU reaches.
  const std::vector<int>& closest_nics(topo::Vertex gpu);
  // The route from a to b (GPUs of different servers) through the NIC at position `exit` of a's
  // server and `entry` of b's; throws topo::InputError when there is none.
  const RouteInfo& route_through(topo::Vertex a, topo::Vertex b, int exit, int entry);
  // Its bottleneck in GB/s, 0 where there is none (no throw).
  double route_through_GBps(topo::Vertex a, topo::Vertex b, int exit, int entry);
  const topo::Topology& topology() const { return *topo_; }

 private:
  struct View {
    topo::ServerView view;
    std::vector<topo::Vertex> boundary;  // cluster vertices where routes leave the server
    std::vector<topo::Vertex> gpus;      // GPUs of the server in rank order (index, then file order)
  };
  // Whether `nic` is `gpu`'s own among its server's equally placed NICs: GPU i of g takes the
  // NIC at position i * nics / g in the server's list (NIC k beside GPU k on DGX A100/H100, GPUs
  // 2k and 2k+1 on DGX-1). Among routes
  // equally wide and fast, the one through the GPU's own NIC wins, as NCCL and rail-optimized
  // fabrics pair them; otherwise GPUs sharing a PCIe switch would all leave by its first NIC.
  bool own_nic(const View& v, topo::Vertex gpu, topo::Vertex nic) const;
  View& server(int index);
  View& fabric();
  // Max-min fair makespan of flows of the given sizes along the given routes.
  double solve(const std::vector<const RouteInfo*>& routes, const std::vector<double>& bytes);
  // The fabric seen from its switches, for composing NIC-to-NIC routes without searching the
  // whole fabric once per NIC (see routes.cc). Empty `attach` when a boundary device does not
  // hang off exactly one switch, and then whole-fabric searches are used.
  struct Attachment {
    topo::Vertex sw = 0;  // in the switch view
    int up_id = -1, down_id = -1;
    double up_GBps = 0, down_GBps = 0, up_us = 0, down_us = 0;
  };
  // One side of a composed route: a boundary device, the route between it and a GPU of its
  // server, and how it hangs off its switch (cached per GPU so composing does no lookups).
  struct End {
    topo::Vertex device;
    const RouteInfo* inside;
    const Attachment* link;
    bool own_nic;  // the device is the GPU's own NIC (own_nic)
  };
  struct Switches {
    topo::ServerView view;
    std::unordered_map<topo::Vertex, std::vector<End>> starts, ends;  // by GPU
    std::unordered_map<topo::Vertex, Attachment> attach;  // by cluster vertex of a boundary device
    std::map<topo::Vertex, std::vector<double>> widest;   // by source switch (view vertex)
    std::map<std::pair<topo::Vertex, double>, topo::LatencyTree> trees;  // (source, level)
    std::unordered_map<topo::Vertex, int> place;  // boundary device -> its place among its switch's
  };
  // The links from switch `from` to switch `to` (switch-view vertices) over links at least
  // `level` wide, of least latency; among equally short ways, the one destination-based
  // routing takes to a device at `place` on `to` (InfiniBand's fat-tree routing, d-mod-k).
  std::vector<int> between_switches(topo::Vertex from, topo::Vertex to, double level, int place);
  Switches& switches();
  void compose_across(topo::Vertex a, topo::Vertex b);  // needs switches().attach
  // The fabric's route between boundary devices x and y of different servers (cached).
  const RouteInfo& across_fabric(topo::Vertex x, topo::Vertex y);
  // route_through's route, width 0 where there is none.
  const RouteInfo& through(topo::Vertex a, topo::Vertex b, int exit, int entry);
  std::unordered_set<topo::Vertex> exits_done_, entries_done_;  // inside pieces already found
  // Routes from a to each of `to`, all found on one view (a server's or the fabric's).
  void find_in_view(View& v, topo::Vertex a, const std::vector<topo::Vertex>& to);
  void store(topo::Vertex a, topo::Vertex b, const topo::Graph& graph, const topo::Route& r);
  static std::uint64_t key(topo::Vertex a, topo::Vertex b) {
    return (static_cast<std::uint64_t>(a) << 32) | static_cast<std::uint64_t>(b);
  }
  std::shared_ptr<const topo::Topology> own_view_;  // achievable_view, where it differs
  const topo::Topology* topo_;
  NetworkParams params_;
  std::vector<double> capacity_Bps_;  // by link id
  std::unordered_map<std::uint64_t, RouteInfo> routes_;
  std::map<std::tuple<topo::Vertex, topo::Vertex, int, int>, RouteInfo> routes_through_;
  std::unordered_map<topo::Vertex, std::vector<int>> closest_nics_;  // by GPU
  std::map<int, View> views_;             // by server; the fabric under -1
  std::vector<topo::Vertex> in_view_;     // cluster vertex -> its vertex in its server's view
  std::vector<topo::Vertex> in_fabric_;   // cluster vertex -> its vertex in the fabric view
  std::unique_ptr<Switches> switches_;
};

// How the hierarchical allreduce moves gradients between servers. Gloo's CUDA allreduce over TCP
// (what Goyal et al. ran: Caffe2's Gloo ops take CudaHostWorkspace unless the transport is
// ibverbs) stages every buffer through pinned host memory: NCCL reduce onto GPU 0, a device-to-
// host copy, the inter-server algorithm on host buffers with the reductions on the CPU, a host-to-
// device copy and an NCCL broadcast; buffers under 256 KiB skip NCCL and copy every GPU's buffer
// to the host instead (gloo/cuda_allreduce_halving_doubling.cc and cuda_collectives_host.h at
// commit 44cf94b, Sept. 2017; Goyal et al. sec. 4.1 states the same threshold). See staging.cc.
struct HostStaging {
  enum class Mode { automatic, on, off };
  // automatic: staged when the servers' NICs are Ethernet (TCP sockets: a NIC without RDMA cannot
  // move GPU memory, so the data must pass through host memory).
  Mode mode = Mode::automatic;
  // gloo/algorithm.cc kOnDeviceThreshold (2017): 256 KiB.
  double device_reduce_min_bytes = 256 * 1024;
  // One CPU core's copy rate out of DRAM, bytes copied per second. Gloo reduces and copies host
  // buffers on the one thread that runs the algorithm (a plain loop, gloo/math.h sum). Published
  // single-thread memcpy on the Broadwell generation of Big Basin's Xeon E5 v4 head node: a 25 MB
  // memcpy in 4.5 ms on Broadwell-E, 5.6 GB/s (stackoverflow.com/questions/39260020); dual-socket
  // Xeon E5-2650 v2 / E5-2670: 6.2 / 5.9 GB/s (CacheBench, community.intel.com thread 978734).
  double core_copy_GBps = 5.6;
  // A sum x += y moves three streams (read x, read y, write x) where a copy moves two, at the same
  // single-core memory throughput: bytes of x reduced per second.
  double core_reduce_GBps() const { return core_copy_GBps * 2.0 / 3.0; }
};

// Whether `staging` stages through host memory on this topology (resolves `automatic`).
bool stages_through_host(const topo::Topology& topo, const HostStaging& staging);

// Hierarchical 3-phase allreduce of Goyal et al. 2017: reduce inside each server to a leader,
// allreduce among leaders with `inter`, broadcast inside each server. gpus must be grouped by
// server (rank order). Staged through host memory when `staging` says so (staging.cc).
CollectiveCost hierarchical_cost(Network& net, const std::vector<topo::Vertex>& gpus,
                                 Algorithm inter, const HostStaging& staging = {});
// Gloo's host-staged form of it, whatever the NICs (staging.cc).
CollectiveCost staged_hierarchical_cost(Network& net, const std::vector<topo::Vertex>& gpus,
                                        Algorithm inter, const HostStaging& staging);
// A flat schedule run Gloo's way over TCP: each GPU's buffer copied to its server's host memory,
// the schedule between the ranks (network phase routed GPU to GPU, which crosses the same PCIe
// and NIC links), its sums and copies on the CPU, and the copies back.
CollectiveCost staged_flat_cost(Network& net, const std::vector<topo::Vertex>& gpus,
                                const Schedule& s, const HostStaging& staging);
// channel_rings_allreduce / channel_trees_allreduce on `gpus`, each server's GPUs in the order
// whose narrowest hop is widest (the hierarchical allreduce's chain), with a whole number of
// channels for every server's GPUs and for the NICs closest to them (their least common
// multiple where that is 64 or fewer, else the largest count), and each channel's crossing
// placed on one of its GPU's closest NICs, the channels spread over them
// (Network::closest_nics), as NCCL spreads them, where that way is as wide as the route's own.
CollectiveCost channel_rings_cost(Network& net, const std::vector<topo::Vertex>& gpus);
// The ring allreduce NCCL runs on one server: over nvlink_rings, or where there are none the ring
// in rank order.
CollectiveCost server_rings_cost(Network& net, const std::vector<topo::Vertex>& gpus);
// NCCL's tree on one server: per channel a chain along each of nvlink_rings, the vector split
// evenly among them; where there are none, the binary tree in rank order.
CollectiveCost server_trees_cost(Network& net, const std::vector<topo::Vertex>& gpus);
CollectiveCost channel_trees_cost(Network& net, const std::vector<topo::Vertex>& gpus);
// NVLink SHARP allreduce on the NVSwitch all of `gpus` hang off (see Algorithm::nvls); throws
// topo::InputError naming `origin` when there is no such switch.
CollectiveCost nvls_cost(Network& net, const std::vector<topo::Vertex>& gpus,
                         const std::string& origin = "--algorithm");
// NCCL's NVLS-tree on `gpus` (the same number, two or more, on each server, each server's on a
// switch that sums), as its two parts, which run at once on different links: every server's NVLS
// (the slowest) and the heads' trees between servers (head_trees_allreduce, each GPU through its
// own NIC; none on one server, where this is NVLS). `combined` gives the rate of the slower, each
// part first divided by its efficiency. Throws topo::InputError naming `origin` where it cannot run.
struct NvlsTreeParts {
  CollectiveCost in_servers, between_servers;
  int servers = 0;  // the servers the GPUs are on
  CollectiveCost combined(double in_servers_efficiency = 1, double between_servers_efficiency = 1) const;
};
// Why NVLS-tree cannot run on `gpus` ("" when it can: the same number, two or more, on each
// server, each server's on a switch that sums; one server included, where it is NVLS).
std::string nvls_tree_refusal(const topo::Topology& topo, const std::vector<topo::Vertex>& gpus,
                              const char* algorithm = "nvls-tree");
NvlsTreeParts nvls_tree_parts(Network& net, const std::vector<topo::Vertex>& gpus,
                              const std::string& origin = "--algorithm");
CollectiveCost nvls_tree_cost(Network& net, const std::vector<topo::Vertex>& gpus,
                              const std::string& origin = "--algorithm");
// Sums in the network between servers (InfiniBand SHARP; in_network.cc). Why `algorithm` cannot
// use it on `gpus` ("" when it can): fabric switches that sum (topo::sharp_tree) above every NIC of
// the servers the GPUs are on.
std::string sharp_refusal(const topo::Topology& topo, const std::vector<topo::Vertex>& gpus, const char* algorithm);
// Why NVLS cannot run on `gpus` ("" when it can): on one server, all on one switch that sums; on
// several, what NVLS-tree needs and fabric switches that sum as well (NCCL runs NVLS across
// servers only with SHARP).
std::string nvls_refusal(const topo::Topology& topo, const std::vector<topo::Vertex>& gpus);
// NVLS on one server or several (see Algorithm::nvls), as nvls-tree's two parts: every server's
// NVLS, and between servers per channel c the c-th GPU of each server sending its 1/channels of
// its server's sum through its own NIC up channel c's aggregation tree and the total back down.
NvlsTreeParts nvls_parts(Network& net, const std::vector<topo::Vertex>& gpus,
                         const std::string& origin = "--algorithm");
// Why CollNet's chain cannot run on `gpus` ("" when it can): unequal GPU counts on the servers,
// or, across servers, no summing fabric above their NICs.
std::string collnet_chain_refusal(const topo::Topology& topo, const std::vector<topo::Vertex>& gpus);
// NCCL's CollNet chain (see Algorithm::collnet_chain; on one server the chains alone, NCCL's tree
// there); throws topo::InputError naming `origin` where it cannot run: unequal GPU counts on the
// servers, no summing fabric.
CollectiveCost collnet_chain_cost(Network& net, const std::vector<topo::Vertex>& gpus,
                                  const std::string& origin = "--algorithm");
// Any algorithm; staged through host memory where `staging` says so and the GPUs span servers.
CollectiveCost allreduce_cost(Network& net, const std::vector<topo::Vertex>& gpus, Algorithm a,
                              Algorithm inter = Algorithm::halving_doubling,
                              const HostStaging& staging = {});

}  // namespace basin::sim
