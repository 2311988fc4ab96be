// basin training simulator: one data-parallel iteration of a network on a set of GPUs.
//
// Compute per layer comes from a device profile (profiles/devices/*.json): a roofline of the
// device's peak FLOP/s and memory bandwidth, scaled so the whole network matches a measured
// throughput where the profile has one, and labelled an estimate where it has none. Gradients
// become ready layer by layer during backward, are grouped into buckets, and each bucket's
// allreduce starts when it is full and the previous one is done (one communication stream),
// overlapping the rest of backward. The input pipeline may bound the iteration.
#pragma once

#include <basin/model.h>
#include <basin/sim.h>

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace basin::sim {

enum class Precision { fp32, fp16, bf16 };
const char* to_string(Precision p);
Precision precision_from_string(const std::string& text, const std::string& origin = "--precision");
double bytes_per_value(Precision p);  // of activations and communicated gradients

struct MeasuredThroughput {
  std::string model;
  Precision precision = Precision::fp32;
  int batch_per_gpu = 0;
  double images_per_s = 0;
  std::string source;
  // Optional: the measured backprop time of one iteration at that batch (0: unknown, and the
  // roofline's own split between forward and backward stands). Only backprop can hide the
  // allreduces, so this sets how much of the iteration communication can overlap.
  double backward_s = 0;
  std::string backward_source;
  // GPUs of the synchronous run that measured it (1: one GPU alone). Its throughput already
  // waited for the slowest of them, which the straggler model takes into account.
  int gpus = 1;
};

struct DeviceProfile {
  std::string file;                 // where it was loaded from
  std::string device;
  std::vector<std::string> match;   // substrings of GPU model names it applies to
  double memory_GB = 0;
  std::string memory_of;  // the GPU whose memory_GB this is, where the topology stated it
  std::string gpu_model;  // the topology's GPU model this profile was found for (device_profile_for)
  std::string matched_by;  // the `match` string that found it (find_device_profile)
  double memory_GBps = 0;
  double peak_TFLOPS_fp32 = 0, peak_TFLOPS_fp16 = 0, peak_TFLOPS_bf16 = 0;
  std::vector<MeasuredThroughput> measured;
  // A device nobody has measured yet borrows another's measured share of its roofline (the
  // profile's "efficiency_of"): the sim runs this device at the fraction of its own peaks that
  // the reference device reached, and says so.
  std::shared_ptr<const DeviceProfile> efficiency_of;
};

// The GPU a profile's memory_GB belongs to: the topology's where it stated it, else the profile's.
inline const std::string& memory_owner(const DeviceProfile& p) { return p.memory_of.empty() ? p.device : p.memory_of; }

DeviceProfile load_device_profile(const std::string& path);  // throws topo::InputError
// The profile in `dir` whose `match` names the GPU model, or InputError listing what exists.
DeviceProfile find_device_profile(const std::string& dir, const std::string& gpu_model);
std::string default_profiles_dir();  // $BASIN_PROFILES, else the source tree's profiles/devices
// The profile for a GPU of a topology: find_device_profile by its model, with the GPU's own memory
// where the topology states it (the topology describes the hardware; a 141 GB H200 runs on the
// H100's measurements but has its own memory), recorded in `memory_of`.
DeviceProfile device_profile_for(const std::string& dir, const topo::Node& gpu);
// The profile for a run on `gpus` of `t`: one device profile times every GPU's step, so GPUs
// whose models find different profiles are refused, naming two of them and `t.source`; the
// memory is the smallest any of them has (the topology's memory_GB, else its profile's).
DeviceProfile device_profile_for(const std::string& dir, const topo::Topology& t,
                                 const std::vector<topo::Vertex>& gpus);

// The GPUs a run of `count` uses (placement.cc): each server's in turn, all of them (per_server
// 0) or at most `per_server` on each; count 0: every GPU that allows. Throws topo::InputError
// naming `count_flag` when the cluster has too few.
std::vector<topo::Vertex> gpus_in_use(const topo::Topology& cluster, int count, int per_server,
                                      const std::string& count_flag = "--gpus");
int gpus_on_a_server(const topo::Topology& cluster);  // the most GPUs any server has
// Every GPU of the cluster; an InputError naming its file (or --cluster) where it has none.
std::vector<topo::Vertex> require_gpus(const topo::Topology& cluster);
// Where no route joins the servers (fabric=none, or a file whose servers share no switch), the
// GPUs a run can use: the first server's; else 0 (every GPU).
int unjoined_server_gpus(const topo::Topology& cluster);

struct TrainingConfig {
  model::Network network;
  int gpus = 8;
  // GPUs used on each server: 0, all of each server's in turn; fewer spreads the run over more
  // servers, each GPU with more of its host's CPU cores (gpus_in_use).
  int gpus_per_server = 0;
  int batch_per_gpu = 32;
  Algorithm algorithm = Algorithm::hierarchical;
  Algorithm inter = Algorithm::halving_doubling;  // for hierarchical
  double bucket_MB = 0;                           // 0: one allreduce per layer with weights
  Precision precision = Precision::fp32;
  std::optional<Precision> wire_precision;  // of the communicated gradients; unset: precision
  NetworkParams network_params{.per_message_overhead_us = 5, .reduce_GBps = 0};
  HostStaging host_staging;  // hierarchical over TCP: Gloo's copies through host memory
  // JPEG decode + augment, images/s on one CPU core (the one default for sim, plan and their
  // command lines). 150: what a PyTorch DataLoader worker (Pillow decode, torchvision transforms)
  // delivers at least, from NVIDIA's published one-GPU DGX-1 ResNet-50 AMP run (1200 images/s
  // from 8 workers; reports/published-scaling.md). basin's own loader does more
  // (reports/data-pipeline-2026-11-23.md): measure yours with `basin data load`.
  double decode_images_per_s_per_core = 150;
  double cores_per_gpu = 0;  // 0: the server's cores / its GPUs used; none stated: pipeline not modelled
  // JPEG decode on each GPU beside its CPU cores (NVIDIA DALI's "mixed" decoder: the A100's and
  // H100's hardware JPEG engines, which run beside the SMs), images/s; 0: none. No default: the
  // one public reading for an A100, 5,000 to 8,000 images/s, is not a table of NVIDIA's.
  double gpu_decode_images_per_s = 0;
  long long epoch_images = 1281167;           // ImageNet-1k training set
  // Step-to-step variation of one GPU's compute time (coefficient of variation, 0: none). A
  // synchronous step waits for the slowest GPU: see straggler_stretch.
  double compute_jitter_cv = 0;
};

// The expected maximum of n independent standard normal draws (0 for n <= 1): 1/sqrt(pi) for 2.
double expected_max_of_standard_normals(int n);
// How much longer the compute of a synchronous step over `gpus` GPUs takes than the profile's,
// measured over `measured_gpus`, when each GPU's compute time varies with coefficient of
// variation cv: (1 + cv e_gpus) / (1 + cv e_measured) (stragglers.cc).
double straggler_stretch(double cv, int gpus, int measured_gpus);

struct Span {
  std::string name;
  std::string lane;  // "compute" or "allreduce"
  double start_s = 0, end_s = 0;
};

// A Chrome-trace counter sample: from time_s on, each named series has its value.
struct Counter {
  double time_s = 0;
  std::map<std::string, double> values;
};

struct IterationResult {
  double iteration_s = 0;
  double compute_s = 0;         // forward + backward + optimizer
  double exposed_comm_s = 0;    // communication not hidden behind backward
  double data_stall_s = 0;      // waiting for the input pipeline
  double comm_total_s = 0;      // all allreduces, hidden or not
  double images_per_s = 0;
  double epoch_s = 0;
  int buckets = 0;
  double gradient_MB = 0;
  double memory_GB = 0;            // device memory one GPU needs for the step (memory_needed_GB)
  bool compute_estimated = false;  // no measured throughput matched: roofline estimate
  bool compute_peak_only = false;  // ... from no measurement at all: a share of the datasheet peak
  std::string compute_basis;       // which measurement or estimate set the compute speed
  double step_overhead_s = 0;      // fixed whatever the batch (0 where none was fitted); compute_s holds
                                   // it stretched by --compute-jitter's straggler factor
  std::string input_basis;         // the CPU cores the input pipeline was given, or why none
  std::vector<Span> spans;
  std::vector<Counter> link_utilization;  // busiest link of each kind, 0..1, over time
  // What the allreduces' time is made of (CollectiveCost::terms), summed over the buckets, and
  // (filled by predict) the iteration time the same run would take without that term: the
  // difference is the term's contribution to the iteration.
  struct CommTerm {
    double total_s = 0;
    double iteration_s_without = 0;
  };
  std::map<std::string, CommTerm> comm_terms;
};

// Throws topo::InputError for impossible requests (more GPUs than the cluster has, a batch that
// does not fit the device's memory).
IterationResult simulate_iteration(const topo::Topology& cluster, const DeviceProfile& profile,
                                   const TrainingConfig& config);
// The same with the allreduce's cost already known (it depends only on the GPUs and the
// algorithm), which is what makes sweeping batch, bucket and precision cheap.
IterationResult simulate_iteration(const topo::Topology& cluster, const DeviceProfile& profile,
                                   const TrainingConfig& config, const CollectiveCost& allreduce);
// Device memory one GPU needs, in GB (1e9 bytes): weights, gradients and optimizer state, plus
// the batch's activations and gradients as the executor keeps them (model/memory_plan.h).
// Library workspaces (cuDNN's, bounded by the executor at 256 MB) are not counted.
double memory_needed_GB(const model::Network& net, int batch_per_gpu, Precision precision);

// How the compute speed of `net` at `precision` on `profile` is known: measured; estimated from a
// measurement (the other 16-bit format at the same peak, the device the profile borrows from,
// another network); or only from a share of the datasheet peak. Throws an InputError naming
// --precision where the profile states no peak for it (bf16 before Ampere).
struct ComputeEvidence {
  enum class Kind { measured, from_measurement, peak_only } kind;
  std::string basis;  // as IterationResult::compute_basis
};
ComputeEvidence compute_evidence(const model::Network& net, Precision precision, const DeviceProfile& profile);

struct Prediction {
  IterationResult result;
  IterationResult one_server;  // same config on one server's GPUs (scaling baseline)
  double scaling_efficiency = 0;  // against one server scaled linearly (Goyal et al.'s measure)
  // Against one GPU scaled linearly, what basin plan reports: on one server the measure above is
  // 100% by construction, however much of the step waits for the allreduce.
  double scaling_efficiency_vs_one_gpu = 0;
};
Prediction predict(const topo::Topology& cluster, const DeviceProfile& profile,
                   const TrainingConfig& config);
// What an allreduce over `gpus` costs on `network` (built on the cluster with the config's
// network parameters). The predict above uses allreduce_cost with the config's algorithm; the
// planner passes NCCL's model of its algorithms (plan::nccl_model) instead.
using AllreduceModel =
    std::function<CollectiveCost(Network& network, const std::vector<topo::Vertex>& gpus)>;
// The same with the allreduce's cost from `model`, for the run and for its one-server baseline.
Prediction predict(const topo::Topology& cluster, const DeviceProfile& profile,
                   const TrainingConfig& config, const AllreduceModel& model);

// Chrome trace (chrome://tracing, Perfetto) of the simulated iteration.
std::string chrome_trace(const IterationResult& r);

}  // namespace basin::sim
