// `basin train`'s options as parsed from flags, and how a basin.plan/1 file (or `--plan auto`)
// fills them: train_command.cc runs them, train_plan.cc maps plans onto them.
#pragma once

#include <basin/train.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace basin::cli {

struct TrainOptions {
  exec::TrainConfig config;
  std::string data, out = "basin-run", plan, decay = "step", precision = "fp32";
  std::string algorithm = "ring_chunked", wire = "fp32";
  std::string inter = "halving_doubling";  // Gloo's algorithm between servers for --algorithm hierarchical
  std::string hwloc_xml;
  std::string device = "cpu";
  std::string input_stage = "auto";  // --input-stage: auto, cpu or gpu
  std::string gpu_collective;  // empty: nccl for --device gpu when built with NCCL, else gloo
  std::string nccl_algorithm = "auto";
  int gpu = -1;  // -1: LOCAL_RANK, else 0
  bool tf32 = false, deterministic = false, persistent_batchnorm = false;
  exec::Precision compute = exec::Precision::fp32;  // parsed from `precision`
  std::string loss_scale = "auto";  // auto (dynamic for fp16, off otherwise), dynamic, off
  int threads = 0, nproc = 1;
  int servers = 1;  // --servers: the --nproc ranks numbered as this many machines' (emulated)
  double comm_timeout_s = 300;
  bool no_zero_init = false, no_validate = false, quiet = false, no_overlap = false;
};

// Whether the user gave a flag (flags win over the plan's fields).
using GivenFlag = std::function<bool(const char*)>;

// WORLD_SIZE when this process is a rank that a launcher (basin's --nproc, torchrun, a batch
// system) started, else 1.
int ranks_from_env();
// Fills the options from a plan file; flags the user gave win over the plan. Throws
// topo::InputError naming the file and the field.
void apply_plan(const std::string& path, TrainOptions& o, const GivenFlag& given);
// The plan file's JSON pointer for a TrainConfig field the trainer names in its refusals
// ("base_lr" -> "/lr_schedule/base_lr"); empty for a field no plan sets.
std::string plan_field_of(const std::string& trainer_field);
// `--plan auto`: plans for this machine, then runs that plan file as if it had been given; ranks
// started by --nproc get the file's path (and the plan's thread count) instead of "auto", so they
// all run the one plan the launcher wrote. Returns the arguments the ranks get.
std::vector<std::string> plan_for_this_machine(TrainOptions& o, const GivenFlag& given, int argc,
                                               char** argv);

// The backend `--device` names: oneDNN on the CPU, or cuDNN + cuBLAS on GPU `--gpu` (LOCAL_RANK
// when not given, so local ranks take one GPU each). train_gpu.cc, as the three below.
std::unique_ptr<exec::Backend> make_backend(const TrainOptions& o);
// --threads 0 on the CPU: this machine's cores over the ranks on it (--nproc's, or torchrun's
// LOCAL_WORLD_SIZE), at least 1.
int default_cpu_threads();
// CUDA devices this basin can use (0 when built without cuDNN).
int gpu_count();
// --gpu-collective and --nccl-algorithm onto the config, refusing what cannot run together.
void choose_gpu_collective(TrainOptions& o, const GivenFlag& given);

}  // namespace basin::cli
