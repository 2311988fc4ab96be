// Bad input to topo, sim, select, plan and data as a careless user gives it: files that are
// directories or include themselves, numbers out of range, negative or NaN where a default would
// otherwise be taken silently, misspelt fields in basin's own formats, and output paths that
// cannot be written. Each is exit code 2 with the file or flag, the field and what was expected
// named, and no output file left behind.
#include "../catch.h"
#include "../run_basin.h"
#include "../temp_dir.h"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <string>

namespace fs = std::filesystem;
using basin::test::Result;
using basin::test::read_file;
using basin::test::run;

namespace {

void require_input_error(const Result& r, std::initializer_list<std::string> named) {
  INFO(r.out);
  REQUIRE(r.exit_code == 2);
  for (const auto& text : named) REQUIRE_THAT(r.out, HasText(text));
}

}  // namespace

TEST_CASE("a cluster file that includes itself is an input error and no crash", "[cli][input]") {
  basin::test::TempDir dir{"cli-cycle"};
  std::ofstream(dir / "self.json") << R"({"format": "basin.cluster/1", "count": 2, "server": "self.json"})";
  require_input_error(run("topo --cluster " + (dir / "self.json")), {"self.json", "/server", "include each other"});
  // Two files naming each other.
  std::ofstream(dir / "a.json") << R"({"format": "basin.cluster/1", "count": 1, "server": "b.json"})";
  std::ofstream(dir / "b.json") << R"({"format": "basin.cluster/1", "count": 1, "server": "a.json"})";
  require_input_error(run("sim --cluster " + (dir / "a.json")), {"a.json", "b.json", "/server"});
}

TEST_CASE("a directory given where a file is expected is named as a directory", "[cli][input]") {
  basin::test::TempDir dir{"cli-dir"};
  fs::create_directory(dir / "c.json");
  require_input_error(run("topo --cluster " + (dir / "c.json")), {dir / "c.json", "is a directory"});
  require_input_error(run("sim --cluster bigbasin:2 --profile " + dir.path.string()),
                      {dir.path.string(), "device profile", "is a directory"});
  require_input_error(run("train --data " + (dir / "nowhere") + " --out " + (dir / "run") + " --plan " +
                          (dir / "c.json")),
                      {dir / "c.json", "basin.plan/1", "is a directory"});
  REQUIRE_FALSE(fs::exists(dir / "run"));
}

TEST_CASE("server counts past the limit are refused before anything is allocated", "[cli][input]") {
  basin::test::TempDir dir{"cli-count"};
  std::ofstream(dir / "big.json") << R"({"format": "basin.cluster/1", "count": 10000000000, "server": "dgx1"})";
  require_input_error(run("topo --cluster " + (dir / "big.json")), {"big.json", "/count", "1 to 65536", "10000000000"});
  require_input_error(run("topo --cluster dgx1:2000000000"), {"--cluster", "server count", "65536"});
  // from_chars reads "nan": an oversubscription ratio must still be a number of at least 1.
  require_input_error(run("topo --cluster bigbasin:2,fabric=fat-tree:nan"), {"oversubscription", "nan"});
}

TEST_CASE("basin topo writes no --dump when another flag is bad", "[cli][input]") {
  basin::test::TempDir dir{"cli-dump"};
  const std::string dump = dir / "dump.json";
  require_input_error(run("topo --cluster dgx1 --dump " + dump + " --route gpu0 gpu99"), {"--route", "gpu99"});
  REQUIRE_FALSE(fs::exists(dump));
  require_input_error(run("topo --cluster dgx1 --dump " + dump + " --server 3"), {"--server", "got 3"});
  REQUIRE_FALSE(fs::exists(dump));
}

TEST_CASE("negative or zero or NaN numbers are refused rather than read as a default", "[cli][input]") {
  auto [args, named] = GENERATE(
      std::pair{"sim --cluster bigbasin:2 --gpus -3", "--gpus"},
      std::pair{"sim --cluster bigbasin:2 --bucket-mb -1", "--bucket-mb"},
      std::pair{"sim --cluster bigbasin:2 --bucket-mb nan", "--bucket-mb"},
      std::pair{"sim --cluster bigbasin:2 --overhead-us -100", "--overhead-us"},
      std::pair{"sim --cluster bigbasin:2 --overhead-us 1e300", "--overhead-us"},
      std::pair{"sim --cluster bigbasin:2 --precision bf16", "--precision"},
      std::pair{"sim --cluster bigbasin:2 --decode-rate 0", "--decode-rate"},
      std::pair{"sim --cluster bigbasin:2 --decode-rate nan", "--decode-rate"},
      std::pair{"sim --cluster bigbasin:2 --cores-per-gpu -2", "--cores-per-gpu"},
      std::pair{"select --cluster bigbasin:2 --ranks -1", "--ranks"},
      std::pair{"select --cluster bigbasin:2 --per-server -1", "--per-server"},
      std::pair{"select --cluster bigbasin:2 --overhead-us nan", "--overhead-us"},
      std::pair{"plan --cluster bigbasin:2 --out '' --batches 0", "--batches"},
      std::pair{"plan --cluster bigbasin:2 --out '' --batches -4", "--batches"},
      std::pair{"plan --cluster bigbasin:2 --out '' --buckets-mb -1", "--buckets-mb"},
      std::pair{"plan --cluster bigbasin:2 --out '' --price-per-gpu-hour -3", "--price-per-gpu-hour"},
      std::pair{"plan --cluster bigbasin:2 --out '' --deadline-h -1", "--deadline-h"},
      std::pair{"plan --cluster bigbasin:2 --out '' --budget nan", "--budget"},
      std::pair{"plan --cluster bigbasin:2 --out '' --max-global-batch -5", "--max-global-batch"},
      std::pair{"plan --cluster bigbasin:2 --out '' --tolerated-loss nan", "--tolerated-loss"},
      std::pair{"plan --cluster bigbasin:2 --out '' --compare-nic-GBps -5", "--compare-nic-GBps"},
      std::pair{"plan --cluster bigbasin:2 --out '' --top -1", "--top"},
      std::pair{"data load --root /nonexistent --size 100000", "--size"});
  CAPTURE(args);
  require_input_error(run(args), {named, "expected"});
}

TEST_CASE("basin plan writes no plan file when --compare or --plot is bad", "[cli][input]") {
  basin::test::TempDir dir{"cli-plan-out"};
  const std::string plan = dir / "plan.json";
  const std::string base = "plan --cluster bigbasin:2 --precisions fp32 --out " + plan;
  // The error names the flag the user typed, not --cluster.
  require_input_error(run(base + " --compare nosuch:2"), {"--compare", "nosuch"});
  REQUIRE_FALSE(fs::exists(plan));
  require_input_error(run(base + " --plot " + (dir / "no/such/dir/p.svg")), {dir / "no/such/dir/p.svg"});
  REQUIRE_FALSE(fs::exists(plan));
}

TEST_CASE("basin select writes neither rule file when one path is bad", "[cli][input]") {
  basin::test::TempDir dir{"cli-select-out"};
  const std::string json = dir / "s.json";
  require_input_error(run("select --cluster bigbasin:2 --selection " + json + " --nccl-conf " +
                          (dir / "missing/s.conf")),
                      {dir / "missing/s.conf", "writable"});
  REQUIRE_FALSE(fs::exists(json));
}

TEST_CASE("a device profile's misspelt or mistyped field is named", "[cli][input]") {
  basin::test::TempDir dir{"cli-profile"};
  const auto good = nlohmann::json::parse(read_file(std::string(BASIN_FIXTURES) + "/../../../profiles/devices/p100.json"));
  auto run_with = [&](const nlohmann::json& profile) {
    std::ofstream(dir / "p.json") << profile.dump();
    return run("sim --cluster bigbasin:2 --profile " + (dir / "p.json"));
  };
  REQUIRE(run_with(good).exit_code == 0);
  nlohmann::json typo = good;
  typo["peak_TFLOPS"]["bf61"] = 40;
  require_input_error(run_with(typo), {"p.json", "/peak_TFLOPS/bf61", "known fields"});
  typo = good;
  typo["measured"][0]["backward_sec"] = 0.1;
  require_input_error(run_with(typo), {"p.json", "/measured/0/backward_sec"});
  nlohmann::json wrong = good;
  wrong["match"] = {1};
  require_input_error(run_with(wrong), {"p.json", "/match/0", "string"});
  wrong = good;
  wrong["measured"] = nlohmann::json::object();
  require_input_error(run_with(wrong), {"p.json", "/measured", "array"});
  wrong = good;
  wrong["measured"][0]["batch_per_gpu"] = 32.5;
  require_input_error(run_with(wrong), {"p.json", "/measured/0/batch_per_gpu", "32.5"});
  wrong = good;
  wrong["measured"][0]["precision"] = "fp8";
  require_input_error(run_with(wrong), {"p.json", "/measured/0/precision", "'fp8'"});
}

TEST_CASE("a negative seed is refused rather than wrapped to 2^64 - 1", "[cli][input]") {
  basin::test::TempDir dir{"cli-seed"};
  const std::string out = dir / "synth";
  require_input_error(run("data synth --out " + out + " --seed -1 --classes 1 --train-per-class 1 "
                          "--val-per-class 1 --size 8"),
                      {"--seed", "a whole number, 0 or more", "'-1'"});
  REQUIRE_FALSE(fs::exists(out));
  require_input_error(run("train --seed -3 --data " + out + " --out " + (dir / "run")),
                      {"--seed", "a whole number, 0 or more"});
  // The largest seed is a seed.
  INFO(out);
  REQUIRE(run("data synth --out " + out + " --seed 18446744073709551615 --classes 1 --train-per-class 1 "
              "--val-per-class 1 --size 8 --quiet").exit_code == 0);
}

TEST_CASE("a flag's value that is not a number says what number was expected", "[cli][input]") {
  require_input_error(run("sim --batch-per-gpu 32x"), {"--batch-per-gpu", "\"32x\"", "a whole number"});
  require_input_error(run("sim --bucket-mb abc"), {"--bucket-mb", "\"abc\"", "expected a number"});
  require_input_error(run("data synth --out x --classes 1.5"), {"--classes", "\"1.5\"", "a whole number"});
}

TEST_CASE("NVLS where no switch sums, or not as NCCL's, is refused with the reason", "[cli][input]") {
  basin::test::TempDir dir{"cli-nvls"};
  const std::string out = dir / "plan.json";
  require_input_error(run("sim --cluster dgx-a100:1 --algorithm nvls"), {"--algorithm", "nvls", "NVSwitch", "NVLink 4"});
  // Across servers NVLS needs the fabric's switches to sum too (NCCL's NVLS with IB SHARP).
  require_input_error(run("sim --cluster dgx-h100:2 --gpus 16 --algorithm nvls"),
                      {"--algorithm", "nvls across servers", "sharp=on", "dgx-h100:2"});
  require_input_error(run("sim --cluster dgx-h100:2 --gpus 16 --algorithm collnet-chain"),
                      {"--algorithm", "collnet-chain across servers", "sharp=on"});
  require_input_error(run("sim --cluster dgx-h100:2,sharp=on --gpus 12 --algorithm nvls"),
                      {"--algorithm", "nvls across servers", "unequal numbers"});
  require_input_error(run("sim --cluster dgx-h100:2 --gpus 16 --algorithm hierarchical --inter nvls"),
                      {"--inter", "between servers", "nvls"});
  require_input_error(run("plan --cluster dgx-h100:1 --algorithms nvls --out " + out), {"--algorithms", "nccl-nvls/Simple"});
  require_input_error(run("sim --cluster dgx-h100:1 --algorithm nccl-nvls/LL"), {"--algorithm", "Simple protocol only"});
  require_input_error(run("sim --cluster dgx-h100:2 --gpus 16 --algorithm nccl-nvls/Simple"), {"--algorithm:", "sharp=on"});
  require_input_error(run("sim --cluster bigbasin:2,sharp=on"), {"--cluster", "InfiniBand", "ethernet"});
  require_input_error(run("plan --cluster dgx-h100:2 --gpus 16 --algorithms hierarchical:nvls --out " + out),
                      {"--algorithms", "between servers", "hierarchical:nvls"});
  require_input_error(run("plan --cluster dgx-a100:1 --algorithms nccl-nvls/Simple --out " + out),
                      {"--algorithms", "one NVSwitch"});
  require_input_error(run("plan --cluster dgx-h100:1 --algorithms nccl/LL --out " + out),
                      {"--algorithms", "nccl (NCCL's tuner picks)", "nccl/LL"});
  require_input_error(run("sim --cluster dgx-h100:1 --algorithm nccl-ring/LL64"),
                      {"--algorithm", "LL, LL128, Simple or auto", "LL64"});
  require_input_error(run("plan --cluster dgx-h100:1 --algorithms nccl-nvls/LL128 --out " + out),
                      {"--algorithms", "Simple protocol only"});
  require_input_error(run("plan --cluster dgx-h100:2 --gpus 16 --algorithms nccl-nvls/Simple --out " + out),
                      {"--algorithms", "nccl-nvls/Simple", "one NVSwitch"});
  // NVLS-tree: NCCL's only, as many GPUs on each server, two servers for the planner.
  require_input_error(run("plan --cluster dgx-h100:2 --algorithms nvls-tree --out " + out),
                      {"--algorithms", "nccl-nvls-tree/Simple"});
  require_input_error(run("sim --cluster dgx-h100:2 --gpus 12 --algorithm nccl-nvls-tree/Simple"),
                      {"--algorithm", "same number of GPUs", "unequal"});
  require_input_error(run("sim --cluster dgx-a100:2 --algorithm nvls-tree"),
                      {"--algorithm", "nvls-tree", "every server's GPUs on an NVSwitch that sums", "server 0"});
  require_input_error(run("sim --cluster dgx-b200:2 --algorithm nvls-tree --host-staging on"),
                      {"--host-staging", "nvls-tree"});
  // A rack whose GPUs hang off 36 Graces cannot stage through one host buffer.
  require_input_error(run("sim --cluster gb200-nvl72:2 --algorithm hierarchical --host-staging on"),
                      {"--host-staging", "does not reach", "--host-staging off"});
  require_input_error(run("plan --cluster dgx-h100:2 --gpus 16 --algorithms hierarchical:nvls-tree --out " + out),
                      {"--algorithms", "between servers"});
  require_input_error(run("plan --cluster dgx-h100:1 --algorithms nccl-nvls-tree/Simple --out " + out),
                      {"--algorithms", "nccl-nvls-tree/Simple", "two or more"});
  REQUIRE_FALSE(fs::exists(out));
}

TEST_CASE("basin select's measured points need a plot and a size and a busbw each", "[cli][input]") {
  basin::test::TempDir dir{"cli-select-plot"};
  const std::string svg = dir / "s.svg";
  require_input_error(run("select --measured 1024:3"), {"--measured", "--plot"});
  require_input_error(run("sim --cluster bigbasin:2 --scaling --measured 16:0.9"), {"--measured", "--plot"});
  require_input_error(run("select --plot " + svg + " --measured 1024:3,"), {"--measured", "BYTES:BUSBW", "''"});
  require_input_error(run("select --plot " + svg + " --measured 1024:-3"), {"--measured", "'1024:-3'"});
  require_input_error(run("select --plot " + svg + " --measured 1KB:3"), {"--measured", "'1KB:3'"});
  require_input_error(run("select --plot " + (dir / "no/such/dir/s.svg") + " --cluster bigbasin:2"), {"s.svg"});
  REQUIRE_FALSE(fs::exists(svg));
}

TEST_CASE("a topology's server count, huge numbers and unmatched GPU models are named plainly", "[cli][input]") {
  basin::test::TempDir dir{"cli-topology-plain"};
  Result saved = run("topo --cluster pcie8 --format json");
  REQUIRE(saved.exit_code == 0);
  const nlohmann::json box = nlohmann::json::parse(saved.out);
  // One server described, four counted.
  nlohmann::json four = box;
  four["servers"] = 4;
  std::ofstream(dir / "four.json") << four.dump();
  require_input_error(run("topo --cluster " + (dir / "four.json")), {"four.json", "/servers", "server 1 has none"});
  // A bandwidth of 1e300 is written as such, not as three hundred digits.
  nlohmann::json huge = box;
  huge["links"][0]["bandwidth_GBps"] = 1e300;
  std::ofstream(dir / "huge.json") << huge.dump();
  Result r = run("topo --cluster " + (dir / "huge.json"));
  require_input_error(r, {"huge.json", "bandwidth_GBps", "got 1e+300"});
  REQUIRE(r.out.size() < 400);
  // A GPU no profile names: the GPU, its model and the profiles there are.
  nlohmann::json l4 = box;
  for (auto& node : l4["nodes"])
    if (node["kind"] == "gpu") node["model"] = "NVIDIA L4";
  std::ofstream(dir / "l4.json") << l4.dump();
  require_input_error(run("sim --cluster " + (dir / "l4.json")),
                      {"l4.json", "GPU 'NVIDIA L4'", "have: ", "--profile FILE", "(for GPU gpu0)"});
  // A topology without GPUs is named by its file, in sim and select as in plan.
  nlohmann::json cpus_only = {{"format", "basin.topology/1"}, {"name", "vm"},
                              {"nodes", {{{"id", "cpu0"}, {"kind", "cpu"}}}}, {"links", nlohmann::json::array()}};
  std::ofstream(dir / "vm.json") << cpus_only.dump();
  for (const char* command : {"sim", "select"})
    require_input_error(run(std::string(command) + " --cluster " + (dir / "vm.json")),
                        {"vm.json: expected a topology with GPUs", "'vm' with none"});
  // A GPU of no model is told so, not sought under the model ''.
  nlohmann::json nameless = box;
  for (auto& node : nameless["nodes"])
    if (node["kind"] == "gpu") node.erase("model");
  std::ofstream(dir / "nameless.json") << nameless.dump();
  require_input_error(run("sim --cluster " + (dir / "nameless.json")),
                      {"nameless.json", "names none (its 'model' is empty)", "--profile FILE", "(for GPU gpu0)"});
  // Given one (docs/device-profile-format.md), a --compare cluster of the same GPU takes it too;
  // one of another unmatched GPU is told to take --compare-profile.
  std::ifstream a100(std::string(BASIN_FIXTURES) + "/../../../profiles/devices/a100.json");
  std::ofstream(dir / "a100.json") << a100.rdbuf();
  const nlohmann::json l4_profile = {
      {"format", "basin.device_profile/1"}, {"context", nlohmann::json::object()}, {"device", "NVIDIA L4"},
      {"match", {"L4"}}, {"memory_GB", 24}, {"memory_GBps", 300},
      {"peak_TFLOPS", {{"fp32", 30.3}, {"fp16", 121}, {"bf16", 121}}}, {"measured", nlohmann::json::array()},
      {"efficiency_of", "a100.json"}};
  std::ofstream(dir / "l4p.json") << l4_profile.dump();
  const std::string with_profile = "plan --cluster " + (dir / "l4.json") + ":2 --profile " + (dir / "l4p.json") +
                                   " --top 1 --out ''";
  Result same_gpu = run(with_profile + " --compare " + (dir / "l4.json") + ":1");
  INFO(same_gpu.out);
  REQUIRE(same_gpu.exit_code == 0);
  nlohmann::json l40 = l4;
  for (auto& node : l40["nodes"])
    if (node["kind"] == "gpu") node["model"] = "NVIDIA L40";
  std::ofstream(dir / "l40.json") << l40.dump();
  require_input_error(run(with_profile + " --compare " + (dir / "l40.json")),
                      {"GPU 'NVIDIA L40'", "--compare-profile FILE", "on the --compare cluster"});
  // Two kinds of GPU in one run: one profile times every GPU's step, so it is refused, naming
  // both; one GPU with less memory than the rest bounds the batch of all.
  Result dumped = run("topo --cluster dgx-a100:2 --format json");
  REQUIRE(dumped.exit_code == 0);
  nlohmann::json mixed = nlohmann::json::parse(dumped.out), small = mixed;
  for (auto& node : mixed["nodes"])
    if (node["id"] == "s1/gpu3") node["model"] = "Tesla V100-SXM2-32GB";
  std::ofstream(dir / "mixed.json") << mixed.dump();
  for (const std::string command : {"sim", "plan --out ''"})
    require_input_error(run(command + " --cluster " + (dir / "mixed.json")),
                        {"mixed.json", "GPUs of one kind", "s0/gpu0", "s1/gpu3", "V100"});
  // A run on the first server's 8 GPUs alone never meets the V100: it is simulated.
  Result first_server = run("sim --cluster " + (dir / "mixed.json") + " --gpus 8");
  INFO(first_server.out);
  CHECK(first_server.exit_code == 0);
  for (auto& node : small["nodes"])
    if (node["id"] == "s1/gpu3") node["memory_GB"] = 2;
  std::ofstream(dir / "small.json") << small.dump();
  require_input_error(run("sim --cluster " + (dir / "small.json") + " --batch-per-gpu 128"),
                      {"--batch-per-gpu", "the 2 GB of a A100-SXM4-40GB (s1/gpu3)"});
  // A flag that fits --cluster but not --compare is the --compare cluster's.
  require_input_error(run("plan --cluster bigbasin:32 --gpus 256 --compare dgx-a100:2 --out " + (dir / "p.json")),
                      {"--gpus", "on the --compare cluster, dgx-a100:2"});
  REQUIRE_FALSE(fs::exists(dir / "p.json"));
}

TEST_CASE("what cannot run is named before the work: unjoined servers, a step past the dataset, an unwritable plot",
          "[cli][input]") {
  basin::test::TempDir dir{"cli-before-work"};
  // fabric=none: servers that no route joins, and how many GPUs do run.
  require_input_error(run("sim --cluster dgx-h100:4,fabric=none --precision bf16"),
                      {"joined by no fabric", "--gpus 8 or fewer"});
  // A global batch past the dataset is rejected; 64 images take at most 4 GPUs of 16.
  Result r = run("plan --cluster dgx1:1 --batches 16 --dataset-images 64 --json --out " + (dir / "p.json"));
  INFO(r.out);
  REQUIRE(r.exit_code == 0);
  const auto best = nlohmann::json::parse(read_file(dir / "p.json"));
  REQUIRE(best["global_batch"].get<int>() <= 64);
  REQUIRE_THAT(r.out, HasText("\"rejected\": "));
  // The scaling table is not printed when its plot cannot be written.
  r = run("sim --scaling --plot " + (dir.path / "no-such-dir" / "s.svg").string());
  require_input_error(r, {"no-such-dir", "writable"});
  REQUIRE_THAT(r.out, !HasText("GPUs"));
}
