// The relayout's CPU reference against an independent one: NCHW -> NHWC of fp32 and of 16-bit
// values equals nchw_to_nhwc_cpu (written separately, for the input path), the way back restores
// the original bytes, and bad element sizes and strides are refused.
#include "../catch.h"

#include <basin/kernels.h>

#include <cstdint>
#include <random>
#include <stdexcept>
#include <vector>

namespace bk = basin::kernels;

namespace {

// dims n, c, h, w read as NCHW and written as NHWC; `back` swaps the two.
bk::Layout4d nchw_nhwc(int n, int c, int h, int w, bool back = false) {
  bk::Layout4d l;
  l.dims[0] = n, l.dims[1] = c, l.dims[2] = h, l.dims[3] = w;
  const long long nchw[4] = {1LL * c * h * w, 1LL * h * w, w, 1};
  const long long nhwc[4] = {1LL * h * w * c, 1, 1LL * w * c, c};
  for (int d = 0; d < 4; ++d) {
    l.src_strides[d] = back ? nhwc[d] : nchw[d];
    l.dst_strides[d] = back ? nchw[d] : nhwc[d];
  }
  return l;
}

}  // namespace

TEST_CASE("relayout_cpu turns NCHW into NHWC as nchw_to_nhwc_cpu does, and back", "[kernels][relayout]") {
  const auto [n, c, h, w] = GENERATE(std::tuple{1, 1, 1, 1}, std::tuple{2, 3, 5, 7}, std::tuple{3, 64, 3, 3},
                                     std::tuple{4, 17, 1, 1});
  CAPTURE(n, c, h, w);
  const size_t count = static_cast<size_t>(n) * c * h * w;
  std::mt19937 rng(5);
  std::normal_distribution<float> normal(0.f, 3.f);
  std::vector<float> x(count);
  for (float& v : x) v = normal(rng);

  std::vector<float> ours(count), theirs(count), back(count);
  bk::relayout_cpu(x.data(), ours.data(), 4, nchw_nhwc(n, c, h, w));
  bk::nchw_to_nhwc_cpu(x.data(), theirs.data(), bk::Precision::fp32, n, c, h * w);
  CHECK(ours == theirs);
  bk::relayout_cpu(ours.data(), back.data(), 4, nchw_nhwc(n, c, h, w, true));
  CHECK(back == x);

  // 16-bit elements: bf16 values, which nchw_to_nhwc_cpu's rounding leaves as they are.
  std::vector<std::uint16_t> bits(count), ours16(count), theirs16(count), back16(count);
  bk::cast_cpu(x.data(), bk::Precision::fp32, bits.data(), bk::Precision::bf16, count);
  std::vector<float> widened(count);
  bk::cast_cpu(bits.data(), bk::Precision::bf16, widened.data(), bk::Precision::fp32, count);
  bk::relayout_cpu(bits.data(), ours16.data(), 2, nchw_nhwc(n, c, h, w));
  bk::nchw_to_nhwc_cpu(widened.data(), theirs16.data(), bk::Precision::bf16, n, c, h * w);
  CHECK(ours16 == theirs16);
  bk::relayout_cpu(ours16.data(), back16.data(), 2, nchw_nhwc(n, c, h, w, true));
  CHECK(back16 == bits);
}

TEST_CASE("relayout refuses elements of other sizes and negative strides", "[kernels][relayout]") {
  std::vector<std::uint8_t> a(64), b(64);
  using Catch::Matchers::Contains;
  CHECK_THROWS_WITH(bk::relayout_cpu(a.data(), b.data(), 3, nchw_nhwc(1, 2, 2, 2)), Contains("2 or 4 bytes, got 3"));
  bk::Layout4d bad = nchw_nhwc(1, 2, 2, 2);
  bad.dst_strides[2] = -1;
  CHECK_THROWS_WITH(bk::relayout_cpu(a.data(), b.data(), 4, bad), Contains("axis 2"));
}
