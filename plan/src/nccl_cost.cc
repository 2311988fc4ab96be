// NCCL's allreduce as basin prices it: NCCL's ring, tree, NVLS, NVLS-tree and CollNet chain on
// the engine's routes, each protocol at NCCL's efficiency and latency constants (tuning.cc), and
// what NCCL's tuner picks when only the algorithm is set, or nothing: it ranks by its own model,
// corrected by size, and runs at basin's cost of the pick. `basin select`, `basin plan` and
// `basin sim --algorithm nccl*` all price NCCL here.
#include <basin/plan.h>

#include <algorithm>
#include <cmath>
#include <initializer_list>
#include <map>
#include <memory>
#include <set>
#include <stdexcept>

namespace basin::plan {
namespace {

// NCCL 2.28 src/graph/tuning.cc, ncclTunerConstantsDefaults: microseconds, indexed by
// [algorithm: tree, ring][protocol: LL, LL128, Simple].
constexpr double kBaseLatency_us[2][3] = {{6.8, 14.0, 8.4}, {6.6, 14.0, 8.4}};
constexpr double kNvlinkLatency_us[2][3] = {{0.6, 1.25, 4.0}, {0.6, 1.9, 3.4}};
constexpr double kPciLatency_us[2][3] = {{1.0, 1.9, 4.0}, {1.0, 2.5, 5.7}};
constexpr double kNetLatency_us[2][3] = {{5.0, 8.5, 14.0}, {2.7, 4.0, 14.0}};

// tuning.cc, nvlsEfficiency: the share of NCCL's NVLink bandwidth its NVLS allreduce keeps, by
// generation (Hopper's NVLink 4: 0.85, Blackwell's NVLink 5: 0.74).
double nvls_efficiency(int nvlink_generation) { return nvlink_generation >= 5 ? 0.74 : 0.85; }
// tuning.cc, hwLatencies[NVLINK][NVLS][Simple] (its base latency is 0), microseconds; the same for
// NVLS-tree inside a server, and hwLatencies[NET][NVLS_TREE][Simple] between servers.
constexpr double kNvlsLatency_us = 25.0;
constexpr double kNvlsTreeNetLatency_us = 20.9;
// hwLatencies[NET][NVLS][Simple]: NVLS across servers (with IB SHARP) adds one network latency.
constexpr double kNvlsNetLatency_us = 18.0;
// hwLatencies[NVLINK][COLLNET_CHAIN][Simple] per hop of the chain inside a server (both ways), and
// hwLatencies[NET][COLLNET_CHAIN][Simple] once for the switches' sums; its base latency is 0.
constexpr double kCollnetChainNvlinkLatency_us = 2.8;
constexpr double kCollnetChainNetLatency_us = 30.0;

// The newest generation among a GPU's NVLinks (0: none), which names the GPU's generation for
// NCCL's tables: the NVLS efficiency by the links to the switch that sums, llMaxBws by the GPU.
int nvlink_generation(const topo::Topology& topo, topo::Vertex gpu) {
  int generation = 0;
  for (auto [e, end] = boost::out_edges(gpu, topo.graph); e != end; ++e)
    if (topo.graph[*e].kind == topo::LinkKind::nvlink) generation = std::max(generation, topo.graph[*e].generation);
  return generation;
}

// tuning.cc, llMaxBws: the most busbw NCCL's model gives the LL protocol, GB/s. One server: by the
// GPUs' generation (Volta and older, Ampere, Hopper, Blackwell); several: by the CPUs' vendor
// (Intel and others, AMD), on 2 nodes and on more. Its busbw is the ring's 2 (p-1)/p x algbw and
// the tree's 2 x algbw.
constexpr double kLlMaxOneNode_GBps[4] = {39.0, 87.7, 141.0, 282.0};
constexpr double kLlMaxNodes_GBps[2][2] = {{39.0, 20.4}, {22.5, 19.0}};

// The GPUs' generation as NCCL indexes its tables (0 Volta and older, 1 Ampere, 2 Hopper,
// 3 Blackwell), from the NVLink generation each brought; -1 when the GPU has no NVLink to say.
int gpu_generation_index(const topo::Topology& topo, topo::Vertex gpu) {
  const int nvlink = nvlink_generation(topo, gpu);
  return nvlink == 0 ? -1 : nvlink <= 2 ? 0 : nvlink - 2;
}

// Whether a CPU of the first GPU's server names one of `words` in its model (NCCL reads the
// CPU's vendor and architecture for its tables).
bool cpu_model_mentions(const topo::Topology& topo, const std::vector<topo::Vertex>& gpus,
                        std::initializer_list<const char*> words) {
  for (topo::Vertex v : topo::nodes_of_kind(topo, topo::NodeKind::cpu, topo.graph[gpus.front()].server))
    for (const char* word : words)
      if (topo.graph[v].model.find(word) != std::string::npos) return true;
  return false;
}

// llMaxBws for these GPUs, or 0 where the table has nothing to say (GPUs without NVLink alone).
double ll_max_GBps(const topo::Topology& topo, const std::vector<topo::Vertex>& gpus, int nodes) {
  if (nodes == 1) {
    const int index = gpu_generation_index(topo, gpus.front());
    return index < 0 ? 0 : kLlMaxOneNode_GBps[index];
  }
  const bool amd = cpu_model_mentions(topo, gpus, {"EPYC", "AMD"});
  return kLlMaxNodes_GBps[amd ? 1 : 0][nodes <= 2 ? 0 : 1];
}

int algo_index(sim::Algorithm a) { return a == sim::Algorithm::tree ? 0 : 1; }
int proto_index(Protocol p) { return p == Protocol::ll ? 0 : p == Protocol::ll128 ? 1 : 2; }

// tuning.cc, treeCorrectionFactor ("Trees are not perfectly sticking to the model for medium
// sizes"): the share of its modelled bandwidth NCCL ranks its tree allreduce by for messages of
// 64 B x 2^k up to 64 B x 2^(k+1), by protocol (LL, LL128, Simple). The tree uses k = 0..22,
// NVLS-tree (Blackwell on x86) k = 0..23.
constexpr double kTreeCorrection[3][24] = {
    {1.0, 1.0, 1.0, 1.0, .9, .8, .7, .7, .7, .7, .6, .5, .4, .4, .5, .6, .7, .8, .9, 1.0, 1.0, 1.0, 1.0, 1.0},
    {1.0, 1.0, 1.0, 1.0, 1.0, .9, .8, .8, .8, .7, .6, .6, .6, .6, .6, .6, .8, .9, .9, .9, .9, 1.0, 1.0, 1.0},
    {.9, .9, .9, .9, .9, .9, .9, .8, .7, .6, .6, .5, .5, .5, .5, .6, .7, .8, .7, .7, .8, .9, .9, .9}};

// `c` with its bandwidth times NCCL's tree correction in each of `classes` size classes: a chain
// of `small` costs, one per class whose factor differs from the next smaller one's.
sim::CollectiveCost tree_corrected(const sim::CollectiveCost& c, Protocol protocol, int classes) {
  const double* factor = kTreeCorrection[proto_index(protocol)];
  auto scaled = [&](double f) {
    sim::CollectiveCost piece = c;
    piece.seconds_per_byte = c.seconds_per_byte / f;
    return piece;
  };
  sim::CollectiveCost out = c;  // under 64 B
  double below = 64;            // where the class being added starts
  for (int k = 0; k < classes; ++k, below *= 2) {
    if (k > 0 && factor[k] == factor[k - 1]) continue;  // the same line as the class below
    sim::CollectiveCost piece = scaled(factor[k]);
    piece.small = std::make_shared<const sim::CollectiveCost>(std::move(out));
    piece.small_below_bytes = below;
    out = std::move(piece);
  }
  sim::CollectiveCost top = c;  // from the largest class on, as modelled
  top.small = std::make_shared<const sim::CollectiveCost>(std::move(out));
  top.small_below_bytes = below;
  return top;
}

// One of NCCL's algorithm and protocol pairs: basin's cost of it (`line`) and the cost NCCL's
// tuner ranks it by (`view`: the line with NCCL's corrections by size, nccl_view).
struct Candidate {
  sim::CollectiveCost line, view;
};

// Whether any of the GPUs predates Ampere (compute capability under 8.0, where NCCL takes its
// minimum): by the NVLink generation each brought, else by the model's name (PCIe cards).
bool before_ampere(const topo::Topology& topo, const std::vector<topo::Vertex>& gpus) {
  for (topo::Vertex v : gpus) {
    const int index = gpu_generation_index(topo, v);
    if (index == 0) return true;
    if (index > 0) continue;
    const std::string& model = topo.graph[v].model;
    for (const char* old : {"P100", "V100", "P4", "T4", "K80", "M60", "TITAN V", "Titan V"})  // P4 also P40
      if (model.find(old) != std::string::npos) return true;
  }
  return false;
}

// NCCL's corrections of its model by size (tuning.cc, ncclTopoGetAlgoTime), which it applies
// only to choose: the tree's bandwidth at medium sizes (tree_corrected), the same for NVLS-tree on
// Blackwell GPUs with x86 CPUs, and the ring's "plateau effect" across servers, its Simple latency
// x1.4 (x1.9 before Ampere) once a message gives each channel and rank 64 bytes or more. The
// channels taken here are one per GPU of a server (the ranks over the servers, fractional where
// their counts differ), not channel_rings_cost's count (more where a GPU has several NICs beside
// it); NCCL often runs more, which moves that
// threshold up (on 2 DGX H100 from 8 KB to 32 KB with 32 channels). Prices stay basin's lines:
// the plateau factor taken as a price put 3 A100 servers' ring at 90 GB/s busbw at 128 MB where
// 96 was measured (tests/plan/nccl_rings_test.cc).
sim::CollectiveCost nccl_view(const sim::CollectiveCost& line, const topo::Topology& topo,
                              const std::vector<topo::Vertex>& gpus, sim::Algorithm algorithm, Protocol protocol) {
  if (algorithm == sim::Algorithm::tree) return tree_corrected(line, protocol, 23);
  if (algorithm == sim::Algorithm::nvls_tree) {
    // Compute capability 10.0 on (NVLink 5) on every GPU, and an x86 CPU (Grace is Arm, POWER is
    // not x86; a server that names no CPU is taken for x86, as most are).
    const bool x86 = !cpu_model_mentions(topo, gpus, {"Grace", "Neoverse", "POWER", "Power"});
    const bool blackwell = std::all_of(gpus.begin(), gpus.end(), [&](topo::Vertex v) {
      return gpu_generation_index(topo, v) >= 3;
    });
    return blackwell && x86 ? tree_corrected(line, protocol, 24) : line;
  }
  std::set<int> servers;
  for (topo::Vertex v : gpus) servers.insert(topo.graph[v].server);
  if (algorithm != sim::Algorithm::ring || protocol != Protocol::simple || servers.size() < 2) return line;
  const double ranks = static_cast<double>(gpus.size()), ppn = ranks / static_cast<double>(servers.size());
  sim::CollectiveCost plateau = line;
  plateau.latency_s *= before_ampere(topo, gpus) ? 1.9 : 1.4;
  plateau.small = std::make_shared<const sim::CollectiveCost>(line);
  plateau.small_below_bytes = 64.0 * ppn * ranks;
  return plateau;
}

Candidate candidate(sim::Network& net, const std::vector<topo::Vertex>& gpus, sim::Algorithm algorithm,
                    Protocol protocol, const std::string& origin) {
  sim::CollectiveCost line = nccl_cost(net, gpus, algorithm, protocol, origin);
  sim::CollectiveCost view = nccl_view(line, net.topology(), gpus, algorithm, protocol);
  return {std::move(line), std::move(view)};
}

// For every message size the candidate NCCL's tuner picks (the lower envelope of the views), at
// its line's cost: a chain of `small` costs.
sim::CollectiveCost as_nccl_picks(const std::vector<Candidate>& candidates) {
  std::vector<sim::CollectiveCost> views, lines;
  for (const Candidate& c : candidates) views.push_back(c.view), lines.push_back(c.line);
  return sim::fastest_of(views, lines);
}

// The protocols NCCL's tuner chooses among on these GPUs by default: LL and Simple, and LL128
// where NCCL enables it (ll128_enabled).
std::vector<Protocol> enabled_protocols(const topo::Topology& topo, const std::vector<topo::Vertex>& gpus) {
  if (ll128_enabled(topo, gpus)) return {Protocol::ll, Protocol::ll128, Protocol::simple};
  return {Protocol::ll, Protocol::simple};
}

// Fraction of the link bandwidth each protocol delivers (tuning.cc: LL sends a flag with every
// 4-byte word, LL128 one 8-byte flag per 128-byte line; the tree's LL is slower still).
double protocol_efficiency(sim::Algorithm a, Protocol p, int nodes) {
  const bool tree = a == sim::Algorithm::tree;
  switch (p) {
    case Protocol::ll: return tree ? 1 / 3.8 : 0.5;
    case Protocol::ll128: return tree ? (nodes == 1 ? 7.0 / 9.0 : 120.0 / 128.0) : 0.92;
    case Protocol::simple: return tree ? 0.92 : 1.0;
    case Protocol::none: return 1.0;
    case Protocol::automatic: break;  // nccl_cost resolves it to the three before this
  }
  throw std::invalid_argument("protocol_efficiency: LL, LL128 or Simple");
}

}  // namespace

sim::AllreduceModel nccl_model(const topo::Topology& cluster, const Choice& c, const sim::NetworkParams& params,
                               const std::string& origin) {
  if (!c.is_nccl()) throw std::invalid_argument("nccl_model: one of NCCL's algorithms");
  // Shared, so the model keeps its network (and the routes it caches) alive across calls; the
  // copy, because a Network over a topology without NVLinks refers to it rather than copying.
  auto view = std::make_shared<const topo::Topology>(cluster);
  auto net = std::make_shared<sim::Network>(*view, params);
  return [view, net, c, origin](sim::Network&, const std::vector<topo::Vertex>& gpus) {
    return nccl_choice_cost(*net, gpus, c, origin);
  };
}

sim::CollectiveCost nccl_choice_cost(sim::Network& net, const std::vector<topo::Vertex>& gpus, const Choice& c,
                                     const std::string& origin) {
  if (!c.nccl_picks_algorithm) return nccl_cost(net, gpus, c.algorithm, c.protocol, origin);
  // What NCCL's tuner picks by its own model, corrected by size as NCCL corrects it
  // (as_nccl_picks), at basin's cost of each pick.
  if (gpus.size() < 2) return {};
  std::set<int> servers;
  for (topo::Vertex v : gpus) servers.insert(net.topology().graph[v].server);
  // NCCL's defaults: CollNet off, so no CollNet chain and no NVLS across servers (tuning.cc
  // disables both without it); NVLS on one server and NVLS-tree across several where they run.
  std::vector<Candidate> costs;
  const std::vector<Protocol> protocols = enabled_protocols(net.topology(), gpus);
  for (sim::Algorithm a : {sim::Algorithm::ring, sim::Algorithm::tree})
    for (Protocol p : protocols) costs.push_back(candidate(net, gpus, a, p, origin));
  const Choice switch_sums{servers.size() == 1 ? sim::Algorithm::nvls : sim::Algorithm::nvls_tree, Protocol::simple};
  if (nccl_runs(switch_sums, net.topology(), gpus))
    costs.push_back(candidate(net, gpus, switch_sums.algorithm, switch_sums.protocol, origin));
  return as_nccl_picks(costs);
}

bool ll128_enabled(const topo::Topology& topo, const std::vector<topo::Vertex>& gpus) {
  if (gpus.empty()) return false;
  const auto& g = topo.graph;
  std::map<int, std::vector<topo::Vertex>> by_server;
  for (topo::Vertex v : gpus) {
    if (nvlink_generation(topo, v) < 2) return false;  // before Volta, or no NVLink to tell
    by_server[g[v].server].push_back(v);
  }
  for (const auto& [server, on] : by_server) {
    // NVLink inside every server: NCCL's ring there runs over it, every pair on an NVSwitch or a
    // cycle through direct NVLinks (a box of NVLink-bridged pairs crosses PCIe between them).
    bool all_pairs = true;
    for (size_t i = 0; i < on.size(); ++i)
      for (size_t j = i + 1; j < on.size(); ++j)
        all_pairs &= topo::path_class(topo, on[i], on[j]).cls == topo::PathClass::nvlink;
    if (!all_pairs && sim::nvlink_rings(topo, on).empty()) return false;
    if (by_server.size() == 1) continue;
    // Between servers a NIC near one of the server's GPUs, which carries the channels (from
    // Hopper on NCCL reaches it from the other GPUs through that one, PXN).
    bool near = false;
    for (topo::Vertex gpu : on)
      for (topo::Vertex nic : topo::nodes_of_kind(topo, topo::NodeKind::nic, server))
        near |= topo::path_class(topo, gpu, nic).cls <= topo::PathClass::pxb;
    if (!near) return false;
  }
  return true;
}

bool nccl_runs(const Choice& c, const topo::Topology& topo, const std::vector<topo::Vertex>& gpus) {
  if (c.nccl_picks_algorithm) return true;  // its ring runs wherever there are GPUs
  if (c.protocol == Protocol::ll128 && !ll128_enabled(topo, gpus)) return false;
  if (c.algorithm == sim::Algorithm::nvls) return sim::nvls_refusal(topo, gpus).empty();
  if (c.algorithm != sim::Algorithm::nvls_tree && c.algorithm != sim::Algorithm::collnet_chain) return true;
  // NVLS-tree and CollNet where the model of them runs, and on two servers or more: NCCL disables
  // both on one node.
  std::set<int> servers;
  for (topo::Vertex v : gpus) servers.insert(topo.graph[v].server);
  if (servers.size() < 2) return false;
  return c.algorithm == sim::Algorithm::nvls_tree ? sim::nvls_tree_refusal(topo, gpus).empty()
                                                  : sim::collnet_chain_refusal(topo, gpus).empty();
}

sim::CollectiveCost nccl_cost(sim::Network& net, const std::vector<topo::Vertex>& gpus,
                              sim::Algorithm algorithm, Protocol protocol, const std::string& origin) {
  if (gpus.size() < 2) return {};  // nothing to reduce, and NCCL launches nothing
  if (protocol == Protocol::automatic) {
    if (algorithm != sim::Algorithm::ring && algorithm != sim::Algorithm::tree)
      return nccl_cost(net, gpus, algorithm, Protocol::simple, origin);
    std::vector<Candidate> each;
    for (Protocol p : enabled_protocols(net.topology(), gpus)) each.push_back(candidate(net, gpus, algorithm, p, origin));
    return as_nccl_picks(each);
  }
  if (algorithm == sim::Algorithm::nvls) {
    if (protocol != Protocol::simple) throw std::invalid_argument("nccl_cost: NCCL's NVLS runs Simple only");
    // tuning.cc: NVLS's efficiency inside the servers; between them (IB SHARP) the network's
    // bandwidth as it is, and one network latency.
    const sim::NvlsTreeParts parts = sim::nvls_parts(net, gpus, origin);
    sim::CollectiveCost c = parts.combined(nvls_efficiency(nvlink_generation(net.topology(), gpus.front())), 1.0);
    c.latency_s = (kNvlsLatency_us + (parts.servers > 1 ? kNvlsNetLatency_us : 0)) * 1e-6;
    return c;
  }
  if (algorithm == sim::Algorithm::nvls_tree) {
    if (protocol != Protocol::simple) throw std::invalid_argument("nccl_cost: NCCL's NVLS-tree runs Simple only");
    const sim::NvlsTreeParts parts = sim::nvls_tree_parts(net, gpus, origin);
    const int nodes = parts.servers;
    // tuning.cc: NVLS's efficiency inside the servers; between them the network's bandwidth as it
    // is (the 0.92 of NCCL's tree applies to its plain tree only). NVLS-tree's latency is the
    // NVLS one inside the server plus two network latencies per level of the tree between servers.
    sim::CollectiveCost c = parts.combined(nvls_efficiency(nvlink_generation(net.topology(), gpus.front())), 1.0);
    c.latency_s = (kNvlsLatency_us + 2 * std::floor(std::log2(nodes)) * kNvlsTreeNetLatency_us) * 1e-6;
    return c;
  }
  if (algorithm == sim::Algorithm::collnet_chain) {
    if (protocol != Protocol::simple) throw std::invalid_argument("nccl_cost: NCCL's CollNet runs Simple only");
    // tuning.cc: the bandwidth as it is (no refinement applies to CollNet's chain); latency two
    // NVLink hops per GPU of the chain beyond the head and one network latency.
    std::set<int> servers;
    for (topo::Vertex v : gpus) servers.insert(net.topology().graph[v].server);
    // One server: no CollNet, the chains alone, which is NCCL's tree there.
    if (servers.size() == 1) return nccl_cost(net, gpus, sim::Algorithm::tree, Protocol::simple, origin);
    sim::CollectiveCost c = sim::collnet_chain_cost(net, gpus, origin);
    const int ppn = static_cast<int>(gpus.size() / servers.size());
    // With one GPU a server the network latency is fully exposed: NCCL takes the tree's there.
    const double net_us = ppn == 1 ? kNetLatency_us[0][2] : kCollnetChainNetLatency_us;
    c.latency_s = (2 * (ppn - 1) * kCollnetChainNvlinkLatency_us + net_us) * 1e-6;
    return c;
  }
  if (protocol == Protocol::none ||
      (algorithm != sim::Algorithm::ring && algorithm != sim::Algorithm::tree))
    throw std::invalid_argument("nccl_cost: NCCL's ring or tree with a protocol, or NVLS, NVLS-tree or CollNet with Simple");
  const auto& g = net.topology().graph;
  std::set<int> servers;
  for (topo::Vertex v : gpus) servers.insert(g[v].server);
  const int ranks = static_cast<int>(gpus.size()), nodes = static_cast<int>(servers.size());
  const int ppn = ranks / nodes;
  // Intra-server hardware: NVLink when the first two GPUs of a server are NVLink peers.
  bool nvlink = ranks > 1 && g[gpus[0]].server == g[gpus[1]].server &&
                topo::path_class(net.topology(), gpus[0], gpus[1]).cls == topo::PathClass::nvlink;
  const int a = algo_index(algorithm), p = proto_index(protocol);
  const double intra = nvlink ? kNvlinkLatency_us[a][p] : kPciLatency_us[a][p];
  const double inter = ppn == 1 ? kNetLatency_us[0][p] : kNetLatency_us[a][p];
  double latency_us = kBaseLatency_us[a][p];
  if (algorithm == sim::Algorithm::ring) {
    const int steps = 2 * (ranks - 1), inter_steps = nodes == 1 ? 0 : 2 * (nodes - 1);
    latency_us += (steps - inter_steps) * intra + inter_steps * inter;
  } else {
    latency_us += 2 * ((ppn - 1) * intra + std::floor(std::log2(nodes)) * inter);
  }
  // NCCL's ring and tree between servers run per channel, the channels crossing through
  // different NICs, also where servers hold unequal numbers of ranks.
  const bool channels = nodes > 1;
  // On one server NCCL's rings, and its trees' chains, follow NVLinks wherever GPUs are wired to
  // each other directly.
  sim::CollectiveCost c = nodes == 1 && algorithm == sim::Algorithm::ring ? sim::server_rings_cost(net, gpus)
                          : nodes == 1 ? sim::server_trees_cost(net, gpus)
                          : !channels ? net.cost(sim::allreduce_schedule(algorithm, ranks), gpus)
                          : algorithm == sim::Algorithm::ring ? sim::channel_rings_cost(net, gpus)
                                                              : sim::channel_trees_cost(net, gpus);
  c.latency_s = latency_us * 1e-6;
  c.seconds_per_byte /= protocol_efficiency(algorithm, protocol, nodes);
  if (protocol == Protocol::ll)
    if (const double cap = ll_max_GBps(net.topology(), gpus, nodes); cap > 0) {
      const double busbw_per_algbw = algorithm == sim::Algorithm::ring ? 2.0 * (ranks - 1) / ranks : 2.0;
      c.seconds_per_byte = std::max(c.seconds_per_byte, busbw_per_algbw / (cap * 1e9));
    }
  return c;
}

}  // namespace basin::plan
