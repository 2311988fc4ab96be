// Per-bucket NCCL allreduce time on this machine's GPUs beside what basin's simulator predicts
// for the same GPUs (plan::nccl_cost, the model `basin select` and `basin plan` use), for the
// gradient buckets of ResNet-50: each layer's gradient (bucket_mb 0, as Goyal et al.) and the
// 25 MB buckets PyTorch's DDP uses. The performance check for the NCCL path.
//
//   basin_nccl_bench [--cluster dgx-h100:1] [--ranks N] [--iterations 20]
//
// One thread per GPU, each with its own communicator (exec/src/gpu/nccl_comm.h), as the trainer's
// ranks have; NCCL forbids two ranks on one GPU, so N is at most the GPU count. With one GPU the
// allreduce is NCCL's local copy and the prediction is the latency floor only: run it on a
// multi-GPU machine for a comparison that means something. Needs a GPU; says so otherwise.
#include <basin/cuda_check.h>
#include <basin/model.h>
#include <basin/plan.h>
#include <basin/topology.h>

#include "nccl_check.h"
#include "nccl_comm.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace basin;

namespace {

// Mean seconds of one in-place allreduce of `count` floats on each rank's communicator.
double measure(std::vector<std::unique_ptr<exec::gpu::NcclComm>>& comms, size_t count, int iterations) {
  std::vector<double> seconds(comms.size());
  std::vector<std::string> errors(comms.size());
  std::vector<std::thread> threads;
  for (size_t r = 0; r < comms.size(); ++r)
    threads.emplace_back([&, r] {
     try {
      exec::gpu::NcclComm& comm = *comms[r];
      CUDA_CHECK(cudaSetDevice(comm.options().device));
      cudaStream_t s = nullptr;
      CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
      exec::gpu::OwnedStream stream(s);
      float* data = nullptr;
      CUDA_CHECK(cudaMalloc(&data, std::max<size_t>(count, 1) * sizeof(float)));
      CUDA_CHECK(cudaMemsetAsync(data, 0, std::max<size_t>(count, 1) * sizeof(float), stream.get()));
      const exec::gpu::Event start = exec::gpu::make_event(cudaEventDefault);
      const exec::gpu::Event end = exec::gpu::make_event(cudaEventDefault);
      auto once = [&] {
        NCCL_CHECK(ncclAllReduce(data, data, count, ncclFloat32, ncclSum, comm.get(), stream.get()));
        comm.settle("allreduce");
      };
      for (int i = 0; i < 3; ++i) once();  // warm-up: NCCL sets up channels on first use
      CUDA_CHECK(cudaEventRecord(start.get(), stream.get()));
      for (int i = 0; i < iterations; ++i) once();
      CUDA_CHECK(cudaEventRecord(end.get(), stream.get()));
      comm.wait_for(end.get(), "timing");
      float ms = 0;
      CUDA_CHECK(cudaEventElapsedTime(&ms, start.get(), end.get()));
      seconds[r] = ms * 1e-3 / iterations;
      CUDA_CHECK(cudaFree(data));
     } catch (const std::exception& e) {
      errors[r] = e.what();
     }
    });
  for (auto& t : threads) t.join();
  for (const std::string& e : errors)
    if (!e.empty()) throw std::runtime_error(e);
  return *std::max_element(seconds.begin(), seconds.end());  // the slowest rank's view
}

}  // namespace

int main(int argc, char** argv) {
  std::string cluster = "dgx-h100:1";
  int ranks = 0, iterations = 20;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--cluster")) cluster = argv[i + 1];
    else if (!std::strcmp(argv[i], "--ranks")) ranks = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--iterations")) iterations = std::atoi(argv[i + 1]);
    else {
      std::fprintf(stderr, "usage: %s [--cluster SPEC] [--ranks N] [--iterations K]\n", argv[0]);
      return 2;
    }
  }
  int gpus = 0;
  if (cudaGetDeviceCount(&gpus) != cudaSuccess || gpus == 0) {
    std::printf("skipped: no GPU\n");
    return 77;
  }
  if (ranks <= 0) ranks = gpus;
  if (ranks > gpus || iterations < 1) {
    std::fprintf(stderr, "--ranks: at most %d (one rank per GPU, as NCCL requires); --iterations: 1 or more\n", gpus);
    return 2;
  }
  try {
    // The simulator's view of the same GPUs: `ranks` GPUs of the cluster spec's first server.
    const topo::Topology topo = topo::load_any(cluster);
    const std::vector<topo::Vertex> sim_gpus = plan::pick_gpus(topo, ranks, 0);
    // Timed as `basin select` times NCCL's algorithms (NVLinks at NCCL's own per-link rates).
    sim::Network net(topo, {.per_message_overhead_us = 5, .reduce_GBps = 0});

    // ResNet-50's gradient buckets: each layer's parameters, distinct sizes, and 25 MB.
    std::set<long long> counts;
    for (const model::Layer& l : model::network_by_name("resnet50", 224, 1000).layers)
      if (l.has_params()) counts.insert(l.params);
    counts.insert(25'000'000 / 4);

    std::printf("NCCL %d.%d.%d, %d rank(s) on %d GPU(s); simulator: %s, %d GPU(s)\n", NCCL_MAJOR,
                NCCL_MINOR, NCCL_PATCH, ranks, gpus, topo.name.c_str(), ranks);
    std::printf("%12s %10s | %12s %12s | %12s %12s\n", "floats", "bytes", "ring meas us",
                "ring sim us", "tree meas us", "tree sim us");
    std::vector<std::vector<std::unique_ptr<exec::gpu::NcclComm>>> comms(2);
    const exec::TrainConfig::NcclAlgorithm algorithms[2] = {exec::TrainConfig::NcclAlgorithm::ring,
                                                            exec::TrainConfig::NcclAlgorithm::tree};
    for (int a = 0; a < 2; ++a) {
      ncclUniqueId id{};
      NCCL_CHECK(ncclGetUniqueId(&id));
      comms[a].resize(ranks);
      std::vector<std::thread> init;
      std::vector<std::string> errors(ranks);
      for (int r = 0; r < ranks; ++r)
        init.emplace_back([&, r] {
          try {  // ranks initialize concurrently: NCCL's bootstrap waits for all of them
            comms[a][r] = std::make_unique<exec::gpu::NcclComm>(
                id, exec::gpu::NcclCommOptions{.rank = r, .ranks = ranks, .device = r,
                                               .algorithm = algorithms[a]});
          } catch (const std::exception& e) {
            errors[r] = e.what();
          }
        });
      for (auto& t : init) t.join();
      for (const std::string& e : errors)
        if (!e.empty()) throw std::runtime_error(e);
    }
    for (long long count : counts) {
      const double bytes = 4.0 * count;
      double measured[2], predicted[2];
      for (int a = 0; a < 2; ++a) {
        measured[a] = measure(comms[a], static_cast<size_t>(count), iterations);
        // NCCL's tuner picks the protocol per size, as the planner prices it (Protocol::automatic).
        predicted[a] = plan::nccl_cost(net, sim_gpus, a == 0 ? sim::Algorithm::ring : sim::Algorithm::tree,
                                       plan::Protocol::automatic)
                           .time_s(bytes);
      }
      std::printf("%12lld %10.0f | %12.1f %12.1f | %12.1f %12.1f\n", count, bytes, measured[0] * 1e6,
                  predicted[0] * 1e6, measured[1] * 1e6, predicted[1] * 1e6);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "basin_nccl_bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
