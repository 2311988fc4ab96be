// NCCL on Blackwell servers against published nccl-tests runs: NVLS on one DGX B200, and the
// fastest of NCCL's algorithms between two DGX B200s and two DGX H100s, whose eight 400 Gb/s NICs
// a server are the bound.
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

// The largest size's busbw of NCCL's fastest algorithm (what nccl-tests reports under NCCL's
// own choice, whichever algorithm that was).
double best_nccl_busbw(const Selection& s, int ranks) {
  const SizeRow& big = s.rows.back();
  double best = 0;
  for (size_t i = 0; i < s.candidates.size(); ++i)
    if (s.candidates[i].name().rfind("nccl-", 0) == 0)
      best = std::max(best, busbw_GBps(big.bytes, big.time_s[i], ranks));
  return best;
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

TEST_CASE("between two servers the NICs set NCCL's busbw as measured", "[plan][blackwell]") {
  // coreweave/nccl-tests#92 (2026-05), two 8-GPU servers with eight 400 Gb/s NICs each, 8 GB
  // allreduce under NCCL's own choice: 690.07 GB/s busbw on B200, 440.58 on H100.
  SelectOptions o;
  o.nccl = true;
  const Selection b200 = select_allreduce(topo::load_any("dgx-b200:2"), o);
  REQUIRE(b200.rows.back().bytes == 8.0 * (1ull << 30));
  REQUIRE_THAT(best_nccl_busbw(b200, 16), WithinRel(690.07, 0.05));
  // On H100 the model's best (NCCL's ring, at the NICs' rate) is 9% under the measurement: NCCL's
  // NVLS-tree, which basin does not model, does better there.
  const Selection h100 = select_allreduce(topo::load_any("dgx-h100:2"), o);
  const double h100_busbw = best_nccl_busbw(h100, 16);
  REQUIRE_THAT(h100_busbw, WithinRel(440.58, 0.10));
  REQUIRE(h100_busbw < 440.58);
}
