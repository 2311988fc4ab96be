// Checkpoint files: the whole training state in one self-checking file, written atomically.
//
// One file rather than a directory of tensors because a rename can replace one file atomically
// (topology's write_file_atomically: temporary file, fsync, rename, directory fsync);
// a checksum because a checkpoint that silently loads half-written weights is worse than none.
// The torchvision-readable .npy export (state_io.cc) is for people; this is for resuming.
#include <basin/topology.h>
#include <basin/train.h>

#include <nlohmann/json.hpp>

#include <bit>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>

namespace basin::exec {
namespace {

constexpr char kMagic[] = "BASIN-CHECKPOINT\n";
constexpr size_t kMagicSize = sizeof(kMagic) - 1;

std::uint64_t fnv1a(const void* data, size_t n) {
  const auto* p = static_cast<const unsigned char*>(data);
  std::uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

[[noreturn]] void fail(const std::filesystem::path& path, const std::string& what) {
  throw CheckpointError("checkpoint " + path.string() + ": " + what);
}

void append(std::string& out, const void* data, size_t bytes) {
  out.append(static_cast<const char*>(data), bytes);
}

nlohmann::json tensor_list(const Net& net) {
  nlohmann::json list = nlohmann::json::array();
  for (const ParamInfo& p : net.param_info()) list.push_back({p.name, p.count});
  return list;
}

}  // namespace

void write_checkpoint(const std::filesystem::path& path, const Net& net,
                      std::span<const float> velocity, const RunState& state) {
  static_assert(std::endian::native == std::endian::little, "checkpoints are little-endian");
  if (velocity.size() != net.params().size())
    fail(path, "momentum has " + std::to_string(velocity.size()) + " floats, parameters " +
                   std::to_string(net.params().size()));
  nlohmann::json header = {
      {"format", "basin.checkpoint/2"},
      {"model", net.network().name},
      {"step", state.step},
      {"position", {{"epoch", state.position.epoch}, {"next_sample", state.position.next_sample}}},
      {"recipe", state.recipe},
      {"params", net.params().size()},
      {"buffers", net.buffers().size()},
      {"tensors", tensor_list(net)}};
  // The epoch so far and the earlier sessions' seconds are optional (zero when absent), as is
  // loss_scale, which /2 added: /1 files read as runs without loss scaling.
  header["epoch_so_far"] = {{"loss_sum", state.epoch.loss_sum},
                            {"finite_steps", state.epoch.finite_steps},
                            {"images", state.epoch.images},
                            {"seconds", state.epoch.seconds}};
  header["seconds"] = state.seconds;
  if (state.validation_pending) header["validation_pending"] = true;  // absent: false
  if (state.loss_scale)
    header["loss_scale"] = {{"scale", state.loss_scale->scale},
                            {"good_steps", state.loss_scale->good_steps},
                            {"skipped_steps", state.loss_scale->skipped_steps}};
  const std::string text = header.dump();
  std::string bytes;
  bytes.reserve(kMagicSize + 8 + text.size() +
                4 * (2 * net.params().size() + net.buffers().size()) + 8);
  append(bytes, kMagic, kMagicSize);
  const std::uint64_t header_size = text.size();
  append(bytes, &header_size, 8);
  append(bytes, text.data(), text.size());
  // Host copies: the arrays may be in device memory (a GPU backend).
  for (std::span<const float> flat : {net.params(), net.buffers(), velocity}) {
    const std::vector<float> host = net.to_host(flat);
    append(bytes, host.data(), host.size() * sizeof(float));
  }
  const std::uint64_t sum = fnv1a(bytes.data(), bytes.size());
  append(bytes, &sum, 8);

  try {
    topo::write_file_atomically(path.string(), bytes);
  } catch (const topo::InputError& e) {
    fail(path, e.what());
  }
}

RunState read_checkpoint(const std::filesystem::path& path, Net& net, std::span<float> velocity) {
  if (velocity.size() != net.params().size())
    fail(path, "momentum buffer has " + std::to_string(velocity.size()) + " floats, parameters " +
                   std::to_string(net.params().size()));
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, "cannot open");
  std::vector<unsigned char> bytes((std::istreambuf_iterator<char>(in)),
                                   std::istreambuf_iterator<char>());
  if (bytes.size() < kMagicSize + 16 || std::memcmp(bytes.data(), kMagic, kMagicSize) != 0)
    fail(path, "not a basin checkpoint (expected it to start with 'BASIN-CHECKPOINT')");
  std::uint64_t stored = 0, header_size = 0;
  std::memcpy(&stored, bytes.data() + bytes.size() - 8, 8);
  if (fnv1a(bytes.data(), bytes.size() - 8) != stored)
    fail(path, "checksum mismatch: the file is truncated or damaged");
  std::memcpy(&header_size, bytes.data() + kMagicSize, 8);
  const size_t header_at = kMagicSize + 8;
  if (header_size > bytes.size() - header_at - 8) fail(path, "header runs past the end");
  nlohmann::json h;
  try {
    h = nlohmann::json::parse(bytes.begin() + static_cast<long>(header_at),
                              bytes.begin() + static_cast<long>(header_at + header_size));
  } catch (const nlohmann::json::exception& e) {
    fail(path, std::string("header is not JSON: ") + e.what());
  }
  RunState state;
  try {
    if (h.at("format") != "basin.checkpoint/1" && h.at("format") != "basin.checkpoint/2")
      fail(path, "format: expected basin.checkpoint/1 or /2, got " + h.at("format").dump());
    const auto params = h.at("params").get<size_t>(), buffers = h.at("buffers").get<size_t>();
    if (params != net.params().size() || buffers != net.buffers().size() ||
        h.at("tensors") != tensor_list(net))
      fail(path, "holds " + h.at("model").get<std::string>() + " with " + std::to_string(params) +
                     " parameters; this run builds " + net.network().name + " with " +
                     std::to_string(net.params().size()) + " (tensor lists differ)");
    const size_t expected = header_at + header_size + 4 * (2 * params + buffers) + 8;
    if (bytes.size() != expected)
      fail(path, "size " + std::to_string(bytes.size()) + " bytes, expected " +
                     std::to_string(expected));
    state.step = h.at("step").get<long long>();
    state.position.epoch = h.at("position").at("epoch").get<std::int64_t>();
    state.position.next_sample = h.at("position").at("next_sample").get<std::int64_t>();
    state.recipe = h.at("recipe").get<std::string>();
    if (h.contains("epoch_so_far")) {
      const auto& e = h.at("epoch_so_far");
      state.epoch = {.loss_sum = e.at("loss_sum").get<double>(),
                     .finite_steps = e.at("finite_steps").get<long long>(),
                     .images = e.at("images").get<double>(),
                     .seconds = e.at("seconds").get<double>()};
    }
    if (h.contains("seconds")) state.seconds = h.at("seconds").get<double>();
    state.validation_pending = h.contains("validation_pending") && h.at("validation_pending").get<bool>();
    if (h.contains("loss_scale")) {
      const auto& l = h.at("loss_scale");
      state.loss_scale = LossScaleState{.scale = l.at("scale").get<double>(),
                                        .good_steps = l.at("good_steps").get<long long>(),
                                        .skipped_steps = l.at("skipped_steps").get<long long>()};
      if (!(state.loss_scale->scale > 0) || !std::isfinite(state.loss_scale->scale))
        fail(path, "loss_scale.scale: expected a finite scale above 0, got " + l.at("scale").dump());
    }
  } catch (const nlohmann::json::exception& e) {
    fail(path, std::string("header field missing or of the wrong type: ") + e.what());
  }
  const unsigned char* p = bytes.data() + header_at + header_size;
  for (std::span<float> flat : {net.params(), net.buffers(), velocity}) {
    std::vector<float> host(flat.size());
    std::memcpy(host.data(), p, flat.size_bytes());
    net.from_host(host, flat);
    p += flat.size_bytes();
  }
  return state;
}

}  // namespace basin::exec
