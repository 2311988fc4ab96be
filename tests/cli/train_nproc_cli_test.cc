// `basin train --nproc` end to end: ranks on this machine train as one run, share its cores,
// refuse once what every rank refuses, resume as the uninterrupted run, and run Goyal et al.'s
// hierarchical allreduce over emulated servers.
#include "../catch.h"
#include "../run_basin.h"
#include "../temp_dir.h"

#include <nlohmann/json.hpp>

#include <sched.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

namespace fs = std::filesystem;
using basin::test::Result;
using basin::test::run;

namespace {

struct Workspace {
  basin::test::TempDir dir{"train-nproc-cli"};
  std::string path(const std::string& name) const { return dir / name; }
};

// Synthesises 4 classes of 16 training and 4 validation images into `w`'s data/ and returns a
// small ResNet's `basin train` arguments on `nproc` ranks of `batch` images, up to `--out `.
std::string small_nproc_train(const Workspace& w, int batch, int nproc) {
  REQUIRE(run("data synth --out " + w.path("data") + " --classes 4 --train-per-class 16 "
              "--val-per-class 4 --size 64 --quiet").exit_code == 0);
  return "train --data " + w.path("data") + " --blocks 1,1,1 --width 8 --image-size 48 --batch " +
         std::to_string(batch) + " --epochs 1 --threads 1 --loader-threads 1 --comm-timeout-s 60 --nproc " +
         std::to_string(nproc) + " --out ";
}

}  // namespace

TEST_CASE("basin train --nproc 2 trains as two ranks and names a bad algorithm", "[cli][train]") {
  Workspace w;
  const std::string args = small_nproc_train(w, 8, 2);
  Result two = run(args + w.path("run") + " --algorithm halving_doubling --bucket-mb 0.01");
  if (two.out.find("built without oneDNN") != std::string::npos) {
    WARN("skipped: " << two.out);
    return;
  }
  INFO(two.out);
  REQUIRE(two.exit_code == 0);
  // 64 images in shards of 32 per rank: 4 steps of 2 x 8 images, one summary (rank 0's).
  REQUIRE(two.out.find("\"steps\": 4") != std::string::npos);
  REQUIRE(two.out.find("\"steps\"") == two.out.rfind("\"steps\""));
  REQUIRE(two.out.find("2 ranks") != std::string::npos);
  std::ifstream log(w.path("run") + "/log.jsonl");
  std::string line;
  int steps = 0;
  while (std::getline(log, line)) steps += line.find("\"comm_wait_s\"") != std::string::npos;
  REQUIRE(steps == 4);
  for (const auto& e : fs::directory_iterator(w.path("run")))
    REQUIRE(e.path().filename().string().find(".rendezvous") == std::string::npos);

  Result bad = run(args + w.path("bad") + " --algorithm tree");
  REQUIRE(bad.exit_code == 2);
  REQUIRE(bad.out.find("--algorithm: expected ring, ring_chunked, halving_doubling, bcube or hierarchical, "
                       "got \"tree\"") != std::string::npos);
  // Both ranks refuse a resume with nothing to resume; the launcher prints the refusal once.
  Result nothing = run(args + w.path("nothing") + " --algorithm halving_doubling --resume");
  INFO(nothing.out);
  REQUIRE(nothing.exit_code == 2);
  REQUIRE(nothing.out.find("--resume: no checkpoint") != std::string::npos);
  REQUIRE(nothing.out.find("--resume: no checkpoint") == nothing.out.rfind("--resume: no checkpoint"));

  // Without --threads, ranks on one machine share its cores (each taking all of them ran 4 ranks
  // on 2 cores 4-10x slower): a quarter step is enough to see the header.
  std::string shared = args;
  shared.replace(shared.find("--threads 1 "), std::strlen("--threads 1 "), "");
  shared.replace(shared.find("--epochs 1 "), std::strlen("--epochs 1 "), "--epochs 0.25 --base-batch 4 ");
  Result cores = run(shared + w.path("cores"));
  INFO(cores.out);
  REQUIRE(cores.exit_code == 0);
  // The cores this process may run on (a CI runner's cpuset), halved; OMP_NUM_THREADS, where the
  // environment sets it, is taken as it is.
  cpu_set_t allowed;
  REQUIRE(sched_getaffinity(0, sizeof allowed, &allowed) == 0);
  const char* omp = std::getenv("OMP_NUM_THREADS");
  const bool bound = std::getenv("OMP_PROC_BIND") || std::getenv("OMP_PLACES");
  const int cpus = bound ? static_cast<int>(std::thread::hardware_concurrency()) : CPU_COUNT(&allowed);
  const int threads = omp && std::atoi(omp) > 0 ? std::atoi(omp) : std::max(1, cpus / 2);
  CHECK(cores.out.find("each rank on oneDNN") != std::string::npos);
  CHECK(cores.out.find(", " + std::to_string(threads) + " threads)") != std::string::npos);
  // The default recipe's 5 warmup epochs and milestones from epoch 30 on, in a quarter epoch.
  CHECK(cores.out.find("warmup (5 epochs) outlasts the run (0.25): the peak is never reached") != std::string::npos);
  CHECK(cores.out.find("no decay milestone falls inside the run's 0.25 epochs (first: 30)") != std::string::npos);

  // Stopped mid-epoch and resumed, two ranks validate as the uninterrupted run did: rank 1's
  // batch-norm running statistics, its own, come back from beside the checkpoint.
  std::string twice = args;
  twice.replace(twice.find("--epochs 1"), 10, "--epochs 2");
  const std::string flags = " --algorithm halving_doubling --bucket-mb 0.01";
  REQUIRE(run(twice + w.path("stopped") + flags + " --stop-after 2").exit_code == 0);
  REQUIRE(fs::exists(w.path("stopped") + "/running_stats.rank1.step2.npy"));
  REQUIRE(run(twice + w.path("stopped") + flags + " --resume").exit_code == 0);
  REQUIRE(run(twice + w.path("whole") + flags).exit_code == 0);
  auto validation = [](const std::string& dir) {
    std::ifstream in(dir + "/log.jsonl");
    std::vector<std::string> lines;
    for (std::string l; std::getline(in, l);)
      if (l.find("\"type\":\"val\"") != std::string::npos) {
        auto record = nlohmann::json::parse(l);
        record.erase("images_per_s");  // the epoch's measured speed, which no rerun repeats
        lines.push_back(record.dump());
      }
    return lines;
  };
  REQUIRE(validation(w.path("whole")).size() == 2);
  REQUIRE(validation(w.path("stopped")) == validation(w.path("whole")));
  REQUIRE_FALSE(fs::exists(w.path("stopped") + "/running_stats.rank1.step2.npy"));  // superseded
}

TEST_CASE("basin train --nproc 4 --servers 2 runs the hierarchical allreduce over emulated servers", "[cli][train]") {
  Workspace w;
  const std::string args = small_nproc_train(w, 4, 4);
  Result four = run(args + w.path("run") + " --servers 2 --algorithm hierarchical --inter ring_chunked --bucket-mb 0.01");
  if (four.out.find("built without oneDNN") != std::string::npos) {
    WARN("skipped: " << four.out);
    return;
  }
  INFO(four.out);
  REQUIRE(four.exit_code == 0);
  // Ranks 0-1 and 2-3 as two servers (LOCAL_RANK, LOCAL_WORLD_SIZE from the launcher), said once.
  const std::string said = "gradients: Gloo's hierarchical allreduce (2 servers of 2 ranks, ring_chunked between)";
  REQUIRE(four.out.find(said) != std::string::npos);
  REQUIRE(four.out.find(said) == four.out.rfind(said));
  REQUIRE(four.out.find("\"steps\": 4") != std::string::npos);  // 64 images, 4 x 4 a step

  // A plan's hierarchical allreduce runs as such, with the plan's algorithm between servers
  // (basin's ring as Gloo's ring_chunked). The plan is Big Basin's, cut to 4 ranks of 4 images.
  REQUIRE(run("plan --cluster bigbasin:2 --gpus 16 --algorithms hierarchical:ring --precisions fp32 --out " +
              w.path("h.json")).exit_code == 0);
  nlohmann::json plan = nlohmann::json::parse(std::ifstream(w.path("h.json")));
  REQUIRE(plan["allreduce"]["algorithm"] == "hierarchical");
  plan["world_size"] = 4;
  plan["batch_per_device"] = 4;
  plan["global_batch"] = 16;
  // The linear scaling rule's lr for that global batch, which the plan states beside it.
  plan["lr_schedule"]["lr"] = plan["lr_schedule"]["base_lr"].get<double>() * 16 /
                              plan["lr_schedule"]["base_batch"].get<double>();
  std::ofstream(w.path("h4.json")) << plan.dump();
  const std::string planned = "train --plan " + w.path("h4.json") + " --data " + w.path("data") +
                              " --blocks 1,1,1 --width 8 --image-size 48 --epochs 1 --threads 1 --loader-threads 1 "
                              "--comm-timeout-s 60 --nproc 4 --out ";
  // The plan's 2 servers number --nproc's ranks (as --servers 2 would).
  Result from_plan = run(planned + w.path("planned"));
  INFO(from_plan.out);
  REQUIRE(from_plan.exit_code == 0);
  CHECK(from_plan.out.find("gradients: Gloo's hierarchical allreduce (2 servers of 2 ranks, ring_chunked between)") !=
        std::string::npos);
  // --algorithm hierarchical of the user's keeps the plan's algorithm between servers; with
  // --servers 1 the four ranks are one machine's, and the line says so.
  Result one_server = run(planned + w.path("one") + " --algorithm hierarchical --servers 1");
  INFO(one_server.out);
  REQUIRE(one_server.exit_code == 0);
  CHECK(one_server.out.find("gradients: Gloo's hierarchical allreduce (1 server of 4 ranks, ring_chunked between)") !=
        std::string::npos);

  Result uneven = run(args + w.path("uneven") + " --servers 3 --algorithm hierarchical");
  CHECK(uneven.exit_code == 2);
  CHECK(uneven.out.find("--servers") != std::string::npos);
  Result stray = run(args + w.path("stray") + " --inter ring_chunked");
  CHECK(stray.exit_code == 2);
  CHECK(stray.out.find("--algorithm hierarchical with --inter") != std::string::npos);
  // Refused before any rank starts: an algorithm comm's three phases cannot run between servers.
  Result bcube = run(args + w.path("bcube") + " --servers 2 --algorithm hierarchical --inter bcube");
  CHECK(bcube.exit_code == 2);
  CHECK(bcube.out.find("--inter: expected halving_doubling, ring_chunked or ring between servers, got bcube") !=
        std::string::npos);
  CHECK(bcube.out.find("rank") == std::string::npos);  // no rank ran to say it
  Result gpu = run(args + w.path("gpu") + " --servers 2 --device gpu --gpu-collective gloo");
  CHECK(gpu.exit_code == 2);
  CHECK(gpu.out.find("--device cpu, or --gpu-collective nccl+gloo, with --servers") != std::string::npos);
  REQUIRE_FALSE(fs::exists(w.path("uneven") + "/log.jsonl"));
  REQUIRE_FALSE(fs::exists(w.path("stray") + "/log.jsonl"));
}
