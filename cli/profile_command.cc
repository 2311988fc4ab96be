// `basin profile`: measures basin's own training step on this machine's GPU (or, standing in for
// a device, its CPU) and writes a device profile (basin.device_profile/1) the simulator and the
// planner calibrate by, so predictions for clusters of this GPU rest on what basin itself ran
// here rather than on another framework's published figures.
//
// The step timed is the one basin train runs, without the data loader: forward from an input
// already in the backend's memory, the loss, backward, SGD with momentum (and fp16's loss scale
// undone), synthetic 224x224 images. Two batches at one precision let the simulator fit the
// step's fixed cost (launches, host work); the default batches are the two the H100 profile's
// PyTorch figures used. Backprop is timed on its own as well, since only it can hide allreduces.
//
// The written profile is the base profile (the one in profiles/devices that names this GPU, or
// --base) with basin's measurements in place of those of the same network, precision and batch;
// peaks and memory bandwidth stay the base's, which are datasheet figures.
#include "commands.h"

#include <basin/exec.h>
#include <basin/kernels.h>
#include <basin/topology.h>
#include <basin/train.h>
#include <basin/training.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <stdexcept>

namespace basin::cli {
namespace {

using json = nlohmann::json;

struct ProfileOptions {
  std::string device = "gpu";
  int gpu = 0;
  int threads = 0;
  std::string model = "resnet50";
  std::vector<int> batches = {32, 256};
  std::vector<std::string> precisions;  // empty: fp32, bf16, fp16 on a GPU; fp32 on the CPU
  int steps = 10, warmup = 3;
  std::string base, out;
};

struct Measurement {
  sim::Precision precision;
  int batch = 0;
  double images_per_s = 0, backward_s = 0;
  std::string backend;  // its name, as the backend gives it
};

exec::Precision exec_precision(sim::Precision p) {
  return p == sim::Precision::bf16 ? exec::Precision::bf16
         : p == sim::Precision::fp16 ? exec::Precision::fp16
                                     : exec::Precision::fp32;
}

std::unique_ptr<exec::Backend> backend_for(const ProfileOptions& o, sim::Precision p) {
  if (o.device == "cpu") {
#if BASIN_HAVE_DNNL
    return exec::make_cpu_backend(o.threads);
#else
    throw std::runtime_error("this basin was built without oneDNN (libdnnl-dev): no CPU backend to measure");
#endif
  }
#if BASIN_HAVE_CUDNN
  // fp32 with TF32 tensor-core math, as the profiles' fp32 figures (PyTorch's default for
  // convolutions) and the simulator's fp32 peaks are.
  return exec::make_gpu_backend({.device = o.gpu, .tf32 = true, .precision = exec_precision(p)});
#else
  (void)p;
  throw std::runtime_error("this basin was built without cuDNN: no GPU backend to measure");
#endif
}

int usable_gpus() {
#if BASIN_HAVE_CUDNN
  return kernels::cuda_device_count();
#else
  return 0;
#endif
}

// One (precision, batch): warm-up steps (algorithm searches, workspaces, weight copies), then
// `steps` timed one by one. Reading one gradient back waits for the device, so backprop's time
// is its own on a GPU too.
Measurement measure(const ProfileOptions& o, sim::Precision precision, int batch) {
  auto backend = backend_for(o, precision);
  exec::Net net(model::network_by_name(o.model), *backend, batch);
  net.init({.seed = 1});
  auto velocity = backend->alloc_flat(static_cast<long long>(net.params().size()));
  std::span<float> v(velocity.get(), net.params().size());
  const exec::SyntheticBatch input = exec::synthetic_batch(batch, 224, net.network().classes);
  const std::vector<int>& labels = input.labels;
  net.forward(input.images.data(), exec::Mode::training);  // stages the images in the backend's memory
  const double scale = precision == sim::Precision::fp16 ? 1024 : 1;
  using clock = std::chrono::steady_clock;
  auto seconds_since = [](clock::time_point t) { return std::chrono::duration<double>(clock::now() - t).count(); };
  double backward = 0;
  auto step = [&] {
    net.forward_staged(exec::Mode::training);
    net.loss(labels.data(), batch, scale);  // returns the loss to the host: the device is idle
    const auto t0 = clock::now();
    net.backward();
    net.to_host(net.grads().subspan(0, 1));
    backward += seconds_since(t0);
    if (scale != 1) backend->unscale_gradients(net.grads().data(), net.grads().size(), 1 / scale);
    exec::sgd_step(net, v, exec::SgdConfig{}, 0.1);
    net.to_host(net.params().subspan(0, 1));
  };
  for (int i = 0; i < o.warmup; ++i) step();
  backward = 0;
  const auto t0 = clock::now();
  for (int i = 0; i < o.steps; ++i) step();
  const double total = seconds_since(t0);
  return {precision, batch, batch * o.steps / total, backward / o.steps, backend->name()};
}

std::string today() {
  const std::time_t now = std::time(nullptr);
  char text[16];
  std::strftime(text, sizeof text, "%Y-%m-%d", std::gmtime(&now));
  return text;
}

// The measured device's name: CUDA's for the GPU measured (discovery lists GPUs in PCI order,
// which CUDA's default numbering need not follow), or the CPU's.
std::string device_name(const ProfileOptions& o) {
  if (o.device == "gpu") {
#if BASIN_HAVE_CUDNN
    if (std::string name = kernels::cuda_device_name(o.gpu); !name.empty()) return name;
#endif
    throw topo::InputError("--gpu", "", "a GPU CUDA names, but GPU " + std::to_string(o.gpu) + " has no name");
  }
  const topo::Topology t = topo::discover({}).topo;
  for (topo::Vertex v : topo::nodes_of_kind(t, topo::NodeKind::cpu))
    if (!t.graph[v].model.empty()) return t.graph[v].model;
  return "this machine's CPU";
}

std::vector<sim::Precision> precisions_of(const ProfileOptions& o) {
  std::vector<std::string> names = o.precisions;
  if (names.empty()) names = o.device == "cpu" ? std::vector<std::string>{"fp32"}
                                               : std::vector<std::string>{"fp32", "bf16", "fp16"};
  std::vector<sim::Precision> out;
  for (const auto& n : names) {
    const sim::Precision p = sim::precision_from_string(n, "--precisions");
    if (o.device == "cpu" && p != sim::Precision::fp32)
      throw topo::InputError("--precisions", "", "fp32 with --device cpu (oneDNN runs fp32 only), got " + n);
    if (std::find(out.begin(), out.end(), p) == out.end()) out.push_back(p);
  }
  return out;
}

// The base profile's document with `done` in place of its measurements of the same network,
// precision and batch.
json profile_document(const ProfileOptions& o, const std::string& base_path, const std::string& device,
                      const std::vector<Measurement>& done) {
  json doc = json::parse(topo::read_text_file(base_path, "a readable device profile file"));
  const std::string how = "basin profile " + today() + " on " + device + " (" + done.front().backend +
                          "): one " + o.model + " training step (forward, loss, backward, SGD momentum" +
                          ") on synthetic 224x224 images already in the backend's memory, " +
                          std::to_string(o.steps) + " timed steps after " + std::to_string(o.warmup) +
                          " warm-up" + (o.device == "gpu" ? ", fp32 with TF32 math" : "");
  json kept = json::array();
  for (const json& m : doc["measured"]) {
    bool replaced = false;
    for (const auto& d : done)
      replaced |= m.value("model", "") == o.model && m.value("precision", "") == sim::to_string(d.precision) &&
                  m.value("batch_per_gpu", 0) == d.batch;
    if (!replaced) kept.push_back(m);
  }
  for (const auto& d : done)
    kept.push_back({{"model", o.model},
                    {"precision", sim::to_string(d.precision)},
                    {"batch_per_gpu", d.batch},
                    {"images_per_s", d.images_per_s},
                    {"source", "basin"},
                    {"backward_s", d.backward_s},
                    {"backward_source", "basin"}});
  doc["measured"] = kept;
  doc["context"]["written"] = today();
  doc["context"]["sources"]["basin"] = how;
  if (o.device == "gpu") {
    doc["device"] = device;
    doc["match"] = json::array({device});
  } else {
    doc["context"]["sources"]["basin"] =
        how + "; the CPU stands in for " + doc.value("device", "the device") + " (what-if and tests)";
  }
  // Measured now: a borrowed share of another device's peak would be the weaker evidence, and
  // its relative file name may not resolve beside the output.
  doc.erase("efficiency_of");
  return doc;
}

int run_profile(const ProfileOptions& o) {
  if (o.device != "gpu" && o.device != "cpu")
    throw topo::InputError("--device", "", "gpu or cpu, got '" + o.device + "'");
  if (o.device == "gpu" && usable_gpus() == 0)
    throw topo::InputError("--device", "", "gpu on a machine with a usable CUDA GPU: none found (no driver or "
                                           "no device); --device cpu --base FILE measures the CPU instead");
  if (o.device == "cpu" && o.base.empty())
    throw topo::InputError("--base", "", "the device profile the CPU's measurements stand in for, with --device cpu");
  const auto precisions = precisions_of(o);
  std::vector<int> batches;  // each once: a batch named twice would write two rows of one figure
  for (int b : o.batches)
    if (std::find(batches.begin(), batches.end(), b) == batches.end()) batches.push_back(b);
  topo::require_writable(o.out);
  try {
    model::network_by_name(o.model);  // an unknown name fails before anything runs
  } catch (const std::invalid_argument& e) {
    throw topo::InputError("--model", "", e.what());
  }
  const std::string device = device_name(o);
  const std::string base_path =
      !o.base.empty() ? o.base : sim::find_device_profile(sim::default_profiles_dir(), device).file;
  const sim::DeviceProfile base = sim::load_device_profile(base_path);
  if (o.device == "gpu" && base.device != device)
    std::cerr << "basin profile: " << device << " measured into " << base_path << " (" << base.device
              << "): its peaks and memory bandwidth stay that profile's\n";

  std::vector<Measurement> done;
  for (sim::Precision p : precisions)
    for (int batch : batches) {
      std::fprintf(stderr, "basin profile: %s %s batch %d ...", o.model.c_str(), sim::to_string(p), batch);
      std::fflush(stderr);
      try {
        done.push_back(measure(o, p, batch));
        std::fprintf(stderr, " %.1f images/s, backprop %.4f s\n", done.back().images_per_s,
                     done.back().backward_s);
      } catch (const std::exception& e) {  // out of memory at this batch, a refused precision
        std::fprintf(stderr, " failed: %s\n", e.what());
      }
    }
  if (done.empty())
    throw std::runtime_error("no configuration ran, so no profile was written (see the lines above)");
  const json doc = profile_document(o, base_path, device, done);
  topo::write_file_atomically(o.out, doc.dump(2) + "\n");
  sim::load_device_profile(o.out);  // what was written reads back as a profile
  std::cout << "wrote " << o.out << ": " << done.size() << " measurement(s) of " << device
            << "; use it with basin sim/plan --profile " << o.out << "\n";
  return done.size() == precisions.size() * batches.size() ? 0 : 1;
}

}  // namespace

std::function<int()> add_profile_command(CLI::App& app) {
  auto o = std::make_shared<ProfileOptions>();
  CLI::App* cmd = app.add_subcommand(
      "profile", "Measure basin's training step on this GPU and write a device profile the simulator calibrates by");
  cmd->add_option("--out", o->out, "the device profile to write (basin.device_profile/1)")->required();
  cmd->add_option("--device", o->device, "gpu (cuDNN; the default) or cpu (oneDNN, fp32; needs --base)")
      ->capture_default_str();
  cmd->add_option("--gpu", o->gpu, "the GPU's index")->capture_default_str()->check(CLI::NonNegativeNumber);
  cmd->add_option("--threads", o->threads, "with --device cpu: compute threads (0: one per core)")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  cmd->add_option("--model", o->model, "network: resnet18, resnet34, resnet50, resnet101, resnet152")
      ->capture_default_str();
  cmd->add_option("--batches", o->batches, "per-GPU batches to measure (two let the simulator fit the step's fixed cost)")
      ->delimiter(',')->capture_default_str()->check(CLI::Range(1, 1 << 16));
  cmd->add_option("--precisions", o->precisions, "fp32, bf16, fp16 (default: all three on a GPU, fp32 on the CPU)")
      ->delimiter(',');
  cmd->add_option("--steps", o->steps, "timed steps per configuration")->capture_default_str()->check(CLI::Range(1, 100000));
  cmd->add_option("--warmup", o->warmup, "untimed steps first")->capture_default_str()->check(CLI::Range(0, 100000));
  cmd->add_option("--base", o->base,
                  "the profile whose peaks, memory and other measurements the output keeps (default: the one in "
                  "profiles/devices that names this GPU)");
  return [o] { return run_profile(*o); };
}

}  // namespace basin::cli
