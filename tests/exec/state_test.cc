// Parameter and buffer files (.npy, one per state_dict key): bytes NumPy's format description
// (NEP 1) prescribes, a round trip through a second network, and errors that name the file.
#include <basin/exec.h>
#include <cstdint>
#include <cstring>
#include <iterator>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "../catch.h"

#if BASIN_HAVE_DNNL

using namespace basin;
using namespace basin::exec;

namespace {

std::filesystem::path scratch(const std::string& name) {
  auto dir = std::filesystem::temp_directory_path() / ("basin-exec-state-" + name);
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

model::Network tiny() {
  return model::resnet(
      model::ResNetShape{.blocks = {1}, .width = 8, .image_size = 16, .classes = 3});
}

}  // namespace

TEST_CASE("npy files have NumPy's header and round-trip", "[exec]") {
  const auto dir = scratch("npy");
  const std::vector<float> v = {1.5f, -2.f, 3.25f, 0.f, 7.f, 8.f};
  write_npy(dir / "a.npy", v, {2, 3});
  std::ifstream in(dir / "a.npy", std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // NEP 1: magic, version 1.0, a little-endian header length, the header padded with spaces
  // and a newline so the data starts at a multiple of 64 (128 here: the dict is 58 bytes), then
  // the data.
  REQUIRE(bytes.size() == 128 + 6 * 4);
  CHECK(bytes.substr(0, 8) == std::string("\x93NUMPY\x01\x00", 8));
  CHECK(bytes[8] == 128 - 10);
  CHECK(bytes[9] == 0);
  CHECK(bytes.find("'descr': '<f4'") != std::string::npos);
  CHECK(bytes.find("'shape': (2,3)") != std::string::npos);
  CHECK(bytes[127] == '\n');
  std::vector<long long> shape;
  CHECK(read_npy(dir / "a.npy", &shape) == v);
  CHECK(shape == std::vector<long long>{2, 3});
  write_npy(dir / "b.npy", std::span(v).first(1), {1});
  CHECK(read_npy(dir / "b.npy", &shape) == std::vector<float>{1.5f});
  CHECK(shape == std::vector<long long>{1});
  CHECK(!std::filesystem::exists(dir / "b.npy.tmp"));
  CHECK(error_of([&] { write_npy(dir / "c.npy", v, {4}); }).find("c.npy") != std::string::npos);
}

TEST_CASE("Saved state loads into another network and bad files are named", "[exec]") {
  auto backend = make_cpu_backend(1);
  const auto dir = scratch("state");
  Net a(tiny(), *backend, 1), b(tiny(), *backend, 1);
  a.init({.seed = 8});
  for (size_t k = 0; k < a.buffers().size(); ++k) a.buffers()[k] = 0.5f + k;
  save_state(a, dir);
  CHECK(std::filesystem::exists(dir / "layer1.0.conv1.weight.npy"));
  CHECK(std::filesystem::exists(dir / "bn1.running_var.npy"));
  {
    // torch's 0-d int64 counter beside every batch norm (NumPy format 1.0: magic, version,
    // header length, a header padded to 64 bytes, then the one little-endian value).
    save_state(a, dir, 42);
    std::ifstream in(dir / "layer1.0.bn2.num_batches_tracked.npy", std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    REQUIRE(bytes.size() > 10);
    const size_t header = static_cast<unsigned char>(bytes[8]) | static_cast<unsigned char>(bytes[9]) << 8;
    CHECK(bytes.substr(0, 6) == "\x93NUMPY");
    CHECK((10 + header) % 64 == 0);
    CHECK(bytes.find("'descr': '<i8'") != std::string::npos);
    CHECK(bytes.find("'shape': ()") != std::string::npos);
    REQUIRE(bytes.size() == 10 + header + 8);
    std::int64_t value = 0;
    std::memcpy(&value, bytes.data() + 10 + header, 8);
    CHECK(value == 42);
  }
  load_state(b, dir);
  CHECK(std::equal(a.params().begin(), a.params().end(), b.params().begin()));
  CHECK(std::equal(a.buffers().begin(), a.buffers().end(), b.buffers().begin()));

  // A wrong shape names the file, the key and the expected shape.
  write_npy(dir / "fc.weight.npy", std::vector<float>(6), {3, 2});
  const std::string wrong = error_of([&] { load_state(b, dir); });
  CHECK(wrong.find("fc.weight.npy") != std::string::npos);
  CHECK(wrong.find("expected (3,8)") != std::string::npos);
  // A missing file and a truncated one.
  std::filesystem::remove(dir / "fc.weight.npy");
  CHECK(error_of([&] { load_state(b, dir); }).find("fc.weight.npy: cannot open") !=
        std::string::npos);
  {
    std::ofstream out(dir / "fc.weight.npy", std::ios::binary);
    out << "\x93NUMPY";
  }
  CHECK(error_of([&] { load_state(b, dir); }).find("not a version 1 .npy") != std::string::npos);
}

#endif  // BASIN_HAVE_DNNL
