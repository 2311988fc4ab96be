// `basin train` end to end: a plan file from `basin plan` runs with the overrides a one-process
// CPU run needs, stops and resumes from the command line, and bad flags or plans get exit code 2
// with the flag, file and field named.
#include "../catch.h"
#include "../run_basin.h"
#include "../temp_dir.h"

#include <basin/kernels.h>
#include <nlohmann/json.hpp>

#include <sched.h>


#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

namespace fs = std::filesystem;
using basin::test::Result;
using basin::test::run;

namespace {

struct Workspace {
  basin::test::TempDir dir{"train-cli"};
  std::string path(const std::string& name) const { return dir / name; }
};

}  // namespace

TEST_CASE("basin train runs a basin plan file on one process and resumes it", "[cli][train]") {
  Workspace w;
  REQUIRE(run("data synth --out " + w.path("data") + " --classes 4 --train-per-class 8 "
              "--val-per-class 2 --size 96 --quiet").exit_code == 0);
  REQUIRE(run("plan --cluster bigbasin:2 --out " + w.path("plan.json")).exit_code == 0);

  // As written, the plan wants 16 ranks and fp16 arithmetic: named, not silently changed.
  Result as_is = run("train --plan " + w.path("plan.json") + " --data " + w.path("data"));
  REQUIRE(as_is.exit_code == 2);
  REQUIRE(as_is.out.find("plan.json") != std::string::npos);
  REQUIRE(as_is.out.find("/world_size") != std::string::npos);

  // ResNet-50 from the plan, at 96 pixels and 2 images a step so the test stays quick.
  const std::string args = "train --plan " + w.path("plan.json") + " --data " + w.path("data") +
                           " --world-size 1 --precision fp32 --batch 2 --image-size 96"
                           " --no-validate --threads 1 --loader-threads 1 --out " + w.path("run");
  Result first = run(args + " --stop-after 2");
  if (first.out.find("built without oneDNN") != std::string::npos) {
    WARN("skipped: " << first.out);
    return;
  }
  INFO(first.out);
  REQUIRE(first.exit_code == 0);
  REQUIRE(first.out.find("\"steps\": 2") != std::string::npos);
  REQUIRE(first.out.find("resnet50") != std::string::npos);
  // Planned for Big Basin's P100s, run on the CPU: said, once.
  const std::string note = "plan.json was planned for Tesla P100-SXM2-16GB GPUs; these CPU ranks run its recipe";
  REQUIRE(first.out.find(note) != std::string::npos);
  REQUIRE(first.out.find(note) == first.out.rfind(note));
  // The plan's 0.1 warmup start is above this run's peak 0.1 x 2 / 256: warmup only climbs, so
  // the first step already runs at the peak (it ran at 0.1, 128 times the peak, before).
  REQUIRE(first.out.find("no warmup") != std::string::npos);
  {
    std::ifstream log(w.path("run") + "/log.jsonl");
    std::string line;
    REQUIRE(std::getline(log, line));
    REQUIRE_THAT(nlohmann::json::parse(line).at("lr").get<double>(), WithinRel(0.1 * 2 / 256, 1e-9));
  }
  // The run draws its log (no validation here, so no accuracy plot).
  REQUIRE(fs::exists(w.path("run") + "/loss.svg"));
  REQUIRE_FALSE(fs::exists(w.path("run") + "/accuracy.svg"));

  Result again = run(args + " --stop-after 3");
  REQUIRE(again.exit_code == 2);
  REQUIRE(again.out.find("--resume") != std::string::npos);

  Result resumed = run(args + " --stop-after 3 --resume");
  INFO(resumed.out);
  REQUIRE(resumed.exit_code == 0);
  REQUIRE(resumed.out.find("resumed from") != std::string::npos);
  REQUIRE(resumed.out.find("\"steps\": 3") != std::string::npos);
}

TEST_CASE("basin train names bad flags and plan fields", "[cli][train]") {
  Workspace w;
  REQUIRE(run("data synth --out " + w.path("data") + " --classes 2 --train-per-class 2 "
              "--val-per-class 1 --size 32 --quiet").exit_code == 0);
  const std::string data = " --data " + w.path("data") + " --out " + w.path("run");

  Result decay = run("train --decay linear" + data);
  REQUIRE(decay.exit_code == 2);
  REQUIRE(decay.out.find("--decay") != std::string::npos);

  Result stage = run("train --input-stage fpga" + data);
  REQUIRE(stage.exit_code == 2);
  REQUIRE(stage.out.find("--input-stage") != std::string::npos);
  REQUIRE(stage.out.find("auto, cpu or gpu") != std::string::npos);

  Result blocks = run("train --blocks 1,x" + data);
  REQUIRE(blocks.exit_code == 2);
  REQUIRE(blocks.out.find("--blocks") != std::string::npos);

  // bf16/fp16 are the GPU backend's: refused on the CPU, naming the flag and the way out.
  Result bf16 = run("train --precision bf16" + data);
  REQUIRE(bf16.exit_code == 2);
  REQUIRE(bf16.out.find("--precision") != std::string::npos);
  REQUIRE(bf16.out.find("--device gpu") != std::string::npos);
  Result fp8 = run("train --precision fp8 --device gpu" + data);
  REQUIRE(fp8.exit_code == 2);
  REQUIRE(fp8.out.find("fp32, bf16 or fp16, got 'fp8'") != std::string::npos);
  Result scaling = run("train --loss-scale always" + data);
  REQUIRE(scaling.exit_code == 2);
  REQUIRE(scaling.out.find("--loss-scale") != std::string::npos);

  Result missing = run("train --data " + w.path("nowhere") + " --out " + w.path("run"));
  REQUIRE(missing.exit_code == 2);
  REQUIRE(missing.out.find("nowhere") != std::string::npos);

  std::ofstream(w.path("bad.json")) << R"({"format": "basin.plan/1", "model": "resnet18",
    "batch_per_device": "thirty-two"})";
  Result plan = run("train --plan " + w.path("bad.json") + data);
  REQUIRE(plan.exit_code == 2);
  REQUIRE(plan.out.find("bad.json") != std::string::npos);
  REQUIRE(plan.out.find("/batch_per_device") != std::string::npos);

  std::ofstream(w.path("notjson.json")) << "{ this is not json";
  Result notjson = run("train --plan " + w.path("notjson.json") + data);
  REQUIRE(notjson.exit_code == 2);
  REQUIRE(notjson.out.find("notjson.json") != std::string::npos);
  // Nothing was started: no run directory with partial output.
  REQUIRE_FALSE(fs::exists(w.path("run") + "/log.jsonl"));
}

TEST_CASE("basin train refuses GPU collectives that cannot run", "[cli][train]") {
  Workspace w;
  // Refused before the dataset is opened, so no dataset is needed.
  const std::string data = " --data " + w.path("nowhere") + " --out " + w.path("run");
  auto refused = [&](const std::string& flags, const std::string& named) {
    const Result r = run("train " + flags + data);
    INFO(flags << "\n" << r.out);
    CHECK(r.exit_code == 2);
    CHECK(r.out.find(named) != std::string::npos);
  };
  refused("--gpu-collective mpi", "--gpu-collective");
  refused("--gpu-collective nccl", "--device gpu");                  // NCCL on CPU ranks
  refused("--nccl-algorithm tree", "--nccl-algorithm");              // CPU ranks run Gloo
  refused("--nccl-algorithm tree --device gpu --gpu-collective gloo", "--nccl-algorithm");
  refused("--device gpu --gpu-collective nccl --nccl-algorithm butterfly", "--nccl-algorithm");
  // NVLS-tree runs between servers; --nproc starts every rank on this one.
  refused("--device gpu --gpu-collective nccl --nproc 2 --nccl-algorithm nvls-tree", "--nproc");
  refused("--device gpu --gpu-collective nccl --nproc 2 --nccl-algorithm collnet-chain", "--nproc");
  refused("--wire fp8", "fp32, fp16 or bf16, got 'fp8'");
  refused("--model resnet50 --blocks 1,1,1", "--model: expected resnet-custom (or no --model) with --blocks");
  // A list flag given twice would be joined by CLI11 (four stages here).
  refused("--blocks 1,1 --blocks 2,2", "--blocks: expected once");
  refused("--milestones=1 --milestones 2", "--milestones: expected once");
  // One --gpu for two NCCL ranks would put both on it (NCCL: "Duplicate GPU detected").
  if (BASIN_HAVE_NCCL) refused("--device gpu --gpu-collective nccl --nproc 2 --gpu 0", "--gpu: expected none with several local ranks");
  // With NCCL built, this names the conflicting flag; without, it says NCCL is missing.
  for (const std::string flags : {"--device gpu --gpu-collective nccl --algorithm ring"}) {
    const Result r = run("train " + flags + data);
    INFO(flags << "\n" << r.out);
    CHECK(r.exit_code == 2);
    const std::string flag = flags.substr(flags.rfind("--"), flags.rfind(' ') - flags.rfind("--"));
    CHECK((r.out.find(flag) != std::string::npos || r.out.find("without NCCL") != std::string::npos));
  }
  // NCCL inside each server, Gloo between: GPU ranks and the three phases only.
  refused("--gpu-collective nccl+gloo", "--device gpu");
  if (BASIN_HAVE_NCCL) {
    refused("--device gpu --gpu-collective nccl+gloo --algorithm ring",
            "--algorithm: expected hierarchical (or none) with --gpu-collective nccl+gloo");
    refused("--device gpu --gpu-collective nccl+gloo --nccl-algorithm tree",
            "no NCCL algorithm with --gpu-collective nccl+gloo");
    // Two ranks of one server on one GPU: NCCL refuses that; servers of one rank may share it.
    refused("--device gpu --gpu-collective nccl+gloo --nproc 2 --gpu 0", "--gpu: expected none with several local ranks");
    // Emulated servers on GPUs pass the --servers rule with nccl+gloo (a communicator per
    // server): here they stop only at the missing GPU.
    const Result servers = run("train --device gpu --gpu-collective nccl+gloo --nproc 2 --servers 2" + data);
    INFO(servers.out);
    CHECK(servers.exit_code != 0);
    CHECK(servers.out.find("--servers: expected") == std::string::npos);
#if BASIN_HAVE_CUDA
    const int gpus = basin::kernels::cuda_device_count();
#else
    const int gpus = 0;
#endif
    if (gpus == 0) CHECK(servers.out.find("none found") != std::string::npos);
  }
  // More NCCL ranks than GPUs (or no GPU at all) is refused before any rank starts.
  const Result many = run("train --device gpu --gpu-collective nccl --nproc 64" + data);
  INFO(many.out);
  CHECK(many.exit_code == 2);
  CHECK((many.out.find("--nproc") != std::string::npos || many.out.find("none found") != std::string::npos ||
         many.out.find("without NCCL") != std::string::npos));
  REQUIRE_FALSE(fs::exists(w.path("run") + "/log.jsonl"));
}

TEST_CASE("basin train runs a plan's allreduce on the library it was priced on, or refuses it", "[cli][train]") {
  Workspace w;
  const std::string data = " --data " + w.path("nowhere") + " --out " + w.path("run");
  // basin's own halving-doubling over InfiniBand is priced moving GPU memory directly, which
  // neither NCCL nor Gloo does: the plan says so, and a GPU run of it is refused with the ways out.
  REQUIRE(run("plan --cluster dgx-h100:2 --gpus 16 --algorithms halving-doubling --out " + w.path("hd.json"))
              .exit_code == 0);
  std::ifstream hd_file(w.path("hd.json"));
  const auto hd = nlohmann::json::parse(hd_file);
  REQUIRE(hd["allreduce"]["library"] == "simulated-only");
  const Result hd_run = run("train --plan " + w.path("hd.json") + " --device gpu" + data);
  INFO(hd_run.out);
  CHECK(hd_run.exit_code == 2);
  CHECK(hd_run.out.find("/allreduce/library") != std::string::npos);
  CHECK(hd_run.out.find("--gpu-collective") != std::string::npos);
  // Between Big Basin's servers (50 GbE), Gloo's staged schedules are priced as they run.
  REQUIRE(run("plan --cluster bigbasin:2 --gpus 16 --algorithms halving-doubling --out " +
              w.path("gloo.json")).exit_code == 0);
  std::ifstream gloo_file(w.path("gloo.json"));
  CHECK(nlohmann::json::parse(gloo_file)["allreduce"]["library"] == "gloo");
  // The library picks the GPU collective: NCCL's algorithm flag is refused beside a Gloo plan, and
  // Gloo's beside an NCCL plan (both refusals come before any GPU is looked for).
  const Result gloo_run = run("train --plan " + w.path("gloo.json") +
                              " --device gpu --world-size 1 --nccl-algorithm ring" + data);
  INFO(gloo_run.out);
  CHECK(gloo_run.exit_code == 2);
  CHECK(gloo_run.out.find("no NCCL algorithm with --gpu-collective gloo") != std::string::npos);
  REQUIRE(run("plan --cluster dgx-h100:2 --gpus 16 --out " + w.path("nccl.json")).exit_code == 0);
  const Result nccl_run = run("train --plan " + w.path("nccl.json") + " --device gpu --world-size 1 --algorithm ring" + data);
  INFO(nccl_run.out);
  CHECK(nccl_run.exit_code == 2);
  if (BASIN_HAVE_NCCL) CHECK(nccl_run.out.find("no Gloo algorithm with --gpu-collective nccl") != std::string::npos);
  else CHECK(nccl_run.out.find("/allreduce/library") != std::string::npos);
  // A library basin does not know is named, not guessed at.
  auto odd = hd;
  odd["allreduce"]["library"] = "mpi";
  std::ofstream(w.path("odd.json")) << odd.dump();
  const Result odd_run = run("train --plan " + w.path("odd.json") + data);
  CHECK(odd_run.exit_code == 2);
  CHECK(odd_run.out.find("/allreduce/library") != std::string::npos);
  REQUIRE_FALSE(fs::exists(w.path("run") + "/log.jsonl"));
}

TEST_CASE("basin train --plan auto plans for the machine it finds and runs the plan", "[cli][train]") {
  Workspace w;
  REQUIRE(run("data synth --out " + w.path("data") + " --classes 4 --train-per-class 16 "
              "--val-per-class 2 --size 64 --quiet").exit_code == 0);
  const std::string fixtures = BASIN_FIXTURES;
  // Two NUMA nodes of one core and no GPU (hwloc's synthetic "numa:2 core:1 pu:1"): one rank per
  // node with one thread each, 2 x 8 images a step over 64 images, 4 steps.
  Result cpu = run("train --plan auto --hwloc-xml " + fixtures + "/hwloc-synthetic-2numa.xml --data " +
                   w.path("data") + " --blocks 1,1,1 --width 8 --image-size 48 --batch 8 --epochs 1 "
                   "--loader-threads 1 --comm-timeout-s 60 --out " + w.path("cpu"));
  if (cpu.out.find("built without oneDNN") != std::string::npos) {
    WARN("skipped: " << cpu.out);
    return;
  }
  INFO(cpu.out);
  REQUIRE(cpu.exit_code == 0);
  REQUIRE(cpu.out.find("2 CPU rank(s) x 8 images, 1 thread(s) each") != std::string::npos);
  REQUIRE(cpu.out.find("2 ranks") != std::string::npos);
  REQUIRE(cpu.out.find("\"steps\": 4") != std::string::npos);
  std::ifstream plan_file(w.path("cpu") + "/plan.json");
  std::string plan((std::istreambuf_iterator<char>(plan_file)), std::istreambuf_iterator<char>());
  REQUIRE(plan.find("\"world_size\": 2") != std::string::npos);
  REQUIRE(plan.find("\"threads_per_rank\": 1") != std::string::npos);
  REQUIRE(plan.find("\"library\": \"gloo\"") != std::string::npos);  // two CPU ranks: Gloo sums
  REQUIRE(fs::exists(w.path("cpu") + "/topology.json"));

  // The DGX-2 export: 16 V100s. The planner's plan is held to what the GPU trainer runs (with
  // NCCL: NCCL's ring or tree, fp32 or fp16 gradients; without: one GPU) and written before training
  // starts; without a GPU here, the run then stops with exit 2 naming --device.
  Result gpu = run("train --plan auto --hwloc-xml " + fixtures + "/hwloc-nvidia-dgx2.xml --data " +
                   w.path("data") + " --model resnet50 --epochs 1 --out " + w.path("gpu"));
  INFO(gpu.out);
  REQUIRE(gpu.out.find("16 GPU(s) (Tesla V100") != std::string::npos);
  REQUIRE(gpu.out.find(w.path("gpu") + "/plan.json") != std::string::npos);
  std::ifstream gpu_file(w.path("gpu") + "/plan.json");
  const auto plan_doc = nlohmann::json::parse(gpu_file);
  CHECK(plan_doc["device"].get<std::string>().rfind("Tesla V100", 0) == 0);
  // V100 has no bf16: fp32 or fp16 compute and, with NCCL, fp32 or fp16 gradients.
  if (BASIN_HAVE_NCCL) CHECK((plan_doc["precision"]["wire"] == "fp32" || plan_doc["precision"]["wire"] == "fp16"));
  else CHECK(plan_doc["precision"]["wire"] == "fp32");
  CHECK((plan_doc["precision"]["compute"] == "fp32" || plan_doc["precision"]["compute"] == "fp16"));
  const int world = plan_doc["world_size"].get<int>();
  if (BASIN_HAVE_NCCL) {
    CHECK((world >= 1 && world <= 16));
    CHECK((plan_doc["allreduce"]["algorithm"] == "ring" || plan_doc["allreduce"]["algorithm"] == "tree"));
    CHECK(plan_doc["allreduce"].contains("protocol"));
    // Ranks asked for are the ranks planned; more than the machine has is an input error.
    Result two = run("train --plan auto --nproc 2 --hwloc-xml " + fixtures + "/hwloc-nvidia-dgx2.xml --data " +
                     w.path("data") + " --model resnet50 --epochs 1 --out " + w.path("gpu2"));
    INFO(two.out);
    std::ifstream two_file(w.path("gpu2") + "/plan.json");
    CHECK(nlohmann::json::parse(two_file)["world_size"] == 2);
    Result many = run("train --plan auto --nproc 17 --hwloc-xml " + fixtures + "/hwloc-nvidia-dgx2.xml --data " +
                      w.path("data") + " --model resnet50 --epochs 1 --out " + w.path("gpu17"));
    CHECK(many.exit_code == 2);
    CHECK(many.out.find("--nproc: expected at most the 16 GPU(s) found") != std::string::npos);
  } else {
    CHECK(world == 1);
  }
#if BASIN_HAVE_CUDA
  const bool have_gpu = basin::kernels::cuda_device_count() > 0;
#else
  const bool have_gpu = false;
#endif
  if (!have_gpu) {
    REQUIRE(gpu.exit_code == 2);
    REQUIRE(gpu.out.find("--device") != std::string::npos);
  }
}

TEST_CASE("unreadable validation files are left out of the accuracy, every image counted once", "[cli][train]") {
  Workspace w;
  REQUIRE(run("data synth --out " + w.path("data") + " --classes 4 --train-per-class 8 --val-per-class 5 "
              "--size 32 --quiet").exit_code == 0);
  // Three of the 20 validation files cut short: the loader fills their slots with later images,
  // which must not count twice.
  std::vector<fs::path> val;
  for (const auto& e : fs::recursive_directory_iterator(w.path("data") + "/val"))
    if (e.is_regular_file()) val.push_back(e.path());
  std::sort(val.begin(), val.end());
  REQUIRE(val.size() == 20);
  for (int i = 0; i < 3; ++i) {
    std::ifstream in(val[i], std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::ofstream(val[i], std::ios::binary | std::ios::trunc) << bytes.substr(0, bytes.size() / 3);
  }
  for (const char* ranks : {"1", "2"}) {
    const std::string out = w.path(std::string("run") + ranks);
    Result r = run("train --data " + w.path("data") + " --blocks 1,1 --width 8 --image-size 24 --batch 4 "
                   "--epochs 1 --threads 1 --loader-threads 1 --comm-timeout-s 60 --nproc " + std::string(ranks) +
                   " --out " + out);
    if (r.out.find("built without oneDNN") != std::string::npos) {
      WARN("skipped: " << r.out);
      return;
    }
    INFO(r.out);
    REQUIRE(r.exit_code == 0);
    std::ifstream log(out + "/log.jsonl");
    int validations = 0;
    for (std::string line; std::getline(log, line);) {
      const auto record = nlohmann::json::parse(line);
      if (record.value("type", "") != "val") continue;
      ++validations;
      CHECK(record["val_images"] == 17);
    }
    CHECK(validations == 1);
  }
}
