// Parameters and buffers to and from NumPy .npy files, one per state_dict key, so torch (and
// anything with NumPy) can load basin's weights and basin can load theirs without a converter.
// Only what basin writes is read: float32, little-endian, C order, format version 1.0.
#include <basin/exec.h>

#include <cstdint>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <string>
#include <string_view>

namespace basin::exec {
namespace {

constexpr char kMagic[] = "\x93NUMPY";

std::string shape_text(const std::vector<long long>& shape) {
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i)
    s += std::to_string(shape[i]) + (shape.size() == 1 || i + 1 < shape.size() ? "," : "");
  return s + ")";
}

long long product(const std::vector<long long>& shape) {
  long long n = 1;
  for (long long d : shape) n *= d;
  return n;
}

// One .npy file of `bytes` of little-endian `descr` values (NumPy's type string) in `shape`.
void write_npy_bytes(const std::filesystem::path& path, const char* descr, const std::string& shape,
                     std::span<const char> bytes) {
  std::string header = std::string("{'descr': '") + descr + "', 'fortran_order': False, 'shape': " + shape + ", }";
  // The header, with magic and lengths, is padded with spaces to a multiple of 64 bytes and
  // ends in a newline (NEP 1).
  const size_t unpadded = 6 + 2 + 2 + header.size() + 1;
  header.append((64 - unpadded % 64) % 64, ' ');
  header += '\n';
  const auto tmp = std::filesystem::path(path.string() + ".tmp");
  {
    std::ofstream out(tmp, std::ios::binary);
    if (!out) throw std::runtime_error(tmp.string() + ": cannot open for writing");
    out.write(kMagic, 6);
    const char version[2] = {1, 0};
    out.write(version, 2);
    const auto len = static_cast<std::uint16_t>(header.size());
    const char len_le[2] = {static_cast<char>(len & 0xff), static_cast<char>(len >> 8)};
    out.write(len_le, 2);
    out.write(header.data(), static_cast<std::streamsize>(header.size()));
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!out) throw std::runtime_error(tmp.string() + ": write failed");
  }
  std::filesystem::rename(tmp, path);
}

}  // namespace

void write_npy(const std::filesystem::path& path, std::span<const float> data,
               const std::vector<long long>& shape) {
  if (product(shape) != static_cast<long long>(data.size()))
    throw std::invalid_argument(path.string() + ": shape " + shape_text(shape) + " does not hold " +
                                std::to_string(data.size()) + " values");
  write_npy_bytes(path, "<f4", shape_text(shape),
                  std::span(reinterpret_cast<const char*>(data.data()), data.size_bytes()));
}

std::vector<float> read_npy(const std::filesystem::path& path, std::vector<long long>* shape) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(path.string() + ": cannot open");
  char magic[6], version[2], len_le[2];
  in.read(magic, 6).read(version, 2).read(len_le, 2);
  if (!in || std::memcmp(magic, kMagic, 6) != 0 || version[0] != 1)
    throw std::runtime_error(path.string() + ": not a version 1 .npy file");
  const size_t len = static_cast<unsigned char>(len_le[0]) | static_cast<unsigned char>(len_le[1])
                                                                 << 8;
  std::string header(len, '\0');
  in.read(header.data(), static_cast<std::streamsize>(len));
  auto field = [&](const std::string& key) {
    const size_t at = header.find("'" + key + "':");
    if (at == std::string::npos)
      throw std::runtime_error(path.string() + ": header has no '" + key + "' field");
    return header.substr(at + key.size() + 3);
  };
  if (field("descr").find("'<f4'") != 1)
    throw std::runtime_error(path.string() + ": field 'descr' must be '<f4' (float32)");
  if (field("fortran_order").rfind(" False", 0) != 0)
    throw std::runtime_error(path.string() + ": field 'fortran_order' must be False");
  std::string dims = field("shape");
  const size_t open = dims.find('('), close = dims.find(')');
  if (open == std::string::npos || close == std::string::npos)
    throw std::runtime_error(path.string() + ": field 'shape' must be a tuple");
  dims = dims.substr(open + 1, close - open - 1);
  std::vector<long long> s;
  for (size_t pos = 0; pos < dims.size();) {
    const size_t comma = dims.find(',', pos);
    const std::string item =
        dims.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    if (item.find_first_not_of(' ') != std::string::npos) s.push_back(std::stoll(item));
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  std::vector<float> data(product(s));
  in.read(reinterpret_cast<char*>(data.data()), static_cast<std::streamsize>(data.size() * 4));
  if (!in)
    throw std::runtime_error(path.string() + ": shape " + shape_text(s) + " needs " +
                             std::to_string(data.size() * 4) +
                             " bytes of data, the file is shorter");
  if (shape != nullptr) *shape = std::move(s);
  return data;
}

std::vector<long long> tensor_shape(const model::Network& network, const ParamInfo& p) {
  const model::Layer& l = network.layers.at(p.layer);
  if (p.name.ends_with(".weight")) {
    if (l.kind == model::LayerKind::conv)
      return {l.out_channels, l.in_channels, l.kernel, l.kernel};
    if (l.kind == model::LayerKind::fc)
      return {l.out_channels, 1LL * l.in_channels * l.in_h * l.in_w};
  }
  return {p.count};
}

void save_state(const Net& net, const std::filesystem::path& dir, long long batches_tracked) {
  std::filesystem::create_directories(dir);
  const std::vector<float> params = net.to_host(net.params()), buffers = net.to_host(net.buffers());
  for (const ParamInfo& p : net.param_info())
    write_npy(dir / (p.name + ".npy"), std::span(params).subspan(p.offset, p.count),
              tensor_shape(net.network(), p));
  constexpr std::string_view kVariance = ".running_var";
  const std::int64_t count = batches_tracked;  // NumPy's '<i8': little-endian, as static_assert'ed in checkpoints
  for (const BufferInfo& b : net.buffer_info()) {
    write_npy(dir / (b.name + ".npy"), std::span(buffers).subspan(b.offset, b.count), {b.count});
    // torch's batch norm counts its training forwards in a 0-d int64 buffer beside its
    // statistics; written, torchvision loads these files strictly.
    if (b.name.ends_with(kVariance))
      write_npy_bytes(dir / (b.name.substr(0, b.name.size() - kVariance.size()) + ".num_batches_tracked.npy"),
                      "<i8", "()", std::span(reinterpret_cast<const char*>(&count), sizeof count));
  }
}

void load_state(Net& net, const std::filesystem::path& dir) {
  auto load = [&](const std::string& name, std::vector<long long> expected, std::span<float> to) {
    const auto path = dir / (name + ".npy");
    std::vector<long long> shape;
    const std::vector<float> data = read_npy(path, &shape);
    if (shape != expected)
      throw std::runtime_error(path.string() + ": shape " + shape_text(shape) + ", expected " +
                               shape_text(expected) + " for " + name);
    std::copy(data.begin(), data.end(), to.begin());
  };
  // Read into host copies, written into the backend's arrays once everything has loaded.
  std::vector<float> params = net.to_host(net.params()), buffers = net.to_host(net.buffers());
  for (const ParamInfo& p : net.param_info())
    load(p.name, tensor_shape(net.network(), p), std::span(params).subspan(p.offset, p.count));
  for (const BufferInfo& b : net.buffer_info())
    load(b.name, {b.count}, std::span(buffers).subspan(b.offset, b.count));
  net.from_host(params, net.params());
  net.from_host(buffers, net.buffers());
}

}  // namespace basin::exec
