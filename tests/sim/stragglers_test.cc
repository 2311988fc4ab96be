// The straggler model: the expected slowest of N GPUs against published order statistics, and the
// iteration's compute stretched by exactly that, relative to the GPUs a profile was measured on.
#include "../catch.h"

#include <basin/training.h>

#include <cmath>

using namespace basin;
using namespace basin::sim;

TEST_CASE("the expected maximum of n standard normals matches the closed forms and Harter's table",
          "[sim]") {
  // Closed forms: E[max of 2] = 1/sqrt(pi), E[max of 3] = 3 / (2 sqrt(pi)).
  REQUIRE_THAT(expected_max_of_standard_normals(2), WithinRel(1 / std::sqrt(M_PI), 1e-7));
  REQUIRE_THAT(expected_max_of_standard_normals(3), WithinRel(1.5 / std::sqrt(M_PI), 1e-7));
  // Harter (1961), "Expected values of normal order statistics", Biometrika 48, to 5 decimals.
  REQUIRE_THAT(expected_max_of_standard_normals(5), WithinAbs(1.16296, 1e-5));
  REQUIRE_THAT(expected_max_of_standard_normals(10), WithinAbs(1.53875, 1e-5));
  REQUIRE_THAT(expected_max_of_standard_normals(20), WithinAbs(1.86748, 1e-5));
  REQUIRE_THAT(expected_max_of_standard_normals(100), WithinAbs(2.50759, 1e-5));
  REQUIRE(expected_max_of_standard_normals(1) == 0);
}

TEST_CASE("compute jitter stretches a synchronous step by the slowest GPU's expected delay", "[sim]") {
  const double cv = 0.04;
  auto compute = [&](const char* cluster, int gpus, double jitter) {
    topo::Topology t = topo::load_any(cluster);
    const DeviceProfile p = find_device_profile(default_profiles_dir(), t.graph[topo::gpus(t)[0]].model);
    TrainingConfig cfg{.network = model::resnet(50), .gpus = gpus, .batch_per_gpu = 64,
                       .precision = Precision::bf16, .compute_jitter_cv = jitter};
    return simulate_iteration(t, p, cfg).compute_s;
  };
  // The H100 profile was measured on one GPU: 10 GPUs wait for the slowest of 10,
  // 1 + cv e_10 with Harter's e_10 = 1.53875.
  REQUIRE_THAT(compute("dgx-h100:2", 10, cv) / compute("dgx-h100:2", 10, 0), WithinRel(1 + cv * 1.53875, 1e-5));
  REQUIRE_THAT(compute("dgx-h100:2", 1, cv), WithinRel(compute("dgx-h100:2", 1, 0), 1e-12));

  // The P100 figure of Goyal et al. was measured on one 8-GPU server, so it already waited for
  // the slowest of 8: unchanged there, faster alone by 1 + cv e_8 (e_8 = 1.42360, Harter).
  auto p100 = [&](int gpus, double jitter) {
    topo::Topology t = topo::load_any("bigbasin:2");
    const DeviceProfile p = find_device_profile(default_profiles_dir(), t.graph[topo::gpus(t)[0]].model);
    TrainingConfig cfg{.network = model::resnet(50), .gpus = gpus, .batch_per_gpu = 32, .compute_jitter_cv = jitter};
    return simulate_iteration(t, p, cfg).compute_s;
  };
  REQUIRE_THAT(p100(8, cv), WithinRel(p100(8, 0), 1e-12));
  REQUIRE_THAT(p100(8, 0) / p100(1, cv), WithinRel(1 + cv * 1.42360, 1e-5));

  topo::Topology t = topo::load_any("bigbasin");
  TrainingConfig bad{.network = model::resnet(50), .gpus = 8, .compute_jitter_cv = -0.1};
  REQUIRE_THROWS_WITH(simulate_iteration(t, find_device_profile(default_profiles_dir(), "P100"), bad),
                      HasText("--compute-jitter") && HasText("[0, 1)"));
}
