// NCCL on GPUs: the communicator of exec/src/gpu/nccl_comm.h (unique id, algorithm per
// communicator, non-blocking waits) summing buffers of awkward sizes. NCCL allows one rank per
// GPU, so on a one-GPU machine only a one-rank communicator runs (its allreduce must be the
// identity, bit for bit); the two-rank sums need two GPUs and are skipped, visibly, otherwise.
// The gradient transport on a one-rank communicator shows the 16-bit wires' narrowing and
// widening around NCCL, bit for bit against the CPU rounding.
#include "../catch.h"

#include <basin/backend.h>
#include <basin/cuda_check.h>
#include <basin/kernels.h>

#include "nccl_check.h"
#include "nccl_comm.h"
#include "nccl_transport.h"

#include <cmath>
#include <cstring>
#include <random>
#include <span>
#include <string>
#include <thread>
#include <vector>

using namespace basin;
using namespace basin::exec;

namespace {

// Counts that are neither powers of two nor multiples of NCCL's chunk sizes, and one of a
// ResNet-50 bucket's size (the fc layer's weights and bias, 2,049,000 floats).
const std::vector<size_t> kCounts = {1, 7, 1000, 65537, 2049000};

// rank r's value at i: small integers, so any summation order gives the exact sum.
float value(int rank, size_t i) { return float((rank + 1) * (i % 1000)); }

// Allreduces every count on `comm` (device `device`); returns the number of wrong elements.
long long allreduce_all(gpu::NcclComm& comm, int ranks) {
  const int rank = comm.options().rank;
  CUDA_CHECK(cudaSetDevice(comm.options().device));
  cudaStream_t s = nullptr;
  CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  gpu::OwnedStream stream(s);
  const gpu::Event done = gpu::make_event(cudaEventDefault);
  long long wrong = 0;
  for (size_t n : kCounts) {
    std::vector<float> host(n);
    for (size_t i = 0; i < n; ++i) host[i] = value(rank, i);
    float* d = nullptr;
    CUDA_CHECK(cudaMalloc(&d, n * sizeof(float)));
    // On the allreduce's own stream: a non-blocking stream does not wait for the default
    // stream, and a pageable copy may still be on its way when cudaMemcpy returns.
    CUDA_CHECK(cudaMemcpyAsync(d, host.data(), n * sizeof(float), cudaMemcpyHostToDevice, stream.get()));
    NCCL_CHECK(ncclAllReduce(d, d, n, ncclFloat32, ncclSum, comm.get(), stream.get()));
    comm.settle("allreduce of " + std::to_string(n));
    CUDA_CHECK(cudaEventRecord(done.get(), stream.get()));
    comm.wait_for(done.get(), "allreduce of " + std::to_string(n));
    CUDA_CHECK(cudaMemcpy(host.data(), d, n * sizeof(float), cudaMemcpyDeviceToHost));
    CUDA_CHECK(cudaFree(d));
    const float factor = float(ranks * (ranks + 1) / 2);  // sum of (r + 1) over the ranks
    for (size_t i = 0; i < n; ++i) wrong += host[i] != factor * float(i % 1000);
  }
  return wrong;
}

int gpus() {
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess ? n : 0;
}

}  // namespace

TEST_CASE("A one-rank NCCL communicator's allreduce is the identity", "[exec][gpu][nccl]") {
  for (auto algorithm : {TrainConfig::NcclAlgorithm::automatic, TrainConfig::NcclAlgorithm::ring,
                         TrainConfig::NcclAlgorithm::tree}) {
    ncclUniqueId id{};
    NCCL_CHECK(ncclGetUniqueId(&id));
    gpu::NcclComm comm(id, {.rank = 0, .ranks = 1, .device = 0, .algorithm = algorithm,
                            .timeout = std::chrono::milliseconds(30000)});
    CHECK(allreduce_all(comm, 1) == 0);
  }
}

TEST_CASE("NCCL_ALGO is set for the communicator's creation only", "[exec][gpu][nccl]") {
  unsetenv("NCCL_ALGO");
  ncclUniqueId id{};
  NCCL_CHECK(ncclGetUniqueId(&id));
  {
    gpu::NcclComm comm(id, {.rank = 0, .ranks = 1, .algorithm = TrainConfig::NcclAlgorithm::tree});
    CHECK(std::getenv("NCCL_ALGO") == nullptr);
  }
  setenv("NCCL_ALGO", "Ring", 1);
  NCCL_CHECK(ncclGetUniqueId(&id));
  {
    gpu::NcclComm comm(id, {.rank = 0, .ranks = 1, .algorithm = TrainConfig::NcclAlgorithm::tree});
    REQUIRE(std::getenv("NCCL_ALGO") != nullptr);
    CHECK(std::string(std::getenv("NCCL_ALGO")) == "Ring");
  }
  unsetenv("NCCL_ALGO");
}

TEST_CASE("Two NCCL ranks on two GPUs sum buffers of awkward sizes", "[exec][gpu][nccl]") {
  if (gpus() < 2) {
    WARN("skipped: NCCL needs one GPU per rank and this machine has " << gpus());
    return;
  }
  for (auto algorithm : {TrainConfig::NcclAlgorithm::ring, TrainConfig::NcclAlgorithm::tree}) {
    ncclUniqueId id{};
    NCCL_CHECK(ncclGetUniqueId(&id));
    std::vector<long long> wrong(2, -1);
    std::vector<std::string> errors(2);
    std::vector<std::thread> ranks;
    for (int r = 0; r < 2; ++r)
      ranks.emplace_back([&, r] {
        try {
          gpu::NcclComm comm(id, {.rank = r, .ranks = 2, .device = r, .algorithm = algorithm,
                                  .timeout = std::chrono::milliseconds(60000)});
          wrong[r] = allreduce_all(comm, 2);
        } catch (const std::exception& e) {
          errors[r] = e.what();
        }
      });
    for (auto& t : ranks) t.join();
    CAPTURE(exec::nccl_algo_name(algorithm));
    CHECK(errors[0] == "");
    CHECK(errors[1] == "");
    CHECK(wrong[0] == 0);
    CHECK(wrong[1] == 0);
  }
}

TEST_CASE("A rank that never joins makes NCCL's creation fail within the timeout", "[exec][gpu][nccl]") {
  ncclUniqueId id{};
  NCCL_CHECK(ncclGetUniqueId(&id));
  const auto start = std::chrono::steady_clock::now();
  try {
    gpu::NcclComm comm(id, {.rank = 0, .ranks = 2, .device = 0,
                            .timeout = std::chrono::milliseconds(3000)});
    FAIL("expected a CommError: rank 1 never joined");
  } catch (const comm::CommError& e) {
    const std::string text = e.what();
    CAPTURE(text);
    CHECK(text.find("rank 0 of 2") != std::string::npos);
    CHECK(e.rank == 0);
  }
  // The timeout plus the abort's cleanup, with room: never NCCL's own (much longer) bootstrap wait.
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(30));
}

TEST_CASE("The NCCL transport sends gradients as fp32, fp16 or bf16 and widens them back",
          "[exec][gpu][nccl]") {
  // One rank, so NCCL's sum is the identity and what comes back is exactly what went out: the
  // gradients themselves in fp32, each rounded once to the wire's format in fp16 and bf16
  // (kernels' CPU rounding, which the GPU cast matches bit for bit). Values span 2^-30 to 2^9:
  // fp16 subnormals and flushes included, nothing past half's range.
  const comm::WirePrecision wire =
      GENERATE(comm::WirePrecision::fp32, comm::WirePrecision::fp16, comm::WirePrecision::bf16);
  CAPTURE(comm::name(wire));
  auto backend = make_gpu_backend();
  const size_t n = 2049000 + 13, untouched = 5;  // the last 5 are in no bucket
  std::vector<float> host(n);
  std::mt19937 rng(11);
  std::normal_distribution<float> normal;
  std::uniform_int_distribution<int> exponent(-30, 8);
  for (float& x : host) x = std::ldexp(normal(rng), exponent(rng));
  std::shared_ptr<float> grads = backend->alloc_flat(static_cast<long long>(n));
  backend->flat_from_host(host.data(), grads.get(), static_cast<long long>(n));

  ncclUniqueId id{};
  NCCL_CHECK(ncclGetUniqueId(&id));
  auto comm = std::make_unique<gpu::NcclComm>(id, gpu::NcclCommOptions{.rank = 0, .ranks = 1});
  auto transport = detail::make_nccl_transport(*backend, std::move(comm), std::span<float>(grads.get(), n), wire);
  const std::vector<std::pair<long long, long long>> buckets = {
      {0, 1000}, {1000, 65537}, {66537, static_cast<long long>(n - untouched) - 66537}};
  for (int step = 0; step < 2; ++step) {  // the second step reuses the events and the 16-bit copy
    for (auto [offset, count] : buckets) transport->submit(offset, count);
    const std::vector<comm::BucketTiming> timings = transport->wait();
    REQUIRE(timings.size() == buckets.size());
    for (size_t b = 0; b < timings.size(); ++b) {
      CHECK(timings[b].offset == buckets[b].first);
      CHECK(timings[b].count == buckets[b].second);
      CHECK(timings[b].start <= timings[b].end);
    }
  }
  std::vector<float> back(n);
  backend->flat_to_host(grads.get(), back.data(), static_cast<long long>(n));

  auto rounded = [&](float x) {
    switch (wire) {
      case comm::WirePrecision::fp16: return kernels::fp16_bits_to_float(kernels::float_to_fp16_bits(x));
      case comm::WirePrecision::bf16: return kernels::bf16_bits_to_float(kernels::float_to_bf16_bits(x));
      case comm::WirePrecision::fp32: break;
    }
    return x;
  };
  long long wrong = 0, changed = 0;
  for (size_t i = 0; i < n; ++i) {
    // Rounding is idempotent, so two steps round the same as one.
    const float expected = i < n - untouched ? rounded(host[i]) : host[i];
    wrong += std::memcmp(&back[i], &expected, sizeof(float)) != 0;
    changed += back[i] != host[i];
  }
  CHECK(wrong == 0);
  if (wire == comm::WirePrecision::fp32) CHECK(changed == 0);
  else CHECK(changed > static_cast<long long>(n) / 2);  // random floats are rarely 16-bit values
}
