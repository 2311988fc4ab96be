// Data-parallel training on the GPU backend: the flat operations behind micro-batch accumulation
// and host staging, two ranks sharing one GPU through the Gloo staged path against one rank
// summing the same two shards as micro-batches (the check), four as two servers through
// the hierarchical allreduce, also with bf16 on the wire, two servers of one rank through NCCL
// inside and Gloo between (Goyal et al.'s three phases as priced), and, with two GPUs, the same
// through NCCL. The CPU suite proves the same logic with a device
// double (device_path_test.cc); these are what only a GPU can show.
#include "../catch.h"
#include "../exec/train_fixture.h"
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

namespace fixture = basin::exec::test;

struct Run : fixture::SmallRun {
  Run() : SmallRun("gpu-ranks") {
    c.validate = true;  // sharded validation reads logits from the device on every rank
  }
};

// `ranks` threads of train(), rank r on GPU device_of(r); returns the weights rank 0
// checkpointed.
template <class DeviceOf>
std::vector<float> run_ranks(const TrainConfig& c, int ranks, int micro, DeviceOf device_of, int per_server = 1,
                             std::chrono::seconds timeout = std::chrono::seconds(60)) {
  // Deterministic convolutions: the shards' gradients must not depend on atomics' order.
  fixture::train_ranks(c, ranks, micro, [&](int r) {
    return make_gpu_backend({.device = device_of(r), .deterministic = true});
  }, timeout, per_server);
  auto backend = make_gpu_backend();
  return fixture::checkpoint_weights(c, *backend);
}

// What the ranks must reach: one rank summing `micro` micro-batches, written under `name`.
std::vector<float> one_rank(const Run& run, const char* name, int micro) {
  TrainConfig c = run.c;
  c.out = run.dir.path / name;
  return run_ranks(c, 1, micro, [](int) { return 0; });
}

// How far training moved the weights from their start: the scale a 16-bit wire's rounding is
// bounded by.
double moved_by_training(const Run& run, const std::vector<float>& trained) {
  auto backend = make_gpu_backend();
  Net initial(network_for(run.c, 10), *backend, run.c.batch);
  initial.init({.seed = run.c.seed, .zero_init_residual = run.c.zero_init_residual});
  return fixture::weight_difference(trained, initial.to_host(initial.params()));
}

}  // namespace

TEST_CASE("Two ranks sharing one GPU through Gloo reach one rank's weights", "[exec][gpu][train][comm]") {
  Run run;
  TrainConfig c = run.c;
  const std::vector<float> one = one_rank(run, "one", 2);
  // Each rank computes its shard's gradient with the same kernels the micro-batch does, and a
  // sum of two is the same in either order, so only run-to-run nondeterminism (batch norm's
  // reductions) separates them; data_parallel_test.cc's 1e-5 of the weights' scale covers the
  // reordering of four ranks on the CPU.
  c.out = run.dir.path / "two-gloo";
  c.gpu_collective = TrainConfig::GpuCollective::gloo;
  const double d = fixture::weight_difference(one, run_ranks(c, 2, 1, [](int) { return 0; }));
  INFO("two ranks on one GPU through Gloo: " << d);
  CHECK(d < 1e-5);

  c.out = run.dir.path / "two-gloo-buckets";
  c.bucket_mb = 0.02;
  c.overlap = false;
  CHECK(fixture::weight_difference(one, run_ranks(c, 2, 1, [](int) { return 0; })) < 1e-5);

  // Goyal et al.'s three phases on the staged path: 4 ranks on the one GPU as 2 servers of 2
  // (reduce in each, halving-doubling between the first ranks, broadcast), against one rank
  // summing 4 micro-batches.
  const std::vector<float> four = one_rank(run, "one-of-four", 4);
  TrainConfig h = run.c;
  h.out = run.dir.path / "hierarchical";
  h.gpu_collective = TrainConfig::GpuCollective::gloo;
  h.allreduce.algorithm = comm::Algorithm::hierarchical;
  const double dh = fixture::weight_difference(four, run_ranks(h, 4, 1, [](int) { return 0; }, 2));
  INFO("four ranks on one GPU, hierarchical through Gloo: " << dh);
  CHECK(dh < 1e-5);

  // bf16 on the wire: the weights move from fp32's by about the rounding, within the bound of
  // tests/exec/data_parallel_test.cc (4 u of how far the steps moved them, u = 2^-8).
  const double moved = moved_by_training(run, one);
  c.out = run.dir.path / "two-gloo-bf16";
  c.bucket_mb = run.c.bucket_mb;
  c.overlap = true;
  c.allreduce.precision = comm::WirePrecision::bf16;
  const double off = fixture::weight_difference(one, run_ranks(c, 2, 1, [](int) { return 0; }));
  INFO("bf16 wire: weights off by " << off << " of their rms; the steps moved them by " << moved);
  CHECK(off > 0);
  CHECK(off < 4 * 0x1p-8 * moved);
}

// Goyal et al.'s three phases as priced (NCCL's reduce and broadcast in each server, Gloo between
// the servers' first ranks on one host copy each): on one GPU, 2 ranks as 2 servers of one (NCCL
// refuses two ranks of one communicator on one GPU; one-rank communicators share it), so the GPU
// is copied to host, summed by Gloo's halving-doubling and copied back, against one rank summing
// 2 micro-batches; in fp32 and with bf16 on the wire. With 2 GPUs, 4 ranks as 2 servers of 2.
//
// Tagged [shared-context] and run last (scripts/gpu_session.sh): the ranks are threads of one
// process, so they share one CUDA context, and a leader's stream parks on the GPU until the other
// server's Gloo sum arrives. A call that synchronises the whole context on the other rank's
// thread (cudaFree during its first step's algorithm search) then waits on that parked stream,
// which waits for that very rank: a hang until the run's timeout, which only ranks sharing a
// process can meet (one process per GPU, as basin train runs them, has a context each). The
// timeout is short so that a hang costs seconds, and says so.
TEST_CASE("Servers of one rank through NCCL inside and Gloo between reach one rank's weights",
          "[exec][gpu][train][comm][shared-context]") {
  if (!BASIN_HAVE_NCCL) {
    WARN("skipped: built without NCCL");
    return;
  }
  Run run;
  const TrainConfig c = run.c;
  const std::vector<float> one = one_rank(run, "one", 2);
  const std::vector<float> four = one_rank(run, "one-of-four", 4);
  const auto timeout = std::chrono::seconds(20);
  TrainConfig g = run.c;
  g.out = run.dir.path / "nccl-gloo";
  g.gpu_collective = TrainConfig::GpuCollective::nccl_gloo;
  g.allreduce.algorithm = comm::Algorithm::hierarchical;
  const double dg = fixture::weight_difference(one, run_ranks(g, 2, 1, [](int) { return 0; }, 1, timeout));
  INFO("two servers of one rank on one GPU, NCCL inside and Gloo between: " << dg);
  CHECK(dg < 1e-5);
  int gpus = 0;
  if (cudaGetDeviceCount(&gpus) == cudaSuccess && gpus >= 2) {
    g.out = run.dir.path / "nccl-gloo-2x2";
    const double d4 = fixture::weight_difference(four, run_ranks(g, 4, 1, [](int r) { return r % 2; }, 2, timeout));
    INFO("two servers of two GPUs, NCCL inside and Gloo between: " << d4);
    CHECK(d4 < 1e-5);
  } else {
    WARN("skipped: 2 servers of 2 GPUs through NCCL and Gloo need 2 GPUs; this machine has " << gpus);
  }
  // bf16 on the wire, bounded as the Gloo path's (4 u of how far the steps moved the weights).
  const double moved = moved_by_training(run, one);
  g.out = run.dir.path / "nccl-gloo-bf16";
  g.bucket_mb = run.c.bucket_mb;
  g.overlap = true;
  g.allreduce.precision = comm::WirePrecision::bf16;
  const double off = fixture::weight_difference(one, run_ranks(g, 2, 1, [](int) { return 0; }, 1, timeout));
  INFO("three phases, bf16 wire: weights off by " << off << "; the steps moved them by " << moved);
  CHECK(off > 0);
  CHECK(off < 4 * 0x1p-8 * moved);
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
  const TrainConfig c = run.c;
  const std::vector<float> one = one_rank(run, "one", 2);
  for (auto algorithm : {TrainConfig::NcclAlgorithm::ring, TrainConfig::NcclAlgorithm::tree}) {
    TrainConfig n = c;
    n.out = run.dir.path / (algorithm == TrainConfig::NcclAlgorithm::ring ? "ring" : "tree");
    n.gpu_collective = TrainConfig::GpuCollective::nccl;
    n.nccl_algorithm = algorithm;
    // Two GPUs of one model run the same kernels; 1e-5 as above.
    const double d = fixture::weight_difference(one, run_ranks(n, 2, 1, [](int r) { return r; }));
    INFO("NCCL " << (algorithm == TrainConfig::NcclAlgorithm::ring ? "ring" : "tree") << ": " << d);
    CHECK(d < 1e-5);
  }
  // fp16 and bf16 on the wire (narrow, NCCL's 16-bit sum, widen on the communication stream):
  // off from fp32's by about the rounding, within 4 u of how far the steps moved the weights
  // (u = 2^-11 fp16, 2^-8 bf16), as the Gloo wire above. A widen that ran before NCCL's sum
  // would leave each rank its own half of the gradient, far outside this.
  const double moved = moved_by_training(run, one);
  for (auto wire : {comm::WirePrecision::fp16, comm::WirePrecision::bf16}) {
    TrainConfig n = c;
    n.out = run.dir.path / (std::string("nccl-") + comm::name(wire));
    n.gpu_collective = TrainConfig::GpuCollective::nccl;
    n.allreduce.precision = wire;
    const double u = wire == comm::WirePrecision::fp16 ? 0x1p-11 : 0x1p-8;
    const double off = fixture::weight_difference(one, run_ranks(n, 2, 1, [](int r) { return r; }));
    INFO("NCCL " << comm::name(wire) << " wire: weights off by " << off << "; the steps moved them by " << moved);
    CHECK(off > 0);
    CHECK(off < 4 * u * moved);
  }
}

#endif
