// Second and third validations of the simulator, after Goyal et al. 2017 (training_test.cc):
// NVIDIA's published PyTorch ResNet-50 v1.5 training throughput on DGX-1 (V100) and DGX A100.
// The 1-GPU figures calibrate the V100 and A100 profiles (profiles/devices/*.json); the 8-GPU
// figures are predictions checked here. reports/published-scaling.md lists every error.
#include "../catch.h"

#include <basin/plan.h>
#include <basin/training.h>

using namespace basin;
using namespace basin::sim;

namespace {

struct Published {
  const char* cluster;
  Precision precision;
  int batch_per_gpu;
  double one_gpu, eight_gpus;  // images/s
};

// The run's algorithm as PyTorch DDP does it: NCCL's ring over the server's 8 GPUs (Simple, NCCL's
// protocol for such buckets; on DGX-1 along its NVLink rings), gradients in
// buckets of bucket_cap_mb = 25 (MiB, 26.2144 MB), sent as fp32 also under AMP (torch.cuda.amp
// keeps fp32 weights, so their gradients are fp32). The input pipeline is not modelled here: the
// runs' loader is not basin's, and the 1-GPU figures show it kept up with one GPU.
IterationResult predict_published(const Published& p, int gpus) {
  topo::Topology t = topo::load_any(p.cluster);
  DeviceProfile profile =
      find_device_profile(default_profiles_dir(), t.graph[topo::gpus(t)[0]].model);
  TrainingConfig cfg{.network = model::resnet(50), .gpus = gpus, .batch_per_gpu = p.batch_per_gpu,
                     .bucket_MB = 25 * 1.048576, .precision = p.precision,
                     .wire_precision = Precision::fp32, .decode_images_per_s_per_core = 1e9};
  Network net(t, cfg.network_params);
  const auto used = plan::pick_gpus(t, gpus, 0);
  return simulate_iteration(t, profile, cfg, plan::nccl_cost(net, used, Algorithm::ring, plan::Protocol::simple));
}

// NVIDIA/DeepLearningExamples, PyTorch/Classification/ConvNets/resnet50v1.5/README.md, commit
// 7bdfc81d258746323bf0d3ca57e0ad302a4c3a74 (unchanged at 729963dd, 2024-04-04), tables
// "Training performance: NVIDIA DGX-1 16GB (8x V100 16GB)" and "Training performance: NVIDIA
// DGX A100 (8x A100 80GB)", pytorch-21.03 NGC container. Batches per GPU from configs.yml at the
// same commit (resnet50: DGX1V FP32 112, DGX1V AMP 256, DGXA100 TF32 256, DGXA100 AMP 256).
// "TF32" is basin's fp32 on A100; "mixed precision" (AMP) is fp16.
const Published dgx1_fp32{"dgx1", Precision::fp32, 112, 367, 2855};
const Published dgx1_amp{"dgx1", Precision::fp16, 256, 1200, 8322};
const Published a100_tf32{"dgx-a100", Precision::fp32, 256, 938, 7248};
const Published a100_amp{"dgx-a100", Precision::fp16, 256, 2470, 16621};

}  // namespace

TEST_CASE("published DGX-1 and DGX A100 one-GPU ResNet-50 throughput calibrates the profiles",
          "[sim]") {
  for (const Published& p : {dgx1_fp32, dgx1_amp, a100_tf32, a100_amp}) {
    CAPTURE(p.cluster, to_string(p.precision));
    IterationResult r = predict_published(p, 1);
    REQUIRE_FALSE(r.compute_estimated);
    REQUIRE_THAT(r.images_per_s, WithinRel(p.one_gpu, 1e-6));
  }
}

TEST_CASE("published DGX-1 and DGX A100 8-GPU ResNet-50 throughput is reproduced within stated "
          "bounds", "[sim]") {
  // fp32 and TF32: the 8-GPU throughput within 10%, and the scaling efficiency (8-GPU over 8x the
  // 1-GPU figure; published 7.76/8 and 7.72/8) within 5 points.
  for (const Published& p : {dgx1_fp32, a100_tf32}) {
    CAPTURE(p.cluster, to_string(p.precision));
    const double predicted = predict_published(p, 8).images_per_s;
    REQUIRE_THAT(predicted, WithinRel(p.eight_gpus, 0.10));
    REQUIRE_THAT(predicted / (8 * p.one_gpu), WithinAbs(p.eight_gpus / (8 * p.one_gpu), 0.05));
  }
  // Mixed precision: the published runs scale 6.93x (DGX-1) and 6.72x (DGX A100); basin predicts
  // nearly linear scaling, 15-19% too fast, and no mechanism with an independent source explains
  // the difference yet (reports/published-scaling.md). Bound: within 25%, and on the fast side,
  // so a change that explains part of the gap must tighten this test.
  for (const Published& p : {dgx1_amp, a100_amp}) {
    CAPTURE(p.cluster, to_string(p.precision));
    const double predicted = predict_published(p, 8).images_per_s;
    REQUIRE_THAT(predicted, WithinRel(p.eight_gpus, 0.25));
    REQUIRE(predicted > p.eight_gpus);
  }
}
