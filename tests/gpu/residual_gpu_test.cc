// The GPU residual add + ReLU against the CPU reference: bit-exact in every precision, because
// both compute one IEEE fp32 add, one comparison and one round-to-nearest-even store.
#include "../catch.h"
#include "compare.h"
#include "device_buffer.h"

#include <basin/kernels.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

namespace bk = basin::kernels;

namespace {

// n random values (normal, some exact negatives of each other so sums hit 0) in precision p.
std::vector<std::uint8_t> random_values(size_t n, bk::Precision p, std::mt19937& rng) {
  std::normal_distribution<float> normal(0.f, 2.f);
  std::vector<float> values(n);
  for (float& v : values) v = normal(rng);
  std::vector<std::uint8_t> out(n * bk::bytes_per_element(p));
  bk::cast_cpu(values.data(), bk::Precision::fp32, out.data(), p, n);
  return out;
}

}  // namespace

TEST_CASE("GPU residual add + ReLU forward and backward match the CPU reference bit for bit",
          "[kernels][gpu][residual]") {
  const size_t n = GENERATE(size_t{0}, size_t{1}, size_t{257}, size_t{1000003}, kBeyondOneGrid);
  const bk::Precision p = GENERATE(bk::Precision::fp32, bk::Precision::bf16, bk::Precision::fp16);
  CAPTURE(n, int(p));
  std::mt19937 rng(29);
  const std::vector<std::uint8_t> a = random_values(n, p, rng), dy = random_values(n, p, rng);
  std::vector<std::uint8_t> b = random_values(n, p, rng);
  // Every 7th b cancels its a exactly, so y = +0 and the backward mask sees a zero output.
  const size_t bytes = bk::bytes_per_element(p);
  for (size_t i = 0; i < n; i += 7) {
    std::memcpy(b.data() + i * bytes, a.data() + i * bytes, bytes);
    b[i * bytes + bytes - 1] ^= 0x80;  // flip the sign bit (little-endian: the last byte)
  }
  std::vector<std::uint8_t> y(a.size()), dx(a.size());
  bk::residual_add_relu_cpu(a.data(), b.data(), y.data(), n, p);
  bk::residual_add_relu_backward_cpu(y.data(), dy.data(), dx.data(), n, p);

  DeviceBuffer<std::uint8_t> da(a), db(b), ddy(dy), dyo(a.size()), ddx(a.size());
  bk::residual_add_relu_gpu(da.get(), db.get(), dyo.get(), n, p);
  bk::residual_add_relu_backward_gpu(dyo.get(), ddy.get(), ddx.get(), n, p);
  REQUIRE(first_difference(dyo.download(), y) == "");
  REQUIRE(first_difference(ddx.download(), dx) == "");

  // In place (y over a, dx over dy), as the backend calls them: the same bits.
  bk::residual_add_relu_gpu(da.get(), db.get(), da.get(), n, p);
  bk::residual_add_relu_backward_gpu(dyo.get(), ddy.get(), ddy.get(), n, p);
  REQUIRE(first_difference(da.download(), y) == "");
  REQUIRE(first_difference(ddy.download(), dx) == "");
}

TEST_CASE("GPU residual add + ReLU off 16-byte alignment match the CPU reference bit for bit",
          "[kernels][gpu][residual]") {
  // The kernels load 16-byte packs where every pointer is aligned and go element by element
  // otherwise: pointers 1 element past an aligned start take the second way.
  const size_t n = GENERATE(size_t{7}, size_t{1000003});
  const bk::Precision p = GENERATE(bk::Precision::fp32, bk::Precision::bf16, bk::Precision::fp16);
  CAPTURE(n, int(p));
  std::mt19937 rng(31);
  const size_t bytes = bk::bytes_per_element(p);
  const std::vector<std::uint8_t> a = random_values(n + 1, p, rng), b = random_values(n + 1, p, rng);
  const std::vector<std::uint8_t> dy = random_values(n + 1, p, rng);
  std::vector<std::uint8_t> y(a.size()), dx(a.size());
  bk::residual_add_relu_cpu(a.data() + bytes, b.data() + bytes, y.data() + bytes, n, p);
  bk::residual_add_relu_backward_cpu(y.data() + bytes, dy.data() + bytes, dx.data() + bytes, n, p);
  DeviceBuffer<std::uint8_t> da(a), db(b), ddy(dy), dyo(a.size()), ddx(a.size());
  bk::residual_add_relu_gpu(da.get() + bytes, db.get() + bytes, dyo.get() + bytes, n, p);
  bk::residual_add_relu_backward_gpu(dyo.get() + bytes, ddy.get() + bytes, ddx.get() + bytes, n, p);
  auto tail = [&](std::vector<std::uint8_t> v) { return std::vector<std::uint8_t>(v.begin() + bytes, v.end()); };
  REQUIRE(first_difference(tail(dyo.download()), tail(y)) == "");
  REQUIRE(first_difference(tail(ddx.download()), tail(dx)) == "");
}
