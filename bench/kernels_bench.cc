// Throughput of basin's GPU kernels at ResNet-50 ImageNet sizes, as memory bandwidth (bytes each
// kernel must move per call over its CUDA-event time): the figure to hold against the GPU's peak,
// since every one of these kernels is bound by memory, not arithmetic. Without a GPU it says
// "skipped: no GPU" and exits 0, so a benchmark sweep on a CPU machine still completes.
#include <basin/cuda_check.h>
#include <basin/kernels.h>

#include <benchmark/benchmark.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <cstdio>
#include <vector>

namespace bk = basin::kernels;

namespace {

// A device allocation for the benchmark's lifetime, zero-filled (the values do not matter).
void* device_zeros(size_t bytes) {
  void* p = nullptr;
  CUDA_CHECK(cudaMalloc(&p, bytes));
  CUDA_CHECK(cudaMemset(p, 0, bytes));
  return p;
}

// Times `launch` with CUDA events per iteration (manual time) and reports `bytes` per call.
template <class Launch>
void time_kernel(benchmark::State& state, size_t bytes, Launch launch) {
  cudaEvent_t start, stop;
  CUDA_CHECK(cudaEventCreate(&start));
  CUDA_CHECK(cudaEventCreate(&stop));
  launch();  // warm-up: first-launch module loading stays out of the figures
  CUDA_CHECK(cudaDeviceSynchronize());
  for (auto _ : state) {
    CUDA_CHECK(cudaEventRecord(start));
    launch();
    CUDA_CHECK(cudaEventRecord(stop));
    CUDA_CHECK(cudaEventSynchronize(stop));
    float ms = 0;
    CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
    state.SetIterationTime(ms / 1e3);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * bytes));
  CUDA_CHECK(cudaEventDestroy(start));
  CUDA_CHECK(cudaEventDestroy(stop));
}

constexpr size_t kResNet50Params = 25'557'032;

void BM_SgdFlatStep(benchmark::State& state) {
  const size_t n = kResNet50Params;
  auto* w = static_cast<float*>(device_zeros(n * 4));
  auto* v = static_cast<float*>(device_zeros(n * 4));
  auto* g = static_cast<float*>(device_zeros(n * 4));
  // ~ResNet-50's 107 no-decay tensors (batch norm gamma/beta, the fc bias), spread evenly.
  std::vector<bk::FlatRange> ranges;
  for (size_t k = 0; k < 107; ++k) ranges.push_back({k * (n / 107), k * (n / 107) + 256});
  auto* dranges = static_cast<bk::FlatRange*>(device_zeros(ranges.size() * sizeof(bk::FlatRange)));
  CUDA_CHECK(cudaMemcpy(dranges, ranges.data(), ranges.size() * sizeof(bk::FlatRange),
                        cudaMemcpyHostToDevice));
  const bk::SgdParams p{.lr = 0.1f, .momentum = 0.9f, .weight_decay = 1e-4f};
  // Reads w, v, g and writes w, v: 20 bytes per parameter.
  time_kernel(state, n * 20, [&] { bk::sgd_flat_step_gpu(w, v, g, n, p, dranges, ranges.size()); });
  for (void* ptr : {static_cast<void*>(w), static_cast<void*>(v), static_cast<void*>(g),
                    static_cast<void*>(dranges)})
    CUDA_CHECK(cudaFree(ptr));
}
BENCHMARK(BM_SgdFlatStep)->UseManualTime()->Unit(benchmark::kMicrosecond);

void BM_ResidualAddReluBf16(benchmark::State& state) {
  // The largest residual output of ResNet-50 at batch 256: 256 x 56 x 56 x 256.
  const size_t n = size_t{256} * 56 * 56 * 256;
  void* a = device_zeros(n * 2);
  void* b = device_zeros(n * 2);
  void* y = device_zeros(n * 2);
  time_kernel(state, n * 6, [&] { bk::residual_add_relu_gpu(a, b, y, n, bk::Precision::bf16); });
  for (void* ptr : {a, b, y}) CUDA_CHECK(cudaFree(ptr));
}
BENCHMARK(BM_ResidualAddReluBf16)->UseManualTime()->Unit(benchmark::kMicrosecond);

// The same off 16-byte alignment (every pointer one element in): the element-by-element path
// the kernels take there, beside the packed one above, measured in the same run.
void BM_ResidualAddReluBf16ElementByElement(benchmark::State& state) {
  const size_t n = size_t{256} * 56 * 56 * 256;
  auto* a = static_cast<char*>(device_zeros(n * 2 + 2));
  auto* b = static_cast<char*>(device_zeros(n * 2 + 2));
  auto* y = static_cast<char*>(device_zeros(n * 2 + 2));
  time_kernel(state, n * 6, [&] { bk::residual_add_relu_gpu(a + 2, b + 2, y + 2, n, bk::Precision::bf16); });
  for (void* ptr : {a, b, y}) CUDA_CHECK(cudaFree(ptr));
}
BENCHMARK(BM_ResidualAddReluBf16ElementByElement)->UseManualTime()->Unit(benchmark::kMicrosecond);

// A fused batch norm's ReLU mask in backward, in place over dy, as the backend runs it.
void BM_ReluMaskBf16(benchmark::State& state) {
  const size_t n = size_t{256} * 56 * 56 * 256;
  void* y = device_zeros(n * 2);
  void* dy = device_zeros(n * 2);
  time_kernel(state, n * 6, [&] { bk::residual_add_relu_backward_gpu(y, dy, dy, n, bk::Precision::bf16); });
  for (void* ptr : {y, dy}) CUDA_CHECK(cudaFree(ptr));
}
BENCHMARK(BM_ReluMaskBf16)->UseManualTime()->Unit(benchmark::kMicrosecond);

void BM_CastFp32ToBf16(benchmark::State& state) {
  const size_t n = kResNet50Params;
  void* src = device_zeros(n * 4);
  void* dst = device_zeros(n * 2);
  time_kernel(state, n * 6, [&] {
    bk::cast_gpu(src, bk::Precision::fp32, dst, bk::Precision::bf16, n);
  });
  for (void* ptr : {src, dst}) CUDA_CHECK(cudaFree(ptr));
}
BENCHMARK(BM_CastFp32ToBf16)->UseManualTime()->Unit(benchmark::kMicrosecond);

void BM_SoftmaxXentForwardBackward(benchmark::State& state) {
  const int rows = 256, classes = 1000;
  const size_t n = size_t(rows) * classes;
  auto* logits = static_cast<float*>(device_zeros(n * 4));
  auto* grad = static_cast<float*>(device_zeros(n * 4));
  auto* labels = static_cast<std::int32_t*>(device_zeros(rows * 4));
  auto* row_loss = static_cast<float*>(device_zeros(rows * 4));
  auto* mean = static_cast<float*>(device_zeros(4));
  // The forward reads the logits once, the backward reads them and writes the gradient.
  time_kernel(state, n * 12, [&] {
    bk::softmax_xent_forward_gpu(logits, labels, rows, classes, 1024.f, row_loss, mean);
    bk::softmax_xent_backward_gpu(logits, labels, rows, classes, 1024.f, grad);
  });
  for (void* ptr : {static_cast<void*>(logits), static_cast<void*>(grad),
                    static_cast<void*>(labels), static_cast<void*>(row_loss),
                    static_cast<void*>(mean)})
    CUDA_CHECK(cudaFree(ptr));
}
BENCHMARK(BM_SoftmaxXentForwardBackward)->UseManualTime()->Unit(benchmark::kMicrosecond);

void BM_InputStageBf16(benchmark::State& state) {
  // 256 decoded 500 x 375 images (ImageNet's typical size), random-resized-crop-like boxes,
  // to 224 x 224 bf16 NHWC.
  const int batch = 256, out = 224, width = 500, height = 375;
  const size_t image_bytes = size_t(width) * height * 3;
  auto* pixels = static_cast<std::uint8_t*>(device_zeros(image_bytes * batch));
  std::vector<bk::SourceImage> images(batch);
  for (int b = 0; b < batch; ++b)
    images[b] = {.offset = image_bytes * b, .width = width, .height = height,
                 .crop_x = 20.0 + b % 50, .crop_y = 10.0 + b % 30, .crop_width = 300,
                 .crop_height = 280, .flip = b % 2 == 1};
  bk::check_source_images(images.data(), batch);
  auto* dimages = static_cast<bk::SourceImage*>(device_zeros(batch * sizeof(bk::SourceImage)));
  CUDA_CHECK(cudaMemcpy(dimages, images.data(), batch * sizeof(bk::SourceImage),
                        cudaMemcpyHostToDevice));
  void* dout = device_zeros(size_t(batch) * out * out * 3 * 2);
  // Counted: the bytes written (the source reads depend on the crop and mostly hit cache).
  time_kernel(state, size_t(batch) * out * out * 3 * 2, [&] {
    bk::input_stage_gpu(pixels, dimages, batch, out, out, bk::InputNormalization{},
                        bk::Precision::bf16, dout);
  });
  for (void* ptr : {static_cast<void*>(pixels), static_cast<void*>(dimages), dout})
    CUDA_CHECK(cudaFree(ptr));
}
BENCHMARK(BM_InputStageBf16)->UseManualTime()->Unit(benchmark::kMicrosecond);

}  // namespace

int main(int argc, char** argv) {
  if (bk::cuda_device_count() == 0) {
    std::printf("skipped: no GPU\n");
    return 0;
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
