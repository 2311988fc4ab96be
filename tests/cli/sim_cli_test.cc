// `basin sim` end to end: its JSON fields, its agreement with `basin plan`, the wire precision,
// host staging and what its text says about the allreduce's parts and what runs it.
#include "../catch.h"
#include "../run_basin.h"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <string>

namespace fs = std::filesystem;

using basin::test::Result;
using basin::test::run;

TEST_CASE("basin sim prints the documented JSON fields", "[cli]") {
  Result r = run("sim --cluster bigbasin:2 --json");
  REQUIRE(r.exit_code == 0);
  for (const char* key :
       {"\"iteration_s\"", "\"epoch_s\"", "\"images_per_s\"", "\"scaling_efficiency_vs_one_server\"",
        "\"exposed_comm_s\"", "\"data_stall_s\"", "\"memory_GB\"", "\"device_memory_GB\""}) {
    CAPTURE(key);
    REQUIRE(r.out.find(key) != std::string::npos);
  }
}

TEST_CASE("basin sim and basin plan agree on scaling against one GPU", "[cli]") {
  // One GB200 NVL72 rack is one server: against one server a run on it is 100% by construction,
  // however long its ring allreduce; against one GPU it is what basin plan reports.
  const std::string out = (fs::temp_directory_path() / "basin-cli-scaling-plan.json").string();
  const Result sim = run("sim --cluster gb200-nvl72 --algorithm ring --precision fp32 --batch-per-gpu 32 "
                         "--bucket-mb 0 --json");
  REQUIRE(sim.exit_code == 0);
  const auto s = nlohmann::json::parse(sim.out);
  REQUIRE(s["scaling_efficiency_vs_one_server"].get<double>() == 1.0);
  REQUIRE_FALSE(s.contains("scaling_efficiency"));  // the plan's name, which means against one GPU
  const Result plan = run("plan --cluster gb200-nvl72:1 --gpus 72 --algorithms ring --precisions fp32 --batches 32 "
                          "--buckets-mb 0 --out " + out);
  REQUIRE(plan.exit_code == 0);
  std::ifstream in(out);
  const auto p = nlohmann::json::parse(in);
  fs::remove(out);
  const double vs_one_gpu = s["scaling_efficiency_vs_one_gpu"].get<double>();
  REQUIRE(vs_one_gpu < 0.5);  // the ring's exposed allreduce dominates the step
  REQUIRE_THAT(p["prediction"]["scaling_efficiency"].get<double>(), WithinRel(vs_one_gpu, 1e-9));
}

TEST_CASE("basin sim --wire sends the gradients in that precision", "[cli]") {
  // PyTorch AMP: fp16 compute, fp32 gradients on the wire (ResNet-50: 25,557,032 values).
  auto gradient_MB = [](const std::string& wire) {
    Result r = run("sim --cluster dgx1 --precision fp16 --bucket-mb 25 --json" + wire);
    REQUIRE(r.exit_code == 0);
    return nlohmann::json::parse(r.out).at("gradient_MB").get<double>();
  };
  REQUIRE_THAT(gradient_MB(" --wire fp32"), WithinRel(25557032 * 4 / 1e6, 1e-9));
  REQUIRE_THAT(gradient_MB(""), WithinRel(25557032 * 2 / 1e6, 1e-9));
}

// Expected relations come from the staging model's definition (sim.h, HostStaging): staging adds
// PCIe copies and CPU work to every allreduce between servers and removes none, and Big Basin's
// NICs are Ethernet, so "auto" stages there.
TEST_CASE("basin sim --host-staging off is no slower than on and has no host terms", "[cli]") {
  auto sim = [](const std::string& mode) {
    Result r = run("sim --cluster bigbasin:32 --gpus 256 --json --host-staging " + mode);
    CAPTURE(mode, r.out);
    REQUIRE(r.exit_code == 0);
    return nlohmann::json::parse(r.out);
  };
  const nlohmann::json on = sim("on"), off = sim("off"), automatic = sim("auto");
  REQUIRE(off["iteration_s"].get<double>() <= on["iteration_s"].get<double>());
  REQUIRE(on["staged_through_host"] == true);
  REQUIRE(off["staged_through_host"] == false);
  REQUIRE(automatic["staged_through_host"] == true);
  REQUIRE(automatic["iteration_s"] == on["iteration_s"]);
  for (const char* host_term : {"pcie host staging", "host reduction"}) {
    CAPTURE(host_term);
    REQUIRE(on["comm_terms"].contains(host_term));
    REQUIRE(on["comm_terms"][host_term]["total_s"].get<double>() > 0);
    // The iteration cannot get longer by removing work.
    REQUIRE(on["comm_terms"][host_term]["contribution_s"].get<double>() >= 0);
    if (off["comm_terms"].contains(host_term))
      REQUIRE(off["comm_terms"][host_term]["total_s"].get<double>() == 0);
  }
  // Both runs move the same gradients between servers, staged or not.
  REQUIRE(on["comm_terms"]["network"]["total_s"].get<double>() > 0);
  REQUIRE(off["comm_terms"]["network"]["total_s"].get<double>() > 0);
}

TEST_CASE("basin sim takes plan's dataset size and epochs", "[cli]") {
  // 8 GPUs x 32 = 256 images a step: ImageNet's 1,281,167 take 5,005 steps (the last partly
  // filled), 100,000 take 391; the time to train is the epochs' sum.
  const auto full = nlohmann::json::parse(run("sim --cluster dgx1:1 --json").out);
  Result r = run("sim --cluster dgx1:1 --json --dataset-images 100000 --epochs 10");
  REQUIRE(r.exit_code == 0);
  const auto small = nlohmann::json::parse(r.out);
  REQUIRE_THAT(small["epoch_s"].get<double>(), WithinRel(full["epoch_s"].get<double>() * 391 / 5005, 1e-9));
  REQUIRE(small["epochs"] == 10);
  REQUIRE(small["iterations_per_epoch"] == 391);
  REQUIRE(full["iterations_per_epoch"] == 5005);
  REQUIRE(full["device"] == "Tesla V100-SXM2-16GB");  // the DGX-1's own part
  REQUIRE_THAT(small["time_to_train_h"].get<double>(), WithinRel(10 * small["epoch_s"].get<double>() / 3600, 1e-12));
  REQUIRE_THAT(run("sim --cluster dgx1:1 --epochs 10").out, HasText("10 epochs: "));
  REQUIRE(run("sim --cluster dgx1:1 --epochs 0").exit_code == 2);
  REQUIRE(run("sim --cluster dgx1:1 --dataset-images 0").exit_code == 2);
}

TEST_CASE("basin sim shows the allreduce terms in its text output", "[cli]") {
  Result r = run("sim --cluster bigbasin:32 --gpus 256 --host-staging on");
  CAPTURE(r.out);
  REQUIRE(r.exit_code == 0);
  REQUIRE(r.out.find("host staging: on") != std::string::npos);
  REQUIRE(r.out.find("pcie host staging") != std::string::npos);
  REQUIRE(r.out.find("host reduction") != std::string::npos);
}

TEST_CASE("basin sim says the switch's sums stage nothing, even over Ethernet NICs", "[cli]") {
  // Two DGX H100s with Ethernet NICs: Gloo's ring stages through host memory under "auto", the
  // NVSwitch's NVLS-tree (NCCL's, GPU memory to the NICs) does not, and the output says which.
  const fs::path dir = fs::temp_directory_path() / "basin-cli-ethernet-h100";
  fs::create_directories(dir);
  const std::string file = (dir / "h100-ethernet.json").string();
  REQUIRE(run("topo --cluster dgx-h100:2 --dump " + file).exit_code == 0);
  nlohmann::json doc = nlohmann::json::parse(std::ifstream(file));
  for (auto& n : doc["nodes"])
    if (n["kind"] == "nic") n["port_kind"] = "ethernet";
  for (auto& l : doc["links"])  // and the cables of the fabric with them
    if (l["kind"] == "infiniband") l["kind"] = "ethernet";
  std::ofstream(file) << doc.dump();
  const Result ring = run("sim --cluster " + file + " --algorithm ring");
  CAPTURE(ring.out);
  REQUIRE(ring.out.find("host staging: auto (copies through host memory") != std::string::npos);
  // Gloo's ring_chunked runs that ring, staged as priced (docs/plan-format.md, library gloo).
  REQUIRE(ring.out.find("runs as: gloo") != std::string::npos);
  // On the InfiniBand original the default (Goyal et al.'s three phases) moves GPU memory
  // between servers directly, which neither NCCL nor Gloo does; NCCL's own runs as priced.
  const Result ib = run("sim --cluster dgx-h100:2");
  CAPTURE(ib.out);
  REQUIRE(ib.out.find("runs as: simulated-only") != std::string::npos);
  REQUIRE(run("sim --cluster dgx-h100:2 --algorithm nccl").out.find("runs as: nccl (") != std::string::npos);
  REQUIRE(run("sim --cluster bigbasin:2").out.find("runs as: nccl+gloo") != std::string::npos);
  // Priced as if the NICs read GPU memory, the three phases are basin's own again.
  REQUIRE(run("sim --cluster bigbasin:2 --host-staging off").out.find("runs as: simulated-only") != std::string::npos);
  const Result tree = run("sim --cluster " + file + " --algorithm nvls-tree");
  CAPTURE(tree.out);
  REQUIRE(tree.exit_code == 0);
  REQUIRE(tree.out.find("host staging: auto (none)") != std::string::npos);
  fs::remove_all(dir);
}

TEST_CASE("basin sim --host-staging rejects other values with exit 2", "[cli]") {
  Result r = run("sim --cluster bigbasin:2 --host-staging sometimes");
  CAPTURE(r.out);
  REQUIRE(r.exit_code == 2);
  REQUIRE(r.out.find("--host-staging") != std::string::npos);
  REQUIRE(r.out.find("auto, on or off") != std::string::npos);
  REQUIRE(r.out.find("sometimes") != std::string::npos);
}
