// `basin profile`: basin's own training step measured into a device profile the simulator reads
// back and reproduces, the base profile's other measurements kept, and bad requests refused
// before anything runs, with no file left behind. Measured here on the CPU standing in for the
// H100 (a GPU machine measures the GPU; the same code writes the file).
#include "../run_basin.h"
#include "../temp_dir.h"

#include <basin/training.h>

#include <nlohmann/json.hpp>

#include <chrono>
#include <filesystem>

namespace fs = std::filesystem;
using basin::test::read_file;
using basin::test::run;
using nlohmann::json;

namespace {

std::string h100() { return basin::sim::default_profiles_dir() + "/h100.json"; }

const json* entry(const json& doc, const std::string& model, int batch) {
  for (const json& m : doc["measured"])
    if (m["model"] == model && m["batch_per_gpu"] == batch) return &m;
  return nullptr;
}

}  // namespace

TEST_CASE("basin profile measures a step the simulator then reproduces", "[cli][profile]") {
  basin::test::TempDir dir{"profile"};
  const std::string out = dir / "measured.json";
  const auto t0 = std::chrono::steady_clock::now();
  auto r = run("profile --device cpu --threads 1 --base " + h100() +
               " --model resnet18 --batches 2 --steps 2 --warmup 1 --out " + out);
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  INFO(r.out);
  REQUIRE(r.exit_code == 0);
  REQUIRE_THAT(r.out, HasText("resnet18 fp32 batch 2 ..."));
  const json doc = json::parse(read_file(out));
  const json base = json::parse(read_file(h100()));
  // The measurement, from basin, beside every one the base had; the CPU only stands in, so the
  // device and its peaks stay the H100's.
  REQUIRE(doc["measured"].size() == base["measured"].size() + 1);
  const json* m = entry(doc, "resnet18", 2);
  REQUIRE(m != nullptr);
  REQUIRE((*m)["source"] == "basin");
  REQUIRE((*m)["precision"] == "fp32");
  // Two timed steps of two images cannot have run faster than the whole command took.
  const double images_per_s = (*m)["images_per_s"];
  REQUIRE(images_per_s >= 2 * 2 / wall);
  const double backward_s = (*m)["backward_s"];
  REQUIRE(backward_s > 0);
  REQUIRE(backward_s < 2 / images_per_s);
  REQUIRE(doc["device"] == base["device"]);
  REQUIRE(doc["peak_TFLOPS"] == base["peak_TFLOPS"]);
  REQUIRE_THAT(doc["context"]["sources"]["basin"].get<std::string>(), HasText("stands in for"));

  // The simulator, calibrated by the file, predicts the measured step at the measured batch.
  auto sim = run("sim --profile " + out + " --cluster dgx-h100 --gpus 1 --model resnet18 --batch-per-gpu 2 --json");
  REQUIRE(sim.exit_code == 0);
  const json predicted = json::parse(sim.out);
  REQUIRE_THAT(predicted["images_per_s"].get<double>(), WithinRel(images_per_s, 1e-6));
  REQUIRE_THAT(predicted["compute_basis"].get<std::string>(), HasText("(basin)"));

  // Measured again into the same file: the new figure takes the old one's place (a batch named
  // twice is measured once).
  r = run("profile --device cpu --threads 1 --base " + out +
          " --model resnet18 --batches 2,2 --steps 1 --warmup 0 --out " + out);
  REQUIRE(r.exit_code == 0);
  REQUIRE(json::parse(read_file(out))["measured"].size() == base["measured"].size() + 1);
}

TEST_CASE("basin profile refuses what it cannot measure, leaving no file", "[cli][profile]") {
  basin::test::TempDir dir{"profile-bad"};
  const std::string out = dir / "p.json";
  const std::string cpu = "profile --device cpu --model resnet18 --batches 1 --steps 1 --warmup 0 ";
  struct Case {
    std::string args, names;
  };
  std::ofstream(dir / "broken.json") << "{\"format\": \"basin.device_profile/1\",";
  for (const Case& c : {
           Case{cpu + "--out " + out, "--base"},
           Case{cpu + "--base " + h100() + " --precisions bf16 --out " + out, "--precisions"},
           Case{cpu + "--base " + h100() + " --model resnet7 --out " + out, "--model"},
           Case{cpu + "--base " + dir / "broken.json" + " --out " + out, "broken.json"},
           Case{cpu + "--base " + h100() + " --out " + (dir.path / "no-such-dir" / "p.json").string(), "no-such-dir"},
           Case{"profile --device tpu --out " + out, "--device"},
       }) {
    INFO(c.args);
    auto r = run(c.args);
    INFO(r.out);
    REQUIRE(r.exit_code == 2);
    REQUIRE_THAT(r.out, HasText(c.names));
    REQUIRE_FALSE(fs::exists(out));
  }
}
