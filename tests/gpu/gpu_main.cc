// Entry point of the GPU tests: without a usable GPU it says so and exits 77, which ctest
// reports as Skipped (SKIP_RETURN_CODE), never as a silent pass.
#ifdef BASIN_CATCH2_V3
#include <catch2/catch_session.hpp>
#else
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>
#endif

#include <basin/kernels.h>

#include <cstdio>
#include <cstdlib>

int main(int argc, char** argv) {
  // Before CUDA starts: ranks that share this process's context (ranks_gpu_test.cc) park streams
  // on host counters, and streams sharing one of the default 8 hardware queues would queue the
  // raising rank's work behind the parked wait. A value set outside is kept.
  setenv("CUDA_DEVICE_MAX_CONNECTIONS", "32", 0);
  if (basin::kernels::cuda_device_count() == 0) {
    std::printf("skipped: no GPU (%s)\n", basin::kernels::cuda_device_error().c_str());
    return 77;
  }
  return Catch::Session().run(argc, argv);
}
