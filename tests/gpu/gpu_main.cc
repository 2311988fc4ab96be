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

int main(int argc, char** argv) {
  if (basin::kernels::cuda_device_count() == 0) {
    std::printf("skipped: no GPU\n");
    return 77;
  }
  return Catch::Session().run(argc, argv);
}
