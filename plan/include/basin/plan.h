// basin plan: decisions built on the simulator. `select` picks the allreduce algorithm (and, for
// NCCL's algorithms, the protocol) for every message size; `plan` searches GPU count x batch x
// algorithm x bucket x precision for the fastest or cheapest way to train (plan.cc).
#pragma once

#include <basin/sim.h>
#include <basin/topology.h>
#include <basin/training.h>
#include <basin/tuner.h>

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace basin::plan {

// NCCL's protocols. `none` marks basin's own schedules timed by the engine alone (what a Gloo or
// custom executor runs); ring and tree also come as NCCL's ring and tree under each protocol.
// `automatic`: NCCL's tuner picks LL, LL128 or Simple for every message size, which is what runs
// when basin train sets only NCCL's algorithm (the one NCCL's corrected model ranks fastest, at
// basin's cost of it; nccl_cost).
enum class Protocol { none, ll, ll128, simple, automatic };
const char* to_string(Protocol p);

struct Choice {
  sim::Algorithm algorithm = sim::Algorithm::ring;
  Protocol protocol = Protocol::none;
  sim::Algorithm inter = sim::Algorithm::halving_doubling;  // for hierarchical
  // "nccl": NCCL's tuner picks the algorithm too, per message (NCCL_ALGO unset: ring, tree, and
  // NVLS or NVLS-tree where they run, as NCCL enables them without CollNet), and the protocol;
  // `protocol` is then automatic and `algorithm` stays ring (what runs anywhere, for the checks
  // that look at it).
  bool nccl_picks_algorithm = false;
  // "halving-doubling", "nccl-ring/LL128", "nccl-tree" (automatic), "hierarchical(halving-doubling)"
  std::string name() const;
  bool is_nccl() const { return protocol != Protocol::none || nccl_picks_algorithm; }
};

// "ring", "hierarchical:ring", "nccl-ring/LL128", "nccl-ring" (or "nccl-ring/auto": NCCL's tuner
// picks the protocol), "nccl" (it picks the algorithm too), "nccl-nvls/Simple", ... as `basin plan
// --algorithms` takes them; throws
// topo::InputError naming `origin`. Plain "nvls", "nvls-tree" and "collnet-chain" are refused:
// only NCCL runs the switches' sums, so a plan names them as NCCL's (Simple, their one protocol).
Choice choice_from_string(const std::string& text, const std::string& origin = "--algorithms");

// The GPUs a collective of `ranks` runs on: `per_server` GPUs from each server in turn (0: all
// of each server's GPUs), in rank order. Throws topo::InputError when the cluster is too small.
std::vector<topo::Vertex> pick_gpus(const topo::Topology& topo, int ranks, int per_server);

struct SelectOptions {
  int ranks = 0;       // 0: every GPU
  int per_server = 0;  // 0: all of each server's GPUs
  bool nccl = false;   // add NCCL's ring and tree under LL, LL128 and Simple (and NVLS where it runs)
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
  double min_bytes = 0, max_bytes = 0;  // the ladder asked for (SelectOptions)
  std::vector<Choice> candidates;
  std::vector<std::string> libraries;  // per candidate: what runs it as timed (library_of)
  std::vector<SizeRow> rows;
  std::vector<Crossover> crossovers;
};

// nccl-tests' definitions for allreduce: algbw = bytes / time, busbw = algbw * 2 (p-1) / p.
double algbw_GBps(double bytes, double time_s);
double busbw_GBps(double bytes, double time_s, int ranks);

// Time of one allreduce of `bytes` for each candidate on the given GPUs.
Selection select_allreduce(const topo::Topology& topo, const SelectOptions& options);

// NCCL's rules from a selection: for every size the fastest of the NCCL candidates (ring and tree
// under each protocol, NVLS where it runs, which the selection must include), consecutive sizes with the same choice
// merged into one byte range (the first from 0, the last to no limit), for exactly this
// communicator's node and rank counts. What `basin select --selection/--nccl-conf` writes and
// the tuner plugin reads.
tuner::Selection nccl_rules(const Selection& selection);

// NCCL's model of choice `c` (one of NCCL's) for sim::predict: nccl_cost on a network of its own
// over the cluster, whatever network predict passes.
sim::AllreduceModel nccl_model(const topo::Topology& cluster, const Choice& c, const sim::NetworkParams& params,
                               const std::string& origin = "--algorithms");
// Whether NCCL can run choice `c` on these GPUs (NVLS: all of them on one NVSwitch that sums, or
// such servers on a fabric that sums; NVLS-tree: two or more such servers with as many GPUs on
// each; CollNet's chain: two or more servers, as many GPUs on each, on a fabric that sums;
// LL128: where NCCL enables it by default, ll128_enabled).
bool nccl_runs(const Choice& c, const topo::Topology& topo, const std::vector<topo::Vertex>& gpus);
// Whether NCCL enables its LL128 protocol on these GPUs by default (tuning.cc): Volta or newer
// (basin reads the generation from every GPU's NVLinks: NVLink 2 or later, so NVLink-bridged
// Turing and Ampere workstation parts count as newer than NCCL allows, and PCIe-only GPUs as
// older), NCCL's ring inside each server on NVLink (every pair on it, or an NVLink cycle through
// them, sim::nvlink_rings), and between servers on each a NIC
// within a GPU's PCIe switches (PXB; from Hopper on NCCL reaches it from the others, PXN).
bool ll128_enabled(const topo::Topology& topo, const std::vector<topo::Vertex>& gpus);

// What runs `choice` on these GPUs as the simulator prices it (PlanRow::library, a plan file's
// /allreduce/library): "nccl" for NCCL's algorithms; "gloo" for basin's ring and halving-doubling
// on GPUs of two servers or more joined by TCP, priced staged through host memory as basin
// train's Gloo path runs them (Gloo's ring_chunked and halving_doubling); "nccl+gloo" for
// hierarchical there, with ring or halving-doubling between the servers: Goyal et al.'s three
// phases, NCCL's reduce in each server, Gloo between on one host copy per server, NCCL's
// broadcast, as the simulator prices them and basin train's --gpu-collective nccl+gloo runs them;
// "simulated-only" for basin's other schedules, and for those elsewhere, where they are priced
// moving GPU memory directly, which neither NCCL nor Gloo does (basin train runs tree and
// 2d-torus as ring_chunked, recursive doubling as halving-doubling; Gloo's bcube has base 2 where
// basin's has 4); "none" for one GPU. `staging` is the pricing's (`basin sim --host-staging`;
// automatic by default, as the planner prices).
std::string library_of(const Choice& choice, const topo::Topology& cluster, const std::vector<topo::Vertex>& gpus,
                       const sim::HostStaging& staging = {});
// Whether basin train runs a library_of answer as it was priced: nccl, gloo or nccl+gloo.
bool runs_as_priced(const std::string& library);

// How basin train runs one of basin's allreduce names (a plan file's /allreduce/algorithm and
// /allreduce/inter) through Gloo, in the comm layer's names: its own shape where Gloo has it
// (ring as ring_chunked, the reduce-scatter + allgather ring; halving-doubling; hierarchical as
// comm's three phases with its algorithm between servers), else Gloo's nearest (tree and
// 2d-torus as ring_chunked; bcube as Gloo's base-2 bcube; recursive doubling, NCCL's auto and
// the switch-summing algorithms as halving_doubling). `same_shape` says the schedule the
// simulator prices is Gloo's own; library_of's "gloo" needs it. The one table of both.
struct GlooRun {
  std::string algorithm, inter;  // comm's names; inter only for "hierarchical"
  bool same_shape = false;
};
GlooRun gloo_run(const std::string& algorithm, const std::string& inter = "");

// The NCCL-protocol model: engine bandwidth (topology, contention, NVLinks at the per-link rate
// NCCL's own model counts on, sim::achievable_share, as for every schedule; LL held to
// tuning.cc's llMaxBws) scaled by the protocol's efficiency, latency from NCCL's tuning constants
// (src/graph/tuning.cc, NCCL 2.28: base latency plus hardware latency per step, intra-server
// NVLink/PCI and inter-server NET). NVLS (Simple only): sim::nvls_cost scaled by NCCL's NVLS
// efficiency (0.85 on NVLink 4, 0.74 on NVLink 5) and NCCL's 25 us NVLS latency. NVLS-tree (Simple
// only): sim::nvls_tree_parts, the NVLS part scaled likewise and the trees between servers by the
// tree's Simple efficiency, the slower setting the rate; NCCL's NVLS-tree latency. NVLS across
// servers: sim::nvls_parts likewise, NCCL's NVLS latency plus its network one. CollNet's chain
// (Simple only): sim::collnet_chain_cost as it is, NCCL's CollNet-chain latency; on one server
// NCCL's tree. Protocol::automatic: ring and tree, for every size, at the cost of whichever of LL,
// LL128 (where ll128_enabled) and Simple NCCL's tuner ranks fastest by its model corrected by size
// (tuning.cc: the tree's treeCorrectionFactor, the ring's plateau across servers); the others at
// Simple.
sim::CollectiveCost nccl_cost(sim::Network& net, const std::vector<topo::Vertex>& gpus,
                              sim::Algorithm algorithm, Protocol protocol,
                              const std::string& origin = "--algorithms");
// nccl_cost for one of NCCL's choices; for "nccl" (Choice::nccl_picks_algorithm), at every size,
// the cost of what NCCL's tuner picks when nothing is set, ranked as for Protocol::automatic,
// among ring and tree under each protocol NCCL enables and NVLS (one server) or NVLS-tree
// (several) where they run.
sim::CollectiveCost nccl_choice_cost(sim::Network& net, const std::vector<topo::Vertex>& gpus, const Choice& c,
                                     const std::string& origin = "--algorithms");

// ---------------------------------------------------------------------------------------------
// Training plans
// ---------------------------------------------------------------------------------------------

// Top-1 error added by a global minibatch, from Goyal et al. 2017 (table 2 / fig. 1: no loss up
// to 8k, then +1.2, +4.0 and +10.4 points at 16k, 32k and 64k), interpolated linearly in
// log2(batch) between those points. Beyond 64k there is no published figure: returns NaN.
double accuracy_penalty_points(long long global_batch);

enum class Objective { time, cost, throughput_per_dollar };
Objective objective_from_string(const std::string& text);  // throws topo::InputError

struct PrecisionChoice {
  sim::Precision compute = sim::Precision::fp32;
  sim::Precision wire = sim::Precision::fp32;
  std::string name() const;  // "fp32", "fp16", "fp32/wire-fp16"
};

struct PlanOptions {
  std::string cluster_spec;  // as given, for the plan file and the command line
  std::string model = "resnet50";
  long long dataset_images = 1281167;  // ImageNet-1k train
  int epochs = 90;
  std::vector<int> gpu_counts;        // empty: 1, 2, 4, then whole servers doubling, and all
  // GPUs a run takes on each server (0: all of each server's in turn); empty: 0, and half, a
  // quarter, ... of a server's on more servers where the cluster has them.
  std::vector<int> gpus_per_server;
  std::vector<int> batches_per_gpu = {16, 32, 64, 128};
  // empty: what basin train runs on GPUs as priced (default_algorithms in plan.cc): NCCL's, and
  // basin's ring and halving-doubling where Gloo stages them through host memory (servers joined
  // by TCP)
  std::vector<Choice> algorithms;
  std::vector<double> buckets_MB = {0, 1, 4, 25};
  // Empty: fp32, fp32/wire-fp16, and fp16 and bf16 where the profile states their peaks, each only where a
  // measurement stands behind its compute speed (its own or one it is estimated from), unless
  // none has one; a datasheet-only estimate must be named here to be planned.
  std::vector<PrecisionChoice> precisions;
  double tolerated_loss_points = 0;   // top-1 points the large minibatch may cost
  int max_global_batch = 0;           // 0: no limit beyond the accuracy one
  double price_per_gpu_hour = 0;      // 0: costs in GPU-hours
  Objective objective = Objective::time;
  double deadline_h = 0, budget = 0;  // 0: none
  sim::NetworkParams network{.per_message_overhead_us = 5, .reduce_GBps = 0};
  double decode_images_per_s_per_core = sim::TrainingConfig{}.decode_images_per_s_per_core;
  double gpu_decode_images_per_s = 0;  // sim::TrainingConfig::gpu_decode_images_per_s
  double compute_jitter_cv = 0;  // per-GPU compute variation: sim::TrainingConfig's
};

struct PlanRow {
  int gpus = 0, batch_per_gpu = 0;
  long long global_batch = 0;
  Choice algorithm;
  double bucket_MB = 0;
  PrecisionChoice precision;
  // Prediction
  double iteration_s = 0, epoch_s = 0, images_per_s = 0, compute_s = 0, exposed_comm_s = 0,
         data_stall_s = 0, scaling_efficiency = 0, time_to_train_h = 0, gpu_hours = 0, cost = 0;
  double accuracy_penalty = 0;  // top-1 points
  double memory_GB = 0;         // device memory a GPU needs (sim::memory_needed_GB)
  // What runs the allreduce on GPUs as it was priced (plan_document's /allreduce/library):
  // "nccl"; "gloo", staged through host memory (basin's ring and halving-doubling between
  // servers joined by TCP, where the simulator prices the staging); "nccl+gloo", Goyal et al.'s
  // three phases there; "simulated-only", basin's own schedule as basin train does not run it
  // (moving GPU memory directly); "none" on one GPU (library_of).
  std::string library;
  std::string input_basis;      // the simulator's: the CPU cores decoding for a GPU, or why none
  bool compute_estimated = false;  // the simulator's: no measurement of this device, network and precision
  std::string compute_basis;       // the measurement or estimate that set the compute speed
  std::string rejected;         // why it cannot be used; empty when it can
  std::string lost;             // for usable rows other than the best: why not chosen
  std::vector<int> ranks_per_server = {1};  // where the GPUs sit: the GPUs used on each server used
  int servers() const { return static_cast<int>(ranks_per_server.size()); }
  bool even() const;  // the same count on every server used
  std::string placement() const;  // "8x4" (servers x GPUs), or "8+4" where uneven
  std::string bottleneck() const;  // "compute", "communication" or "input pipeline"
};

// The GPUs a run of `count` takes (placements.cc): `layout` GPUs at most on each server (0: all
// of each in turn), and the ranks each server used gets, in server order.
struct Placement {
  int layout = 0;
  std::vector<topo::Vertex> gpus;
  std::vector<int> ranks_per_server;
};
// The distinct placements of `count` GPUs: those `layouts` name where they fit, or, for none,
// all of each server's in turn and half, a quarter, ... of each server's on more servers (the
// count divided evenly, every server having that many).
std::vector<Placement> placements(const topo::Topology& cluster, int count, const std::vector<int>& layouts);
// The GPU counts searched by default: 1, 2, 4, ... below a server, whole servers doubling, all;
// and for each of `layouts` (GPUs a server, 0 for all) that many on 1, 2, 4, ... servers and on
// every server, so that `--per-server 3` tries 3 on each rather than only 3+1 and 3+3+2.
std::vector<int> default_gpu_counts(const topo::Topology& cluster, const std::vector<int>& layouts = {});

struct PlanResult {
  std::string cluster, model, device;
  std::string gpu;  // the topology's GPU model (the profile's device may be another of its kind)
  int gpus_on_a_server = 0;       // the cluster's servers' GPUs (the most on any)
  // Where no route joins the servers (fabric=none): the GPUs of the one server searched; else 0.
  int one_server_only = 0;
  std::vector<PlanRow> rows;      // usable, best first (by the objective)
  std::vector<PlanRow> rejected;  // with the reason
  std::vector<int> pareto;        // indices into rows: time against cost, fastest first
  int evaluated = 0;
  // Choices named on --algorithms that did not run on some GPU counts searched beyond one: the
  // choice's name and those counts, e.g. {"nccl-tree/LL128", {16}}. (One-GPU rows reduce nothing.)
  std::vector<std::pair<std::string, std::vector<int>>> not_run;
  // Precisions left out of the default search: only a share of the datasheet peak stood behind
  // their compute speed, e.g. {"fp16", "roofline estimate at 50% of fp16 peak (...)"}.
  std::vector<std::pair<std::string, std::string>> unmeasured;
  double search_s = 0;
  bool cost_in_gpu_hours = true;
};

PlanResult make_plan(const topo::Topology& cluster, const sim::DeviceProfile& profile,
                     const PlanOptions& options);

// The best row as a `basin.plan/1` document (docs/plan-format.md) and the command that runs it.
nlohmann::json plan_document(const PlanResult& result, const PlanRow& row, const PlanOptions& o);
std::string train_command(const std::string& plan_path, const PlanRow& row);

// Why plan `a` beats or loses to plan `b`, resource by resource (compute, exposed
// communication, input pipeline per iteration), for the what-if comparison.
std::string explain_difference(const PlanRow& a, const std::string& a_name, const PlanRow& b,
                               const std::string& b_name);

}  // namespace basin::plan
