// `basin train`'s devices: the backend `--device` names, and the GPU collective (--gpu-collective,
// --nccl-algorithm) checked against what can run together, before any rank starts. Split from
// train_command.cc, which parses and runs; this file knows CUDA, cuDNN and NCCL's rules.
#include "train_options.h"

#include <basin/kernels.h>
#include <basin/topology.h>
#include <basin/train.h>

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>

#include <sched.h>

namespace basin::cli {

int default_cpu_threads() {
  // Ranks sharing this machine share its cores: --nproc's (BASIN_RANKS_HERE, all of them even
  // when --servers numbers them as several machines') or torchrun's local ones. Each taking every
  // core made 4 ranks on 2 cores 4-10x slower than one thread each. OMP_NUM_THREADS, where set
  // (torchrun sets 1), is the user's word: 0 leaves it to OpenMP. The cores are those this
  // process may run on (a cpuset, taskset), not every online one.
  // Only a positive count (its first item, as OpenMP reads a list) is taken: OpenMP runs "0" or
  // garbage on every core, the slowdown this default exists to avoid.
  if (const char* omp = std::getenv("OMP_NUM_THREADS"); omp && std::atoi(omp) > 0) return 0;
  int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  // With OMP_PROC_BIND or OMP_PLACES, OpenMP has already pinned this thread to one place when
  // basin asks, so the mask says nothing about the process's cores.
  if (cpu_set_t allowed; !std::getenv("OMP_PROC_BIND") && !std::getenv("OMP_PLACES") &&
                         sched_getaffinity(0, sizeof allowed, &allowed) == 0)
    cores = std::max(1, CPU_COUNT(&allowed));
  int here = 1;
  for (const char* name : {"BASIN_RANKS_HERE", "LOCAL_WORLD_SIZE"})
    if (const char* v = std::getenv(name); v && std::atoi(v) > 0) {
      here = std::atoi(v);
      break;
    }
  return std::max(1, cores / here);
}

std::unique_ptr<exec::Backend> make_backend(const TrainOptions& o) {
  if (o.device == "gpu") {
#if BASIN_HAVE_CUDNN
    if (kernels::cuda_device_count() == 0)
      throw topo::InputError("--device", "", "gpu on a machine with a usable CUDA GPU: none found (no driver or no device)");
    const char* local = std::getenv("LOCAL_RANK");
    const int gpus = kernels::cuda_device_count();
    int gpu = o.gpu >= 0 ? o.gpu : local && *local ? std::atoi(local) : 0;
    // Gloo's staged path lets local ranks share GPUs round-robin; NCCL refuses two ranks on
    // one GPU at init, so that is said here, before the rendezvous, in words.
    if (o.gpu < 0 && gpu >= gpus && o.config.gpu_collective == exec::TrainConfig::GpuCollective::gloo)
      gpu %= gpus;
    if (gpu >= gpus)
      throw topo::InputError(o.gpu >= 0 ? "--gpu" : "LOCAL_RANK", "",
                             "a GPU index below " + std::to_string(gpus) + ", got " + std::to_string(gpu) +
                                 (o.gpu < 0 ? " (NCCL needs a GPU per rank: start at most " + std::to_string(gpus) +
                                                  " local ranks, or pass --gpu-collective gloo to share GPUs)"
                                            : std::string()));
    return exec::make_gpu_backend(
        {.device = gpu,
         .tf32 = o.tf32,
         .deterministic = o.deterministic,
         .persistent_batchnorm = o.persistent_batchnorm,
         .precision = o.compute});
#else
    throw topo::InputError("--device", "", "cpu: this basin was built without cuDNN (CUDA toolkit with cuDNN at "
                                           "/usr/local/cuda), so it has no GPU backend");
#endif
  }
  if (o.device != "cpu") throw topo::InputError("--device", "", "cpu or gpu, got '" + o.device + "'");
#if BASIN_HAVE_DNNL
  return exec::make_cpu_backend(o.threads > 0 ? o.threads : default_cpu_threads());
#else
  throw std::runtime_error("this basin was built without oneDNN (libdnnl-dev): no CPU backend to train on");
#endif
}

int gpu_count() {
#if BASIN_HAVE_CUDNN
  return kernels::cuda_device_count();
#else
  return 0;
#endif
}

namespace {

// Whether every rank runs on this machine: --nproc here, or, in a rank that --nproc (or torchrun
// on one node) started, as many ranks on this machine as in all.
bool ranks_on_one_machine(const TrainOptions& o) {
  if (o.nproc > 1) return true;
  const char* local = std::getenv("LOCAL_WORLD_SIZE");
  const char* world = std::getenv("WORLD_SIZE");
  return local && world && *world && std::string(local) == world && std::string(world) != "1";
}

}  // namespace

void choose_gpu_collective(TrainOptions& o, const GivenFlag& given) {
  auto& c = o.config;
  const bool gpu = o.device == "gpu";
  std::string collective = o.gpu_collective;
  if (collective.empty()) collective = gpu && BASIN_HAVE_NCCL ? "nccl" : "gloo";
  if (collective != "nccl" && collective != "gloo" && collective != "nccl+gloo")
    throw topo::InputError("--gpu-collective", "", "nccl, gloo or nccl+gloo, got '" + collective + "'");
  const bool hybrid = collective == "nccl+gloo";
  if (o.nccl_algorithm != "auto" && o.nccl_algorithm != "ring" && o.nccl_algorithm != "tree" &&
      o.nccl_algorithm != "nvls" && o.nccl_algorithm != "nvls-tree" && o.nccl_algorithm != "collnet-chain")
    throw topo::InputError("--nccl-algorithm", "", "auto, ring, tree, nvls, nvls-tree or collnet-chain, got '" +
                                                       o.nccl_algorithm + "'");
  // NVLS-tree runs between servers, and --nproc starts every rank on this one, where NCCL
  // disables it. Asked for, that is an error; a plan's NVLS-tree run here is NVLS, what NCCL runs
  // on one server (and what the planner's model of NVLS-tree is there).
  if (collective == "nccl" && o.nccl_algorithm == "nvls-tree" && ranks_on_one_machine(o)) {
    if (given("--nccl-algorithm"))
      throw topo::InputError("--nccl-algorithm", "", "nvls, ring, tree or auto with --nproc: nvls-tree runs between "
                             "servers, and --nproc starts every rank on this one (NCCL disables NVLS-tree there)");
    o.nccl_algorithm = "nvls";
  }
  // Likewise CollNet's chain: on one machine NCCL has no CollNet, and the planner's model of it
  // there is the chains alone, NCCL's tree.
  if (collective == "nccl" && o.nccl_algorithm == "collnet-chain" && ranks_on_one_machine(o)) {
    if (given("--nccl-algorithm"))
      throw topo::InputError("--nccl-algorithm", "", "ring, tree, nvls or auto with --nproc: collnet-chain runs "
                             "between servers, and --nproc starts every rank on this one (NCCL's CollNet needs two)");
    o.nccl_algorithm = "tree";
  }
  if ((collective == "nccl" || hybrid) && !gpu)
    throw topo::InputError("--gpu-collective", "", "gloo with --device " + o.device + " (" + collective +
                           " sums GPU memory: pass --device gpu)");
  if ((collective == "nccl" || hybrid) && !BASIN_HAVE_NCCL)
    throw topo::InputError("--gpu-collective", "", "gloo: this basin was built without NCCL (nccl.h and "
                           "libnccl next to the CUDA toolkit), got " + collective);
  if (collective != "nccl" && given("--nccl-algorithm"))
    throw topo::InputError("--nccl-algorithm", "", "no NCCL algorithm with --gpu-collective " + collective +
                           std::string(gpu ? "" : " or --device cpu") +
                           (hybrid ? " (NCCL's reduce and broadcast inside a server are its ring; Gloo's algorithm "
                                     "between servers is --inter)"
                                   : " (Gloo's is --algorithm)"));
  // NCCL inside each server, Gloo between: Goyal et al.'s three phases, nothing else.
  if (hybrid && c.allreduce.algorithm != comm::Algorithm::hierarchical) {
    if (given("--algorithm"))
      throw topo::InputError("--algorithm", "", "hierarchical (or none) with --gpu-collective nccl+gloo, which runs "
                             "the three phases, got " + o.algorithm);
    o.algorithm = "hierarchical";
    c.allreduce.algorithm = comm::Algorithm::hierarchical;
  }
  if (collective == "nccl" && given("--inter"))
    throw topo::InputError("--inter", "", "no Gloo algorithm with --gpu-collective nccl (NCCL's is --nccl-algorithm)");
  if (collective == "nccl" && given("--algorithm"))
    throw topo::InputError("--algorithm", "", "no Gloo algorithm with --gpu-collective nccl (NCCL's is "
                           "--nccl-algorithm ring, tree, nvls, nvls-tree, collnet-chain or auto)");
  // One --gpu for every local rank puts them all on that GPU, which NCCL refuses at init (with
  // nccl+gloo, where they share a server: emulated servers of one rank each may share it).
  const char* local_ranks = std::getenv("LOCAL_WORLD_SIZE");
  const int per_server = hybrid ? o.nproc / std::max(1, o.servers) : o.nproc;
  if ((collective == "nccl" || hybrid) && o.gpu >= 0 && (per_server > 1 || (local_ranks && std::atoi(local_ranks) > 1)))
    throw topo::InputError("--gpu", "", "none with several local ranks and --gpu-collective " + collective +
                           " (each rank takes GPU LOCAL_RANK), got " + std::to_string(o.gpu) + " for every rank: "
                           "NCCL runs one rank per GPU" + (hybrid ? " of a server" : "") +
                           "; --gpu-collective gloo lets ranks share one");
  c.gpu_collective = collective == "nccl"   ? exec::TrainConfig::GpuCollective::nccl
                     : hybrid               ? exec::TrainConfig::GpuCollective::nccl_gloo
                                            : exec::TrainConfig::GpuCollective::gloo;
  using Nccl = exec::TrainConfig::NcclAlgorithm;
  c.nccl_algorithm = o.nccl_algorithm == "ring"        ? Nccl::ring
                     : o.nccl_algorithm == "tree"      ? Nccl::tree
                     : o.nccl_algorithm == "nvls"      ? Nccl::nvls
                     : o.nccl_algorithm == "nvls-tree" ? Nccl::nvls_tree
                     : o.nccl_algorithm == "collnet-chain" ? Nccl::collnet_chain
                                                       : Nccl::automatic;
}

}  // namespace basin::cli
