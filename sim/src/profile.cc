// Device profiles (basin.device_profile/1, profiles/devices/*.json): datasheet peaks and measured
// training throughputs, each with its source in the file's context block. Loading is strict, so a
// typo in a profile is an error naming the file and the field, not a silently different number.
#include <basin/training.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>

namespace basin::sim {
namespace {

using nlohmann::json;

const json& field(const json& obj, const std::string& key, const std::string& path,
                  const std::string& file) {
  if (!obj.is_object() || !obj.contains(key))
    throw topo::InputError(file, path + "/" + key, "a required field '" + key + "'");
  return obj.at(key);
}

double positive(const json& obj, const std::string& key, const std::string& path,
                const std::string& file) {
  const json& v = field(obj, key, path, file);
  if (!v.is_number() || !(v.get<double>() > 0))
    throw topo::InputError(file, path + "/" + key, "a number above 0, got " + v.dump());
  return v.get<double>();
}

std::string text(const json& obj, const std::string& key, const std::string& path,
                 const std::string& file) {
  const json& v = field(obj, key, path, file);
  if (!v.is_string()) throw topo::InputError(file, path + "/" + key, "a string, got " + v.dump());
  return v.get<std::string>();
}

// A device profile's object: an object, with none but the `known` fields.
void only_known(const json& obj, const std::vector<std::string>& known, const std::string& path,
                const std::string& file) {
  if (!obj.is_object())
    throw topo::InputError(file, path.empty() ? "/" : path, "an object, got " + obj.dump());
  topo::require_known_fields(obj, known, file, path);
}

}  // namespace

const char* to_string(Precision p) {
  switch (p) {
    case Precision::fp32: return "fp32";
    case Precision::fp16: return "fp16";
    case Precision::bf16: return "bf16";
  }
  return "?";
}

Precision precision_from_string(const std::string& t, const std::string& origin) {
  for (Precision p : {Precision::fp32, Precision::fp16, Precision::bf16})
    if (t == to_string(p)) return p;
  throw topo::InputError(origin, "", "fp32, fp16 or bf16, got '" + t + "'");
}

double bytes_per_value(Precision p) { return p == Precision::fp32 ? 4 : 2; }

namespace {

// `may_borrow` is false for the profile another borrows from: one level only, so a file that
// names itself, or two that name each other, are an error rather than an endless recursion.
DeviceProfile load_profile(const std::string& path, bool may_borrow, const std::string& borrower) {
  const std::string contents = topo::read_text_file(path, "a readable device profile file");
  json doc;
  try {
    doc = json::parse(contents);
  } catch (const json::parse_error& e) {
    throw topo::InputError(path, "", std::string("well-formed JSON: ") + e.what());
  }
  if (!doc.is_object()) throw topo::InputError(path, "", "a JSON object at the top");
  if (text(doc, "format", "", path) != "basin.device_profile/1")
    throw topo::InputError(path, "/format", "\"basin.device_profile/1\"");
  only_known(doc, {"format", "context", "device", "match", "memory_GB", "memory_GBps",
                   "peak_TFLOPS", "measured", "efficiency_of"}, "", path);
  field(doc, "context", "", path);
  DeviceProfile p;
  p.file = path;
  p.device = text(doc, "device", "", path);
  const json& match = field(doc, "match", "", path);
  if (!match.is_array() || match.empty())
    throw topo::InputError(path, "/match", "a non-empty array of GPU model substrings, got " + match.dump());
  for (size_t i = 0; i < match.size(); ++i) {
    if (!match[i].is_string() || match[i].get<std::string>().empty())
      throw topo::InputError(path, "/match/" + std::to_string(i),
                             "a non-empty string (part of a GPU model name), got " + match[i].dump());
    p.match.push_back(match[i].get<std::string>());
  }
  p.memory_GB = positive(doc, "memory_GB", "", path);
  p.memory_GBps = positive(doc, "memory_GBps", "", path);
  const json& peaks = field(doc, "peak_TFLOPS", "", path);
  only_known(peaks, {"fp32", "fp16", "bf16"}, "/peak_TFLOPS", path);
  p.peak_TFLOPS_fp32 = positive(peaks, "fp32", "/peak_TFLOPS", path);
  p.peak_TFLOPS_fp16 = peaks.contains("fp16") ? positive(peaks, "fp16", "/peak_TFLOPS", path) : 0;
  p.peak_TFLOPS_bf16 = peaks.contains("bf16") ? positive(peaks, "bf16", "/peak_TFLOPS", path) : 0;
  const json& measured = field(doc, "measured", "", path);
  if (!measured.is_array())
    throw topo::InputError(path, "/measured", "an array of measured throughputs, got " + measured.dump());
  for (size_t i = 0; i < measured.size(); ++i) {
    const std::string at = "/measured/" + std::to_string(i);
    const json& m = measured[i];
    only_known(m, {"model", "precision", "batch_per_gpu", "images_per_s", "gpus", "source", "backward_s",
                   "backward_source"}, at, path);
    MeasuredThroughput t;
    t.model = text(m, "model", at, path);
    t.precision = precision_from_string(text(m, "precision", at, path), path + ": " + at + "/precision");
    const json& batch = field(m, "batch_per_gpu", at, path);
    if (!batch.is_number_integer() || batch.get<long long>() < 1 || batch.get<long long>() > 1 << 20)
      throw topo::InputError(path, at + "/batch_per_gpu", "a whole batch of 1 or more images, got " + batch.dump());
    t.batch_per_gpu = batch.get<int>();
    t.images_per_s = positive(m, "images_per_s", at, path);
    t.source = text(m, "source", at, path);
    if (m.contains("gpus")) {
      const json& gpus = m["gpus"];
      if (!gpus.is_number_integer() || gpus.get<long long>() < 1 || gpus.get<long long>() > 1 << 20)
        throw topo::InputError(path, at + "/gpus", "a whole number of GPUs, 1 or more, got " + gpus.dump());
      t.gpus = gpus.get<int>();
    }
    if (m.contains("backward_s")) {
      t.backward_s = positive(m, "backward_s", at, path);
      t.backward_source = text(m, "backward_source", at, path);
      if (t.backward_s >= t.batch_per_gpu / t.images_per_s)
        throw topo::InputError(path, at + "/backward_s",
                               "a backprop time shorter than the whole iteration");
    }
    p.measured.push_back(t);
  }
  if (doc.contains("efficiency_of")) {
    // A file beside this one that measured what this one has not. One level only: the borrowed
    // share must be a measurement, not another borrowing.
    const std::string name = text(doc, "efficiency_of", "", path);
    if (!may_borrow)
      throw topo::InputError(borrower, "/efficiency_of",
                             "a profile with measurements of its own, but " +
                                 std::filesystem::path(path).filename().string() + " borrows from " + name);
    const std::filesystem::path ref = std::filesystem::path(path).parent_path() / name;
    if (name.empty() || name.find('/') != std::string::npos || !std::filesystem::is_regular_file(ref))
      throw topo::InputError(path, "/efficiency_of",
                             "the file name of a device profile in the same directory, got \"" + name + "\"");
    DeviceProfile other = load_profile(ref.string(), false, path);
    if (other.measured.empty())
      throw topo::InputError(path, "/efficiency_of", "a profile with measurements, but " + name + " has none");
    p.efficiency_of = std::make_shared<const DeviceProfile>(std::move(other));
  }
  return p;
}

}  // namespace

DeviceProfile load_device_profile(const std::string& path) { return load_profile(path, true, path); }

std::string default_profiles_dir() {
  if (const char* env = std::getenv("BASIN_PROFILES")) return env;
  return BASIN_SOURCE_DIR "/profiles/devices";
}

DeviceProfile device_profile_for(const std::string& dir, const topo::Node& gpu) {
  DeviceProfile p;
  try {
    p = find_device_profile(dir, gpu.model);
  } catch (const topo::InputError& e) {
    if (e.origin != "--profile") throw;  // the directory or a profile in it is at fault
    // The user wrote the model into a topology (or discovery read it): name that GPU.
    throw topo::InputError("the topology's GPU " + gpu.id, "model '" + gpu.model + "'", e.expected);
  }
  p.gpu_model = gpu.model;
  if (gpu.memory_GB > 0 && gpu.memory_GB != p.memory_GB) {
    p.memory_GB = gpu.memory_GB;
    p.memory_of = gpu.model.empty() ? gpu.id : gpu.model;
  }
  return p;
}

DeviceProfile device_profile_for(const std::string& dir, const topo::Topology& t,
                                 const std::vector<topo::Vertex>& gpus) {
  if (gpus.empty()) throw std::invalid_argument("device_profile_for: no GPUs");
  const std::string origin = t.source.empty() ? t.name : t.source;
  auto for_gpu = [&](const topo::Node& gpu) {
    try {
      return device_profile_for(dir, gpu);
    } catch (const topo::InputError& e) {
      if (e.origin.rfind("the topology's GPU ", 0) != 0 || origin.empty()) throw;
      throw topo::InputError(origin, "", e.expected + " (for GPU " + gpu.id + ")");
    }
  };
  const topo::Node& first = t.graph[gpus.front()];
  DeviceProfile p = for_gpu(first);
  std::map<std::string, DeviceProfile> by_model{{first.model, p}};
  for (topo::Vertex v : gpus) {
    const topo::Node& gpu = t.graph[v];
    auto it = by_model.find(gpu.model);
    if (it == by_model.end()) it = by_model.emplace(gpu.model, for_gpu(gpu)).first;
    const DeviceProfile& own = it->second;
    if (own.file != p.file)
      throw topo::InputError(origin, "",
                             "GPUs of one kind in a run, whose step basin times by one device profile, but " +
                                 first.id + " is '" + first.model + "' (" + p.device + "'s profile) and " + gpu.id +
                                 " is '" + gpu.model + "' (" + own.device + "'s): describe the servers of one "
                                 "kind in a topology of their own");
    const double memory = gpu.memory_GB > 0 ? gpu.memory_GB : own.memory_GB;
    if (memory < p.memory_GB) {
      p.memory_GB = memory;
      p.memory_of = (gpu.model.empty() ? gpu.id : gpu.model) + " (" + gpu.id + ")";
    }
  }
  return p;
}

DeviceProfile find_device_profile(const std::string& dir, const std::string& gpu_model) {
  namespace fs = std::filesystem;
  std::string known;
  if (!fs::is_directory(dir))
    throw topo::InputError(dir, "", "a directory of device profiles (set BASIN_PROFILES)");
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().extension() == ".json") files.push_back(e.path());
  std::sort(files.begin(), files.end());
  // The longest matching substring wins, so "GB200" finds its own profile before "B200"'s. A
  // match starts a word of the model name and no digit follows it: "A100" names "NVIDIA
  // A100-SXM4-80GB" and the "A100X", not the workstation "NVIDIA A1000"; "V100" the "V100S".
  // In any letter case: discovery reports "NVIDIA A100-SXM4-40GB", a user may write "a100-sxm4-40gb".
  auto upper = [](std::string text) {
    for (char& c : text) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return text;
  };
  const std::string model = upper(gpu_model);
  auto names = [&](const std::string& match) {
    const std::string m = upper(match);
    auto alnum = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; };
    auto digit = [](char c) { return std::isdigit(static_cast<unsigned char>(c)) != 0; };
    for (size_t at = model.find(m); at != std::string::npos; at = model.find(m, at + 1)) {
      const size_t end = at + m.size();
      if ((at == 0 || !alnum(model[at - 1]) || !alnum(m.front())) &&
          (end == model.size() || !digit(model[end]) || !digit(m.back())))
        return true;
    }
    return false;
  };
  std::optional<DeviceProfile> best;
  size_t best_length = 0;
  for (const auto& f : files) {
    DeviceProfile p = load_device_profile(f.string());
    known += (known.empty() ? "" : ", ") + p.device;
    for (const auto& m : p.match)
      if (names(m) && m.size() > best_length) {
        best_length = m.size();
        best = p;
        best->matched_by = m;
      }
  }
  if (best) return std::move(*best);
  if (gpu_model.empty())
    throw topo::InputError("--profile", "",
                           "a GPU model to find a device profile by, but the topology's GPU names none (its "
                           "'model' is empty): name it there, or give a profile with --profile FILE "
                           "(docs/device-profile-format.md)");
  throw topo::InputError("--profile", "",
                         "a device profile for GPU '" + gpu_model + "' in " + dir +
                             " (have: " + known + "); give one with --profile FILE (docs/device-profile-format.md)");
}

}  // namespace basin::sim
