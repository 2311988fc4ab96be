// basin plan: decisions built on the simulator. `select` picks the allreduce algorithm (and, for
// NCCL's algorithms, the protocol) for every message size; `plan` searches GPU count x batch x
// algorithm x bucket x precision for the fastest or cheapest way to train (plan.cc).
#pragma once

#include <basin/sim.h>
#include <basin/topology.h>

#include <string>
#include <vector>

namespace basin::plan {

// NCCL's protocols. `none` marks basin's own schedules timed by the engine alone (what a Gloo or
// custom executor runs); ring and tree also come as NCCL's ring and tree under each protocol.
enum class Protocol { none, ll, ll128, simple };
const char* to_string(Protocol p);

struct Choice {
  sim::Algorithm algorithm = sim::Algorithm::ring;
  Protocol protocol = Protocol::none;
  sim::Algorithm inter = sim::Algorithm::halving_doubling;  // for hierarchical
  std::string name() const;  // "halving-doubling", "ring/LL128", "hierarchical(halving-doubling)"
  bool is_nccl() const { return protocol != Protocol::none; }
};

// The GPUs a collective of `ranks` runs on: `per_server` GPUs from each server in turn (0: all
// of each server's GPUs), in rank order. Throws topo::InputError when the cluster is too small.
std::vector<topo::Vertex> pick_gpus(const topo::Topology& topo, int ranks, int per_server);

struct SelectOptions {
  int ranks = 0;       // 0: every GPU
  int per_server = 0;  // 0: all of each server's GPUs
  bool nccl = false;   // add NCCL's ring and tree under LL, LL128 and Simple
  std::vector<Choice> candidates;  // empty: basin's algorithms (+ NCCL's with nccl)
  sim::NetworkParams network{.per_message_overhead_us = 5, .reduce_GBps = 0};
  double min_bytes = 8, max_bytes = 8.0 * (1ull << 30);  // nccl-tests' ladder, doubling
};

struct SizeRow {
  double bytes = 0;
  std::vector<double> time_s;  // per candidate
  int best = 0;                // index of the fastest candidate
};

struct Crossover {
  double bytes = 0;  // first size at which `to` is the best
  std::string from, to;
};

struct Selection {
  std::string cluster;
  int ranks = 0, servers = 0;
  std::vector<Choice> candidates;
  std::vector<SizeRow> rows;
  std::vector<Crossover> crossovers;
};

// nccl-tests' definitions for allreduce: algbw = bytes / time, busbw = algbw * 2 (p-1) / p.
double algbw_GBps(double bytes, double time_s);
double busbw_GBps(double bytes, double time_s, int ranks);

// Time of one allreduce of `bytes` for each candidate on the given GPUs.
Selection select_allreduce(const topo::Topology& topo, const SelectOptions& options);

// The NCCL-protocol model: engine bandwidth (topology, contention) scaled by the protocol's
// efficiency, latency from NCCL's tuning constants (src/graph/tuning.cc, NCCL 2.28: base latency
// plus hardware latency per step, intra-server NVLink/PCI and inter-server NET).
sim::CollectiveCost nccl_cost(sim::Network& net, const std::vector<topo::Vertex>& gpus,
                              sim::Algorithm algorithm, Protocol protocol);

}  // namespace basin::plan
