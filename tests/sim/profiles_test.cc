// Device profiles: the most specific match wins, a device nobody has measured borrows the share
// of its roofline a measured one reached (and the roofline's own scaling then holds exactly), and
// a profile that borrows badly is an error naming the file and the field.
#include "../catch.h"
#include "../temp_dir.h"

#include <basin/training.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <iterator>

using namespace basin;
using namespace basin::sim;
using nlohmann::json;

namespace {

json read_json(const std::string& path) {
  std::ifstream in(path);
  return json::parse(in);
}

void write_json(const std::string& path, const json& j) { std::ofstream(path) << j.dump(2); }

std::string shipped(const std::string& name) { return default_profiles_dir() + "/" + name; }

// A shipped profile (`base`.json) beside a copy of it renamed `name`, measuring nothing and
// borrowing the shipped one's shares, with `edit` applied to the copy.
template <class Edit>
void shipped_and_copy(const test::TempDir& dir, const std::string& base, const std::string& name, Edit edit) {
  json shipped_profile = read_json(shipped(base + ".json"));
  write_json(dir / (base + ".json"), shipped_profile);
  json copy = shipped_profile;
  copy["device"] = name;
  copy["match"] = {name};
  copy["measured"] = json::array();
  copy["efficiency_of"] = base + ".json";
  edit(copy);
  std::string file = name;
  std::transform(file.begin(), file.end(), file.begin(), [](unsigned char c) { return std::tolower(c); });
  write_json(dir / (file + ".json"), copy);
}

// The H100 profile beside a copy of it renamed "H2" (h2.json).
template <class Edit>
void h100_and_copy(const test::TempDir& dir, Edit edit) {
  shipped_and_copy(dir, "h100", "H2", edit);
}

}  // namespace

TEST_CASE("the longest matching name picks the profile: GB200 is not taken for B200", "[sim][profile]") {
  const std::string dir = default_profiles_dir();
  REQUIRE(find_device_profile(dir, "GB200").device == "NVIDIA GB200");
  REQUIRE(find_device_profile(dir, "B200-180GB").device == "NVIDIA B200");
  REQUIRE(find_device_profile(dir, "H100-SXM5-80GB").device.find("H100") != std::string::npos);
  for (const char* name : {"gb200-nvl72:1", "dgx-b200:1"}) {
    CAPTURE(name);
    const topo::Topology t = topo::load_any(name);
    const DeviceProfile p = find_device_profile(dir, t.graph[topo::gpus(t).front()].model);
    REQUIRE(p.efficiency_of);
    REQUIRE(p.efficiency_of->device.find("H100") != std::string::npos);
  }
}

TEST_CASE("a borrowed share of the roofline scales with the device's own peaks", "[sim][profile]") {
  // A device with every peak and its memory bandwidth twice the H100's, run at the share of its
  // roofline the H100 measured: every layer's roofline time halves, and so does the step.
  test::TempDir dir("profiles");
  h100_and_copy(dir, [](json& p) {
    p["memory_GBps"] = 2 * p["memory_GBps"].get<double>();
    for (auto& peak : p["peak_TFLOPS"]) peak = 2 * peak.get<double>();
  });
  const DeviceProfile h100 = load_device_profile(dir / "h100.json");
  const DeviceProfile twice = find_device_profile(dir.path.string(), "H2");
  REQUIRE(twice.efficiency_of);

  const topo::Topology t = topo::load_any("dgx-h100:1");
  // The step's fixed cost (launches, host work) is the framework's, not the roofline's: the same
  // on both, so what doubles is the part that grows with the batch, t(256) - t(32).
  auto growth = [&](const DeviceProfile& p, TrainingConfig cfg) {
    const double large = simulate_iteration(t, p, cfg).compute_s;
    cfg.batch_per_gpu = 32;
    return large - simulate_iteration(t, p, cfg).compute_s;
  };
  for (Precision prec : {Precision::bf16, Precision::fp32}) {
    CAPTURE(to_string(prec));
    TrainingConfig cfg{.network = model::resnet(50), .gpus = 1, .batch_per_gpu = 256, .precision = prec};
    const IterationResult measured = simulate_iteration(t, h100, cfg);
    const IterationResult borrowed = simulate_iteration(t, twice, cfg);
    REQUIRE_FALSE(measured.compute_estimated);
    // The H100 runs at its measurement (DEVICE.md: 3,976 bf16, 2,520 fp32 images/s at 256).
    REQUIRE_THAT(measured.compute_s, WithinRel(256.0 / (prec == Precision::bf16 ? 3976 : 2520), 1e-6));
    REQUIRE_THAT(growth(twice, cfg), WithinRel(growth(h100, cfg) / 2, 1e-9));
    REQUIRE(borrowed.compute_estimated);
    REQUIRE(borrowed.compute_basis.find("no measurement of this device") != std::string::npos);
    REQUIRE(borrowed.compute_basis.find(h100.device) != std::string::npos);
    // ... and the fixed cost itself is the H100's.
    REQUIRE(measured.step_overhead_s > 0);
    REQUIRE(borrowed.step_overhead_s == measured.step_overhead_s);
  }
  // ResNet-18 was never measured on either: the share the H100 reached on its nearest measured
  // network, ResNet-50, at the same precision.
  TrainingConfig r18{.network = model::resnet(18), .gpus = 1, .batch_per_gpu = 64, .precision = Precision::fp16};
  const IterationResult nearest = simulate_iteration(t, twice, r18);
  REQUIRE(nearest.compute_estimated);
  // At that share on a roofline twice as fast: half the H100's (itself at ResNet-50's share).
  REQUIRE_THAT(growth(twice, r18), WithinRel(growth(h100, r18) / 2, 1e-9));
  // Its fixed cost is ResNet-50's in proportion to the layers, whose launches it is.
  const model::Network r50 = model::resnet(50);
  REQUIRE_THAT(nearest.step_overhead_s,
               WithinRel(simulate_iteration(t, h100, TrainingConfig{.network = r50, .gpus = 1, .batch_per_gpu = 64})
                                 .step_overhead_s *
                             static_cast<double>(r18.network.layers.size()) / r50.layers.size(),
                         1e-12));
  REQUIRE_THAT(nearest.compute_basis, HasText("resnet50"));
  REQUIRE_THAT(nearest.compute_basis, HasText("no measurement of this device"));
}

TEST_CASE("a device borrowing a share takes bf16 at the fp16 share where both run at one peak", "[sim][profile]") {
  // The A100 measured fp16 (DeepLearningExamples' AMP run), not bf16, and its two 16-bit peaks
  // are one (312 TFLOPS). A device borrowing the A100's shares, with one 16-bit peak of its own,
  // runs bf16 as it runs fp16: at the A100's fp16 share of the same roofline, so the same step.
  // Before, fp16 took that share and bf16 half of peak, and the planner ranked bf16 14% faster.
  test::TempDir dir("profiles");
  const json a100 = read_json(shipped("a100.json"));
  REQUIRE(a100["peak_TFLOPS"]["fp16"] == a100["peak_TFLOPS"]["bf16"]);
  for (const auto& m : a100["measured"]) REQUIRE(m["precision"] != "bf16");
  shipped_and_copy(dir, "a100", "A2",
                   [](json& p) { p["peak_TFLOPS"] = {{"fp32", 183}, {"fp16", 362}, {"bf16", 362}}; });
  const DeviceProfile a2 = find_device_profile(dir.path.string(), "A2");
  const topo::Topology t = topo::load_any("dgx-a100:1");
  auto run = [&](Precision prec) {
    return simulate_iteration(t, a2, TrainingConfig{.network = model::resnet(50), .gpus = 1, .batch_per_gpu = 128,
                                                    .precision = prec});
  };
  const IterationResult fp16 = run(Precision::fp16), bf16 = run(Precision::bf16);
  REQUIRE(bf16.compute_estimated);
  REQUIRE_THAT(bf16.compute_s, WithinRel(fp16.compute_s, 1e-9));
  REQUIRE_THAT(bf16.compute_basis, HasText("fp16"));
  REQUIRE_THAT(bf16.compute_basis, HasText(a100["device"].get<std::string>()));
}

TEST_CASE("a profile that borrows from nothing usable is an error naming its field", "[sim][profile]") {
  const auto fails = [](const std::string& path, const std::string& says) {
    try {
      load_device_profile(path);
      FAIL("loaded " << path);
    } catch (const topo::InputError& e) {
      const std::string what = e.what();
      CAPTURE(what);
      REQUIRE(what.find(path) != std::string::npos);
      REQUIRE(what.find("/efficiency_of") != std::string::npos);
      REQUIRE(what.find(says) != std::string::npos);
    }
  };
  {
    test::TempDir dir("profiles");
    h100_and_copy(dir, [](json& p) { p["efficiency_of"] = "missing.json"; });
    fails(dir / "h2.json", "missing.json");
  }
  {
    test::TempDir dir("profiles");
    h100_and_copy(dir, [](json& p) { p["efficiency_of"] = "../h100.json"; });
    fails(dir / "h2.json", "same directory");
  }
  {
    test::TempDir dir("profiles");
    h100_and_copy(dir, [](json&) {});
    json third = read_json(dir / "h2.json");
    third["match"] = {"H3"};
    third["efficiency_of"] = "h2.json";
    write_json(dir / "h3.json", third);
    fails(dir / "h3.json", "borrows from h100.json");
  }
  {
    // A file that names itself, or two that name each other: an error, not an endless recursion.
    test::TempDir dir("profiles");
    h100_and_copy(dir, [](json& p) { p["efficiency_of"] = "h2.json"; });
    fails(dir / "h2.json", "borrows from h2.json");
    json other = read_json(dir / "h2.json");
    other["efficiency_of"] = "h3.json";
    write_json(dir / "h2.json", other);
    other["efficiency_of"] = "h2.json";
    write_json(dir / "h3.json", other);
    fails(dir / "h2.json", "borrows from h2.json");
  }
  {
    test::TempDir dir("profiles");
    h100_and_copy(dir, [](json&) {});
    json bare = read_json(dir / "h100.json");
    bare["measured"] = json::array();
    write_json(dir / "h100.json", bare);
    fails(dir / "h2.json", "has none");
  }
}

TEST_CASE("a GPU's memory comes from the topology, its measurements from the profile", "[sim][profile]") {
  // DGX A100 40GB: the A100 profile's measurements, the topology's 40 GB.
  const topo::Topology a100 = topo::load_any("dgx-a100");
  const topo::Node& gpu = a100.graph[topo::gpus(a100).front()];
  REQUIRE(gpu.memory_GB == 40);
  const DeviceProfile from_file = find_device_profile(default_profiles_dir(), gpu.model);
  const DeviceProfile p = device_profile_for(default_profiles_dir(), gpu);
  REQUIRE(p.memory_GB == 40);
  REQUIRE(p.memory_of == gpu.model);
  REQUIRE(p.device == from_file.device);  // the measurements' device, which plans name
  REQUIRE(p.measured.size() == from_file.measured.size());
  REQUIRE(p.peak_TFLOPS_fp16 == from_file.peak_TFLOPS_fp16);
  // A batch that does not fit is refused, naming the GPU's memory (here a 1 GB one).
  topo::Node tiny = gpu;
  tiny.memory_GB = 1;
  const DeviceProfile small = device_profile_for(default_profiles_dir(), tiny);
  TrainingConfig cfg;
  cfg.network = model::resnet(50);
  cfg.gpus = 1;
  cfg.batch_per_gpu = 64;
  REQUIRE(memory_needed_GB(cfg.network, 64, Precision::fp32) > 1);
  try {
    simulate_iteration(topo::load_any("dgx-a100"), small, cfg);
    FAIL("accepted");
  } catch (const topo::InputError& e) {
    REQUIRE_THAT(e.expected, HasText("the 1 GB of a"));
  }
}

TEST_CASE("a network nobody measured runs at the share of peak the device reached on the nearest one",
          "[sim][profile]") {
  // The H100 profile measures only ResNet-50 (fp32, fp16, bf16). ResNet-101 at ResNet-50's share of the
  // roofline costs about its FLOPs more: torchvision's 7.80 against 4.09 GMAC per image (its model
  // docs), less where memory bandwidth, not FLOPs, bounds a layer. Before, an unmeasured network
  // ran at half of peak, so ResNet-101 came out faster than the measured ResNet-50.
  const topo::Topology t = topo::load_any("dgx-h100");
  const DeviceProfile p = device_profile_for(default_profiles_dir(), t.graph[topo::gpus(t).front()]);
  auto step = [&](const char* network) {
    TrainingConfig cfg;
    cfg.network = model::network_by_name(network);
    cfg.gpus = 1;
    cfg.batch_per_gpu = 256;
    cfg.precision = Precision::bf16;
    return simulate_iteration(t, p, cfg);
  };
  const IterationResult r50 = step("resnet50"), r101 = step("resnet101"), r152 = step("resnet152");
  REQUIRE_FALSE(r50.compute_estimated);
  REQUIRE(r101.compute_estimated);
  REQUIRE_THAT(r101.compute_s / r50.compute_s, WithinRel(7.80 / 4.09, 0.10));
  REQUIRE(r152.compute_s > r101.compute_s);
  REQUIRE_THAT(r101.compute_basis, HasText("resnet50"));
}

TEST_CASE("a share borrowed from another network keeps the GPU count its run waited on", "[sim][profile]") {
  // The P100 profile's ResNet-50 was measured on 8 GPUs (Goyal et al.'s server): that throughput
  // already waited for the slowest of 8, so 8 GPUs with step-time jitter take no longer than
  // without, for ResNet-50 and for ResNet-101 run at its share.
  const topo::Topology t = topo::load_any("bigbasin");
  const DeviceProfile p = device_profile_for(default_profiles_dir(), t.graph[topo::gpus(t).front()]);
  for (const char* network : {"resnet50", "resnet101"}) {
    CAPTURE(network);
    TrainingConfig cfg;
    cfg.network = model::network_by_name(network);
    cfg.gpus = 8;
    cfg.batch_per_gpu = 32;
    const double steady = simulate_iteration(t, p, cfg).compute_s;
    cfg.compute_jitter_cv = 0.05;
    REQUIRE_THAT(simulate_iteration(t, p, cfg).compute_s, WithinRel(steady, 1e-12));
  }
}

TEST_CASE("bf16 is refused where the GPU has none, and estimated from fp16 at the same peak",
          "[sim][profile]") {
  TrainingConfig cfg{.network = model::resnet(50), .gpus = 1, .batch_per_gpu = 256, .precision = Precision::bf16};
  cfg.decode_images_per_s_per_core = 1e9;  // compute alone
  // P100 and V100 have no bf16 arithmetic; their datasheets, and so their profiles, state none.
  for (const char* cluster : {"bigbasin", "dgx1"}) {
    CAPTURE(cluster);
    const topo::Topology t = topo::load_any(cluster);
    const DeviceProfile p = device_profile_for(default_profiles_dir(), t.graph[topo::gpus(t).front()]);
    REQUIRE(p.peak_TFLOPS_bf16 == 0);
    cfg.batch_per_gpu = 32;
    try {
      simulate_iteration(t, p, cfg);
      FAIL("accepted bf16");
    } catch (const topo::InputError& e) {
      REQUIRE(e.origin == "--precision");
      REQUIRE_THAT(e.expected, HasText("fp32 or fp16 on a"));
      REQUIRE_THAT(e.expected, HasText("got bf16"));
    }
    REQUIRE_THROWS_AS(compute_evidence(cfg.network, Precision::bf16, p), topo::InputError);
  }
  // A100: bf16 and fp16 share the 312 TFLOPS tensor-core peak; only fp16 was measured, 2,470
  // images/s at 256 (NVIDIA's DeepLearningExamples table). bf16 runs at that share: the same rate.
  const topo::Topology a100 = topo::load_any("dgx-a100");
  const DeviceProfile p = device_profile_for(default_profiles_dir(), a100.graph[topo::gpus(a100).front()]);
  REQUIRE(p.peak_TFLOPS_bf16 == p.peak_TFLOPS_fp16);
  cfg.batch_per_gpu = 256;
  const IterationResult bf16 = simulate_iteration(a100, p, cfg);
  REQUIRE(bf16.compute_estimated);
  REQUIRE_FALSE(bf16.compute_peak_only);
  REQUIRE_THAT(bf16.compute_basis, HasText("fp16 reached"));
  REQUIRE_THAT(bf16.images_per_s, WithinRel(2470, 1e-6));
  REQUIRE(compute_evidence(cfg.network, Precision::bf16, p).kind == ComputeEvidence::Kind::from_measurement);
  REQUIRE(compute_evidence(cfg.network, Precision::fp16, p).kind == ComputeEvidence::Kind::measured);
}

TEST_CASE("a step's fixed cost, fitted on two batches, reproduces both and slows small batches",
          "[sim][profile]") {
  // PyTorch's ResNet-50 fp32 step on one H100 (DEVICE.md): 1,771 images/s at 32, 2,520 at 256.
  const topo::Topology t = topo::load_any("dgx-h100:1");
  const DeviceProfile h100 = device_profile_for(default_profiles_dir(), t.graph[topo::gpus(t).front()]);
  TrainingConfig cfg{.network = model::resnet(50), .gpus = 1, .precision = Precision::fp32};
  cfg.decode_images_per_s_per_core = 1e9;
  std::vector<double> rates;
  for (int batch : {1, 8, 32, 64, 128, 256}) {
    cfg.batch_per_gpu = batch;
    rates.push_back(simulate_iteration(t, h100, cfg).images_per_s);
  }
  REQUIRE_THAT(rates[2], WithinRel(1771, 1e-6));
  REQUIRE_THAT(rates[5], WithinRel(2520, 1e-6));
  // Affine in the batch through both points: t(b) = t32 + (b - 32)(t256 - t32)/224 wherever the
  // roofline stays compute-bound; t(128) so, within 1%.
  const double t32 = 32 / 1771.0, t256 = 256 / 2520.0;
  REQUIRE_THAT(128 / rates[4], WithinRel(t32 + 96 * (t256 - t32) / 224, 1e-2));
  for (size_t i = 1; i < rates.size(); ++i) REQUIRE(rates[i] > rates[i - 1]);
  // The intercept, about 6 ms, is named; batch 1 is then well under a tenth of batch 256's rate.
  cfg.batch_per_gpu = 1;
  const IterationResult one = simulate_iteration(t, h100, cfg);
  REQUIRE_THAT(one.step_overhead_s, WithinAbs(t32 - 32 * (t256 - t32) / 224, 1e-3));
  REQUIRE_THAT(one.compute_basis, HasText("fitted on resnet50 fp32 at batches 32 and 256"));
  REQUIRE(rates[0] < 0.1 * rates[5]);
  // A profile with one batch per measurement has no fixed cost: the P100's.
  const topo::Topology bb = topo::load_any("bigbasin");
  cfg.batch_per_gpu = 32;
  REQUIRE(simulate_iteration(bb, device_profile_for(default_profiles_dir(), bb.graph[topo::gpus(bb).front()]), cfg)
              .step_overhead_s == 0);
}

TEST_CASE("two batches that no fixed cost reconciles with the other rows are a profile error", "[sim][profile]") {
  // fp32 at 32 images measured at 700 images/s (45.7 ms) beside 2,520 at 256 (101.6 ms): the
  // roofline takes most of the 56 ms between them at nearly full peak, so most of the 32-image
  // step is fixed cost, more than the bf16 step at 256 the same file measured (64.4 ms) leaves
  // room for beside its own roofline.
  test::TempDir dir("profiles-fit");
  json h100 = read_json(shipped("h100.json"));
  auto small_batch_at = [&](double images_per_s) {
    for (auto& m : h100["measured"])
      if (m["batch_per_gpu"] == 32) m["images_per_s"] = images_per_s;
    write_json(dir / "h100.json", h100);
    return load_device_profile(dir / "h100.json");
  };
  const topo::Topology t = topo::load_any("dgx-h100:1");
  TrainingConfig cfg{.network = model::resnet(50), .gpus = 1, .batch_per_gpu = 256, .precision = Precision::bf16};
  try {
    simulate_iteration(t, small_batch_at(700), cfg);
    FAIL("accepted");
  } catch (const topo::InputError& e) {
    REQUIRE(e.origin == dir / "h100.json");
    REQUIRE(e.path == "/measured");
    REQUIRE_THAT(e.expected, HasText("bf16 at batch 256"));
  }
  // At 330 images/s the 32-image step (97.0 ms) is within 4.6 ms of the 256-image one: less than
  // the roofline grows even at full peak, so no fixed cost fits. None is taken, and the largest
  // batch calibrates as it would alone (2,520 images/s at 256).
  cfg.precision = Precision::fp32;
  const IterationResult r = simulate_iteration(t, small_batch_at(330), cfg);
  REQUIRE(r.step_overhead_s == 0);
  REQUIRE_THAT(r.compute_s, WithinRel(256.0 / 2520, 1e-6));
}

TEST_CASE("a network measured at two batches fits its own fixed cost beside another network's", "[sim][profile]") {
  // The H100 profile with ResNet-18 fp32 measured at 64 and 256 images beside PyTorch's ResNet-50
  // pair, as basin profile writes one: each network's prediction reproduces both of its own
  // measurements, which only its own fixed cost can (ResNet-50's, scaled by layers, would put
  // ResNet-18's 64-image step elsewhere).
  test::TempDir dir("profiles-own-fit");
  json h100 = read_json(shipped("h100.json"));
  h100["measured"].push_back(
      {{"model", "resnet18"}, {"precision", "fp32"}, {"batch_per_gpu", 64}, {"images_per_s", 5000}, {"source", "basin"}});
  h100["measured"].push_back(
      {{"model", "resnet18"}, {"precision", "fp32"}, {"batch_per_gpu", 256}, {"images_per_s", 8000}, {"source", "basin"}});
  write_json(dir / "h100.json", h100);
  const DeviceProfile p = load_device_profile(dir / "h100.json");
  const topo::Topology t = topo::load_any("dgx-h100:1");
  auto rate = [&](const char* network, int batch) {
    TrainingConfig cfg{.network = model::network_by_name(network), .gpus = 1, .batch_per_gpu = batch,
                       .precision = Precision::fp32};
    cfg.decode_images_per_s_per_core = 1e9;
    return simulate_iteration(t, p, cfg);
  };
  REQUIRE_THAT(rate("resnet18", 64).images_per_s, WithinRel(5000, 1e-6));
  REQUIRE_THAT(rate("resnet18", 256).images_per_s, WithinRel(8000, 1e-6));
  // t(b) = c + b (t256 - t64) / 192 through both points: c = 12.8 ms - 64 x 0.1 ms.
  REQUIRE_THAT(rate("resnet18", 64).step_overhead_s, WithinAbs(64 / 5000.0 - 64 * (256 / 8000.0 - 64 / 5000.0) / 192, 1e-4));
  REQUIRE_THAT(rate("resnet18", 64).compute_basis, HasText("fitted on resnet18 fp32 at batches 64 and 256 (basin, basin)"));
  REQUIRE_THAT(rate("resnet50", 32).images_per_s, WithinRel(1771, 1e-6));
  REQUIRE_THAT(rate("resnet50", 256).images_per_s, WithinRel(2520, 1e-6));
}

TEST_CASE("a fixed cost fitted on one source's rows is not put on another's", "[sim][profile]") {
  // A slow stand-in (a CPU measured by basin profile) beside NVIDIA's one-batch V100 rows: basin's
  // ResNet-18 pair fits a fixed cost of a step far above what NVIDIA's ResNet-50 fp16 step at 256
  // (213 ms) holds. Taken for NVIDIA's rows it left them no time and refused the profile; those
  // rows have no pair of their own, so no fixed cost, and reproduce their measurement.
  test::TempDir dir("profiles-source-fit");
  json v100 = read_json(shipped("v100.json"));
  v100["measured"].push_back(
      {{"model", "resnet18"}, {"precision", "fp32"}, {"batch_per_gpu", 2}, {"images_per_s", 8.65}, {"source", "basin"}});
  v100["measured"].push_back(
      {{"model", "resnet18"}, {"precision", "fp32"}, {"batch_per_gpu", 4}, {"images_per_s", 16.35}, {"source", "basin"}});
  write_json(dir / "v100.json", v100);
  const DeviceProfile p = load_device_profile(dir / "v100.json");
  const topo::Topology t = topo::load_any("dgx1:1");
  double fp16_rate = 0;
  for (const auto& m : v100["measured"])
    if (m["model"] == "resnet50" && m["precision"] == "fp16") fp16_rate = m["images_per_s"];
  REQUIRE(fp16_rate > 0);
  TrainingConfig cfg{.network = model::resnet(50), .gpus = 1, .batch_per_gpu = 256, .precision = Precision::fp16};
  cfg.decode_images_per_s_per_core = 1e9;
  const IterationResult r50 = simulate_iteration(t, p, cfg);
  REQUIRE(r50.step_overhead_s == 0);
  REQUIRE_THAT(r50.images_per_s, WithinRel(fp16_rate, 1e-6));
  // ResNet-18 in fp16, nobody's measurement, is an estimate; it no longer refuses the profile.
  cfg.network = model::resnet(18);
  REQUIRE(simulate_iteration(t, p, cfg).compute_estimated);
  // A ResNet-101 in fp32 is estimated from NVIDIA's ResNet-50 row, the nearest network: its fixed
  // cost is NVIDIA's (none), not basin's stand-in's, so it runs as with the shipped profile.
  cfg.network = model::resnet(101);
  cfg.precision = Precision::fp32;
  cfg.batch_per_gpu = 64;
  const IterationResult mixed = simulate_iteration(t, p, cfg);
  REQUIRE(mixed.step_overhead_s == 0);
  REQUIRE_THAT(mixed.images_per_s,
               WithinRel(simulate_iteration(t, load_device_profile(shipped("v100.json")), cfg).images_per_s, 1e-9));
}

TEST_CASE("a profile names a GPU by a word of its model in any case; a PCIe card or unmeasured part is said",
          "[sim][profile]") {
  // "A100" is not the workstation "NVIDIA A1000"; a letter after it is a variant of the part.
  for (const char* other : {"NVIDIA A1000", "NVIDIA RTX A1000 6GB", "NVIDIA A10"})
    REQUIRE_THROWS_AS(find_device_profile(default_profiles_dir(), other), topo::InputError);
  REQUIRE(find_device_profile(default_profiles_dir(), "Tesla V100S-PCIE-32GB").device == "Tesla V100-SXM2-32GB");
  REQUIRE(find_device_profile(default_profiles_dir(), "NVIDIA A100X").device == "NVIDIA A100-SXM4-80GB");
  REQUIRE(find_device_profile(default_profiles_dir(), "NVIDIA GH200 480GB").device == "NVIDIA H100 80GB HBM3");
  REQUIRE(find_device_profile(default_profiles_dir(), "NVIDIA A100-SXM4-40GB").device == "NVIDIA A100-SXM4-80GB");
  REQUIRE(find_device_profile(default_profiles_dir(), "NVIDIA GB200").device == "NVIDIA GB200");
  // An A100 PCIe card runs on the A100 SXM4's measurements, which its basis says.
  topo::Node card;
  card.id = "gpu0";
  card.model = "NVIDIA A100-PCIE-40GB";
  const DeviceProfile p = device_profile_for(default_profiles_dir(), card);
  const topo::Topology t = topo::load_any("dgx-a100:1");
  TrainingConfig cfg{.network = model::resnet(50), .gpus = 1, .batch_per_gpu = 256, .precision = Precision::fp16};
  REQUIRE_THAT(simulate_iteration(t, p, cfg).compute_basis, HasText("a PCIe card runs at lower power"));
  card.model = "NVIDIA A100-SXM4-40GB";
  REQUIRE_THAT(simulate_iteration(t, device_profile_for(default_profiles_dir(), card), cfg).compute_basis,
               !HasText("PCIe") && !HasText("did not measure"));
  // In any letter case, as a user may type the model.
  REQUIRE(find_device_profile(default_profiles_dir(), "a100-sxm4-40gb").device == "NVIDIA A100-SXM4-80GB");
  REQUIRE_THROWS_AS(find_device_profile(default_profiles_dir(), "nvidia a1000"), topo::InputError);
  // A part the profile lists but did not measure (an H200 by the H100's) is said too.
  card.model = "NVIDIA H200";
  const topo::Topology h100 = topo::load_any("dgx-h100:1");
  REQUIRE_THAT(simulate_iteration(h100, device_profile_for(default_profiles_dir(), card), cfg).compute_basis,
               HasText("by the NVIDIA H100 80GB HBM3's profile (NVIDIA H200 matched its name H200"));
}

TEST_CASE("the device-profile format's example loads and borrows the A100's shares", "[sim][profile]") {
  // docs/device-profile-format.md's example, as a user would save it beside a copy of a100.json.
  std::ifstream doc(std::string(BASIN_FIXTURES) + "/../../../docs/device-profile-format.md");
  REQUIRE(doc);
  const std::string text((std::istreambuf_iterator<char>(doc)), std::istreambuf_iterator<char>());
  const size_t start = text.find("```json\n"), end = text.find("```", start + 7);
  REQUIRE(start != std::string::npos);
  REQUIRE(end != std::string::npos);
  test::TempDir dir("profiles");
  write_json(dir / "a100.json", read_json(shipped("a100.json")));
  write_json(dir / "l40s.json", json::parse(text.substr(start + 8, end - start - 8)));
  const DeviceProfile l40s = load_device_profile(dir / "l40s.json");
  REQUIRE(l40s.efficiency_of);
  const topo::Topology t = topo::load_any("pcie8:1");
  const IterationResult r = simulate_iteration(
      t, l40s, TrainingConfig{.network = model::resnet(50), .gpus = 1, .batch_per_gpu = 64, .precision = Precision::bf16});
  REQUIRE(r.compute_estimated);
  REQUIRE_THAT(r.compute_basis, HasText(l40s.efficiency_of->device));
}
