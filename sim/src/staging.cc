// The hierarchical allreduce as Gloo ran it for Goyal et al. 2017: over TCP, through host memory.
//
// Caffe2's Gloo Allreduce op builds CudaAllreduceHalvingDoubling<float, CudaHostWorkspace> unless
// the transport is ibverbs (caffe2/contrib/gloo/allreduce_ops_gpu.cc), and that algorithm, at the
// Gloo of the paper (commit 44cf94b, Sept. 2017), does one thing after another on one thread:
//  - buffers of 256 KiB or more: NCCL reduce onto GPU 0, then a device-to-host copy into pinned
//    host memory (cuda_collectives_nccl.h, CudaLocalNCCLReduce with a host target);
//    smaller ones: every GPU's buffer copied to the host and summed there by the CPU, one after
//    another (cuda_collectives_host.h, CudaLocalHostReduce);
//  - halving-doubling between the servers' host buffers over TCP; every piece received in the
//    reduce-scatter is summed into the scratch buffer by the CPU (fn_->call, a plain loop), every
//    piece received in the allgather is copied into it, each before the next step is sent;
//  - the way back: a host-to-device copy and an NCCL broadcast, or (small buffers) a copy from the
//    host to every GPU.
// Each phase is priced on the topology: copies are transfers between the GPUs and the CPU socket
// that holds the host buffer (routed over the server's PCIe switches and links, so GPUs sharing
// a switch uplink share it), the CPU work at one core's memory throughput (HostStaging).
#include "hierarchical_parts.h"

#include <algorithm>
#include <set>
#include <stdexcept>
#include <unordered_map>

namespace basin::sim {
namespace {

// The CPU socket whose memory holds a server's host buffers: the NIC's, as Gloo's latency guide
// asks (docs/latency.md: run on the NUMA node the NIC is attached to); else the server's first.
topo::Vertex host_of(const topo::Topology& t, int server) {
  const auto cpus = topo::nodes_of_kind(t, topo::NodeKind::cpu, server);
  if (cpus.empty())
    throw topo::InputError("--host-staging", "", "a CPU in every server, whose memory Gloo stages through, but "
                           "server " + std::to_string(server) + " of " + t.name + " has none (use --host-staging off)");
  const auto nics = topo::nodes_of_kind(t, topo::NodeKind::nic, server);
  if (!nics.empty())
    for (topo::Vertex c : cpus)
      if (t.graph[c].numa == t.graph[nics[0]].numa) return c;
  return cpus[0];
}

// Gloo stages a server's GPUs through one host buffer, so every GPU must reach that CPU's memory
// without crossing another GPU. A rack whose GPUs hang off many CPUs with no link between trays
// (gb200-nvl72) cannot; say so rather than fail on a missing route.
void require_one_host_per_server(const topo::Topology& t, const std::vector<topo::Vertex>& gpus) {
  std::set<int> servers;
  for (topo::Vertex v : gpus) servers.insert(t.graph[v].server);
  const std::set<topo::Vertex> used(gpus.begin(), gpus.end());
  for (int server : servers) {
    const topo::Vertex host = host_of(t, server);
    const topo::ServerView view = topo::server_view(t, server);
    const auto local = std::find(view.to_cluster.begin(), view.to_cluster.end(), host);
    const std::vector<double> width =
        topo::widest_from(view.topo, static_cast<topo::Vertex>(local - view.to_cluster.begin()));
    for (size_t i = 0; i < view.to_cluster.size(); ++i)
      if (used.count(view.to_cluster[i]) && !(width[i] > 0))
        throw topo::InputError("--host-staging", "",
                               "GPUs that all reach one CPU's memory, where Gloo stages a server's buffers, "
                               "but " + t.graph[view.to_cluster[i]].id + " does not reach " + t.graph[host].id +
                                   " on " + t.name + " (use --host-staging off)");
  }
}

// One step in which every listed copy runs at once, each moving the whole message.
CollectiveCost copies(Network& net, const std::vector<std::pair<topo::Vertex, topo::Vertex>>& pairs) {
  if (pairs.empty()) return {};
  std::vector<topo::Vertex> ranks;
  Step step;
  for (auto [from, to] : pairs) {
    ranks.push_back(from);
    ranks.push_back(to);
    const int base = static_cast<int>(ranks.size()) - 2;
    step.transfers.push_back({base, base + 1, 1.0, false});
  }
  return net.cost(Schedule{"copy", static_cast<int>(ranks.size()), {step}}, ranks);
}

// The CPU's share of a host-side schedule: each step, before the next can be sent, the receiver
// sums what it received (reduce) or copies it into place (the rest), on one core. The step costs
// its busiest receiver's work.
CollectiveCost host_work(const Schedule& s, const HostStaging& staging) {
  CollectiveCost c;
  const double reduce_Bps = staging.core_reduce_GBps() * 1e9;
  const double copy_Bps = staging.core_copy_GBps * 1e9;
  for (const Step& step : s.steps) {
    std::unordered_map<int, double> work;  // receiving rank -> seconds per message byte
    for (const Transfer& t : step.transfers)
      work[t.dst] += t.fraction / (t.reduce ? reduce_Bps : copy_Bps);
    double most = 0;
    for (auto [rank, w] : work) most = std::max(most, w);
    c.seconds_per_byte += step.repeat * most;
  }
  return c;
}

}  // namespace

bool stages_through_host(const topo::Topology& t, const HostStaging& staging) {
  if (staging.mode != HostStaging::Mode::automatic) return staging.mode == HostStaging::Mode::on;
  const auto nics = topo::nodes_of_kind(t, topo::NodeKind::nic);
  if (nics.empty()) return false;
  return std::all_of(nics.begin(), nics.end(), [&](topo::Vertex v) {
    return t.graph[v].port_kind == topo::LinkKind::ethernet;
  });
}

CollectiveCost staged_flat_cost(Network& net, const std::vector<topo::Vertex>& gpus,
                                const Schedule& s, const HostStaging& staging) {
  // One rank per GPU (Gloo with one device pointer per process): every rank copies its buffer to
  // its host and back, all at once; each rank's sums run on its own core.
  const topo::Topology& t = net.topology();
  require_one_host_per_server(t, gpus);
  std::vector<std::pair<topo::Vertex, topo::Vertex>> down, up;
  for (topo::Vertex v : gpus) {
    const topo::Vertex host = host_of(t, t.graph[v].server);
    down.emplace_back(v, host);
    up.emplace_back(host, v);
  }
  CollectiveCost c = named(copies(net, down), kTermStaging);
  c.add(named(net.cost(s, gpus), kTermNetwork));
  c.add(named(host_work(s, staging), kTermHost));
  c.add(named(copies(net, up), kTermStaging));
  return c;
}

CollectiveCost staged_hierarchical_cost(Network& net, const std::vector<topo::Vertex>& gpus,
                                        Algorithm inter, const HostStaging& staging) {
  const topo::Topology& t = net.topology();
  require_one_host_per_server(t, gpus);
  const auto chains = server_chains(net, gpus);
  std::vector<topo::Vertex> hosts;
  std::vector<std::pair<topo::Vertex, topo::Vertex>> lead_down, lead_up, all_down, all_up;
  size_t widest = 0;
  for (const auto& chain : chains) {
    const topo::Vertex host = host_of(t, t.graph[chain.front()].server);
    hosts.push_back(host);
    lead_down.emplace_back(chain.front(), host);  // device to host
    lead_up.emplace_back(host, chain.front());
    for (topo::Vertex v : chain) all_down.emplace_back(v, host), all_up.emplace_back(host, v);
    widest = std::max(widest, chain.size());
  }
  const Schedule between = allreduce_schedule(inter, static_cast<int>(hosts.size()));
  const CollectiveCost network = named(net.cost(between, hosts), kTermNetwork);
  const CollectiveCost host_side = named(host_work(between, staging), kTermHost);

  // 256 KiB and more: NCCL on NVLink, one copy each way between the leader and its host.
  CollectiveCost large = named(chain_phase(net, chains, true), kTermLocal);
  large.add(named(copies(net, lead_down), kTermStaging));
  large.add(network);
  large.add(host_side);
  large.add(named(copies(net, lead_up), kTermStaging));
  large.add(named(chain_phase(net, chains, false), kTermLocal));

  // Under it: every GPU's buffer to the host at once, summed there one after another (k-1 sums
  // of the whole buffer), and the result copied back to every GPU at once.
  auto small = std::make_shared<CollectiveCost>(named(copies(net, all_down), kTermStaging));
  CollectiveCost local_sums;
  local_sums.seconds_per_byte = (widest - 1) / (staging.core_reduce_GBps() * 1e9);
  small->add(named(local_sums, kTermHost));
  small->add(network);
  small->add(host_side);
  small->add(named(copies(net, all_up), kTermStaging));

  large.small = std::move(small);
  large.small_below_bytes = staging.device_reduce_min_bytes;
  return large;
}

}  // namespace basin::sim
