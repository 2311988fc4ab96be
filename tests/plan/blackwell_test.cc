// NCCL on a Blackwell server against a published nccl-tests run: NVLS on one DGX B200 (between
// servers: nvls_tree_test.cc).
#include "../catch.h"

#include <basin/plan.h>

#include <algorithm>

using namespace basin;
using namespace basin::plan;

namespace {

int candidate(const Selection& s, const std::string& name) {
  for (size_t i = 0; i < s.candidates.size(); ++i)
    if (s.candidates[i].name() == name) return static_cast<int>(i);
  return -1;
}

}  // namespace

TEST_CASE("NVLS on 8 B200s reaches the busbw measured there", "[plan][nvls][blackwell]") {
  // NVIDIA/nccl#1807 (2025, NCCL 2.27, one 8 x B200 server): all_reduce_perf reaches "830+"
  // GB/s busbw at large sizes.
  const topo::Topology t = topo::load_any("dgx-b200:1");
  SelectOptions o;
  o.nccl = true;
  const Selection s = select_allreduce(t, o);
  const int nvls = candidate(s, "nccl-nvls/Simple");
  REQUIRE(nvls >= 0);
  const SizeRow& big = s.rows.back();
  REQUIRE(big.bytes == 8.0 * (1ull << 30));
  REQUIRE_THAT(busbw_GBps(big.bytes, big.time_s[nvls], 8), WithinRel(830.0, 0.05));
  // And it is the fastest of NCCL's algorithms there (NCCL's ring: 18 links x 40.1 GB/s).
  for (size_t i = 0; i < s.candidates.size(); ++i)
    if (s.candidates[i].name().rfind("nccl-", 0) == 0) REQUIRE(big.time_s[nvls] <= big.time_s[i]);
}
