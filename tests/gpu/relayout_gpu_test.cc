// The GPU relayout against its CPU reference, bit for bit (it only moves bytes): NCHW <-> NHWC
// and OIHW <-> OHWI shapes of awkward sizes, 2- and 4-byte elements, and one past a grid's
// first pass.
#include "../catch.h"
#include "compare.h"
#include "device_buffer.h"

#include <basin/kernels.h>

#include <cstdint>
#include <random>
#include <vector>

namespace bk = basin::kernels;

TEST_CASE("GPU relayout matches the CPU reference bit for bit", "[kernels][gpu][relayout]") {
  // (n, c, h, w): a 3x3 conv's weights (OIHW), a 7x7 stem's, a batch of maps, 1x1 maps, and
  // more elements than one grid-stride pass covers.
  const auto [n, c, h, w] = GENERATE(std::tuple{64, 3, 7, 7}, std::tuple{33, 17, 3, 3},
                                     std::tuple{5, 2048, 7, 7}, std::tuple{7, 13, 1, 1},
                                     std::tuple{3, 67, 301, 283});
  const size_t bytes = GENERATE(size_t{2}, size_t{4});
  const bool back = GENERATE(false, true);
  CAPTURE(n, c, h, w, bytes, back);
  bk::Layout4d l;
  l.dims[0] = n, l.dims[1] = c, l.dims[2] = h, l.dims[3] = w;
  const long long nchw[4] = {1LL * c * h * w, 1LL * h * w, w, 1}, nhwc[4] = {1LL * h * w * c, 1, 1LL * w * c, c};
  for (int d = 0; d < 4; ++d) {
    l.src_strides[d] = back ? nhwc[d] : nchw[d];
    l.dst_strides[d] = back ? nchw[d] : nhwc[d];
  }
  const size_t total = static_cast<size_t>(n) * c * h * w * bytes;
  std::mt19937 rng(41);
  std::vector<std::uint8_t> src(total);
  for (auto& b : src) b = static_cast<std::uint8_t>(rng());
  std::vector<std::uint8_t> cpu(total);
  bk::relayout_cpu(src.data(), cpu.data(), bytes, l);
  DeviceBuffer<std::uint8_t> dsrc(src), ddst(total);
  bk::relayout_gpu(dsrc.get(), ddst.get(), bytes, l);
  REQUIRE(first_difference(ddst.download(), cpu) == "");
}
