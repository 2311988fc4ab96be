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

#include <map>
#include <memory>
#include <string>
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
};

// Transfers that run at the same time; the step ends when the last one ends. A step that a
// schedule repeats identically (a ring's 2(p-1) steps) is stored once with its repeat count and
// solved once.
struct Step {
  std::vector<Transfer> transfers;
  int repeat = 1;
};

struct Schedule {
  std::string algorithm;
  int ranks = 0;
  std::vector<Step> steps;
};

enum class Algorithm { ring, halving_doubling, recursive_doubling, hierarchical };

std::vector<std::string> algorithm_names();  // as accepted by --algorithm
// Throws topo::InputError naming `origin` for an unknown name.
Algorithm algorithm_from_string(const std::string& name, const std::string& origin = "--algorithm");
const char* to_string(Algorithm a);

// Allreduce over ranks 0..p-1.
//  ring:               reduce-scatter then allgather around a ring: 2(p-1) steps of n/p.
//  halving_doubling:   Rabenseifner: reduce-scatter by recursive halving, allgather by
//                      recursive doubling, 2 log2(p) steps, 2(p-1)/p n bytes per rank. For p not
//                      a power of two, the first 2r ranks (r = p - 2^floor(log2 p)) pair up
//                      before (odd reduces its even partner's vector) and after (sends it back).
//  recursive_doubling: log2(p) steps exchanging the whole vector (same pre/post for non-powers).
Schedule ring_allreduce(int p);
Schedule halving_doubling_allreduce(int p);
Schedule recursive_doubling_allreduce(int p);
Schedule allreduce_schedule(Algorithm a, int p);  // flat algorithms only

// ---------------------------------------------------------------------------------------------
// Network engine
// ---------------------------------------------------------------------------------------------

struct NetworkParams {
  double per_message_overhead_us = 0;  // software cost added once per transfer of a step
  double reduce_GBps = 0;              // rate of the receiver's reduction (0: free)
};

// Time of a collective of n bytes: latency_s + n * seconds_per_byte (exact for one schedule:
// every flow's size scales with n, so every completion time does).
struct CollectiveCost {
  double latency_s = 0;
  double seconds_per_byte = 0;
  double time_s(double bytes) const { return bytes > 0 ? latency_s + bytes * seconds_per_byte : 0; }
};

// Flows routed over the topology's directed links. Routes are computed once per GPU pair.
class Network {
 public:
  Network(const topo::Topology& topo, NetworkParams params = {});
  // Time of a schedule whose rank i runs on gpus[i] (topology vertices).
  CollectiveCost cost(const Schedule& s, const std::vector<topo::Vertex>& gpus);
  // Makespan in seconds of concurrent flows of the given sizes between vertex pairs, with
  // max-min fair sharing and re-sharing as flows finish (no latency).
  double transfer_time_s(const std::vector<std::pair<topo::Vertex, topo::Vertex>>& pairs,
                         const std::vector<double>& bytes);
  const topo::Topology& topology() const { return *topo_; }

 private:
  struct RouteInfo {
    std::vector<int> links;  // dense link ids
    double latency_s = 0;
  };
  const RouteInfo& route(topo::Vertex a, topo::Vertex b);
  const topo::Topology* topo_;
  NetworkParams params_;
  std::vector<double> capacity_Bps_;  // by link id
  std::map<std::pair<topo::Vertex, topo::Vertex>, RouteInfo> routes_;
};

// Hierarchical 3-phase allreduce of Goyal et al. 2017: reduce inside each server to a leader,
// allreduce among leaders with `inter`, broadcast inside each server. gpus must be grouped by
// server (rank order).
CollectiveCost hierarchical_cost(Network& net, const std::vector<topo::Vertex>& gpus,
                                 Algorithm inter);
CollectiveCost allreduce_cost(Network& net, const std::vector<topo::Vertex>& gpus, Algorithm a,
                              Algorithm inter = Algorithm::halving_doubling);

}  // namespace basin::sim
