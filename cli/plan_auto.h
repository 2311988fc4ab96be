// `basin train --plan auto`: a plan for the machine this runs on (plan_auto.cc).
#pragma once

#include <filesystem>
#include <string>

namespace basin::cli {

struct AutoPlanRequest {
  std::filesystem::path out;     // the run directory: plan.json and topology.json go here
  std::string model;             // the planner's model name ("resnet50")
  int batch_per_device = 32;
  double epochs = 90;
  long long dataset_images = 0;  // the training split's size
  std::string hwloc_xml;         // discover from this hwloc XML export instead of this machine
  bool use_nvml = true;
  int ranks = 0;                 // 0: the plan's choice; else the ranks already asked for (--nproc)
};

struct AutoPlan {
  std::string plan_path;
  bool needs_gpus = false;    // the plan runs on GPUs (the planner's best plan for them)
  int ranks = 1;
  int threads_per_rank = 0;   // CPU plans: cores of the rank's NUMA node
  std::string summary;        // what was found and chosen, one line per fact
};

// Discovers the machine, writes its topology and the plan under `out`, and says what it chose:
// on GPUs the planner's best plan among those the GPU trainer runs (GPU count, batch, NCCL's
// ring, tree or NVLS, bucket, fp32/fp16/bf16 compute; one GPU without NCCL); on a machine without GPUs one rank per NUMA node with that node's cores as its
// threads. Throws topo::InputError when the machine cannot be planned for.
AutoPlan make_auto_plan(const AutoPlanRequest& request);

}  // namespace basin::cli
