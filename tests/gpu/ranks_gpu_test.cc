// Data-parallel training on the GPU backend: the flat operations behind micro-batch accumulation
// and host staging, two ranks sharing one GPU through the Gloo staged path against one rank
// summing the same two shards as micro-batches (the check), and, with two GPUs, the same
// through NCCL. The CPU suite proves the same logic with a device double (device_path_test.cc);
// these are what only a GPU can show.
#include "../catch.h"
#include "../temp_dir.h"
#include "backend_util.h"

#include <basin/data.h>
#include <basin/train.h>

#include <cuda_runtime.h>

#include <cmath>
#include <thread>

using namespace basin;
using namespace basin::exec;
using namespace basin::exec::gpu_test;

TEST_CASE("The GPU backend's accumulate and copy_flat are the flat sum and copy", "[exec][gpu]") {
  auto b = make_gpu_backend();
  const long long n = 1000003;  // odd, past one cuBLAS block
  std::vector<float> dst(n), src(n);
  for (long long i = 0; i < n; ++i) dst[i] = float(i % 977), src[i] = 0.5f * float(i % 13);
  Flat d = upload(*b, dst), s = upload(*b, src);
  b->accumulate(d.get(), s.get(), n);
  std::vector<float> sum = download(*b, d);
  long long wrong = 0;
  for (long long i = 0; i < n; ++i) wrong += sum[i] != dst[i] + src[i];  // exact: small halves
  CHECK(wrong == 0);
  b->copy_flat(d.get(), s.get(), n - 1);
  sum = download(*b, d);
  CHECK(sum[0] == src[0]);
  CHECK(sum[n - 2] == src[n - 2]);
  CHECK(sum[n - 1] == dst[n - 1] + src[n - 1]);  // one past the copy is untouched
}

TEST_CASE("The GPU backend's host staging memory is page-locked", "[exec][gpu]") {
  auto b = make_gpu_backend();
  auto staging = b->alloc_host_staging(4096);
  cudaPointerAttributes attributes{};
  REQUIRE(cudaPointerGetAttributes(&attributes, staging.get()) == cudaSuccess);
  CHECK(attributes.type == cudaMemoryTypeHost);
}

#if BASIN_HAVE_GLOO

namespace {

struct Run {
  basin::test::TempDir dir{"gpu-ranks"};
  TrainConfig c;
  Run() {
    data::write_synth_dataset(dir.path / "data", {.classes = 10, .train_per_class = 40,
                                                  .val_per_class = 2, .seed = 3},
                              false);
    c.data = dir.path / "data";
    c.model = "resnet-custom";
    c.shape = {.blocks = {1, 1, 1}, .bottleneck = false, .width = 8, .image_size = 48};
    c.batch = 4;
    c.epochs = 1;
    c.stop_after = 3;
    c.validate = true;  // sharded validation reads logits from the device on every rank
    c.loader_threads = 1;
    c.schedule = {.base_lr = 0.2, .base_batch = 16, .warmup_epochs = 0};
    c.progress_every_s = 1e9;
  }
};

// `ranks` threads of train(), rank r on GPU device_of(r), meeting through an in-process store;
// returns the weights rank 0 checkpointed.
template <class DeviceOf>
std::vector<float> run_ranks(TrainConfig c, int ranks, int micro, DeviceOf device_of) {
  c.micro_batches = micro;
  c.world_size = ranks;
  std::vector<std::string> errors(ranks);
  auto store = comm::make_in_process_store();
  std::vector<std::thread> threads;
  for (int r = 0; r < ranks; ++r)
    threads.emplace_back([&, r] {
      try {
        // Deterministic convolutions: the shards' gradients must not depend on atomics' order.
        auto backend = make_gpu_backend({.device = device_of(r), .deterministic = true});
        std::unique_ptr<comm::Communicator> mesh;
        TrainConfig mine = c;
        if (ranks > 1) {
          mesh = comm::connect({.rank = r, .world_size = ranks, .store = comm::StoreKind::in_process,
                                .in_process = store, .timeout = std::chrono::milliseconds(60000)});
          mine.comm = mesh.get();
        }
        train(mine, *backend);
      } catch (const std::exception& e) {
        errors[r] = e.what();
      }
    });
  for (auto& t : threads) t.join();
  for (const auto& e : errors) REQUIRE(e == "");
  auto backend = make_gpu_backend();
  Net net(network_for(c, 10), *backend, c.batch);
  const std::shared_ptr<float> velocity = backend->alloc_flat(static_cast<long long>(net.params().size()));
  REQUIRE(read_checkpoint(c.out / "checkpoint.basin", net,
                          std::span<float>(velocity.get(), net.params().size())).step == 3);
  return net.to_host(net.params());
}

double difference(const std::vector<float>& a, const std::vector<float>& b) {
  REQUIRE(a.size() == b.size());
  double rms = 0, worst = 0;
  for (float x : a) rms += double(x) * x;
  rms = std::sqrt(rms / a.size());
  for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::abs(double(a[i]) - b[i]));
  return worst / rms;
}

}  // namespace

TEST_CASE("Two ranks sharing one GPU through Gloo reach one rank's weights", "[exec][gpu][train][comm]") {
  Run run;
  TrainConfig c = run.c;
  c.out = run.dir.path / "one";
  const std::vector<float> one = run_ranks(c, 1, 2, [](int) { return 0; });
  // Each rank computes its shard's gradient with the same kernels the micro-batch does, and a
  // sum of two is the same in either order, so only run-to-run nondeterminism (batch norm's
  // reductions) separates them; data_parallel_test.cc's 1e-5 of the weights' scale covers the
  // reordering of four ranks on the CPU.
  c.out = run.dir.path / "two-gloo";
  c.gpu_collective = TrainConfig::GpuCollective::gloo;
  const double d = difference(one, run_ranks(c, 2, 1, [](int) { return 0; }));
  INFO("two ranks on one GPU through Gloo: " << d);
  CHECK(d < 1e-5);

  c.out = run.dir.path / "two-gloo-buckets";
  c.bucket_mb = 0.02;
  c.overlap = false;
  CHECK(difference(one, run_ranks(c, 2, 1, [](int) { return 0; })) < 1e-5);
}

TEST_CASE("Two ranks on two GPUs through NCCL reach one rank's weights", "[exec][gpu][train][nccl]") {
  int gpus = 0;
  if (cudaGetDeviceCount(&gpus) != cudaSuccess || gpus < 2) {
    WARN("skipped: NCCL needs one GPU per rank and this machine has " << gpus);
    return;
  }
  if (!BASIN_HAVE_NCCL) {
    WARN("skipped: built without NCCL");
    return;
  }
  Run run;
  TrainConfig c = run.c;
  c.out = run.dir.path / "one";
  const std::vector<float> one = run_ranks(c, 1, 2, [](int) { return 0; });
  for (auto algorithm : {TrainConfig::NcclAlgorithm::ring, TrainConfig::NcclAlgorithm::tree}) {
    TrainConfig n = c;
    n.out = run.dir.path / (algorithm == TrainConfig::NcclAlgorithm::ring ? "ring" : "tree");
    n.gpu_collective = TrainConfig::GpuCollective::nccl;
    n.nccl_algorithm = algorithm;
    // Two GPUs of one model run the same kernels; 1e-5 as above.
    const double d = difference(one, run_ranks(n, 2, 1, [](int r) { return r; }));
    INFO("NCCL " << (algorithm == TrainConfig::NcclAlgorithm::ring ? "ring" : "tree") << ": " << d);
    CHECK(d < 1e-5);
  }
}

#endif
