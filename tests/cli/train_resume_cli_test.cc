// `basin train --resume` keeps what the sessions before it measured: the validation of the epoch
// whose end it resumes from, every epoch in summary.json, and a finished run's results, and ends
// a run cut to the steps it had run; a plan's
// warmup start follows the run's own peak when flags move it; `--plan auto` leaves a run
// directory's plan alone when it refuses to start.
#include "../catch.h"
#include "../run_basin.h"
#include "../temp_dir.h"

#include <nlohmann/json.hpp>

#include <sys/wait.h>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <chrono>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

namespace fs = std::filesystem;
using basin::test::read_file;
using basin::test::Result;
using basin::test::run;
using nlohmann::json;

namespace {

const char* tiny = " --blocks 1,1 --width 8 --image-size 24 --threads 1 --loader-threads 1 --quiet";

std::vector<json> records(const std::string& log, const std::string& type) {
  std::vector<json> out;
  std::ifstream in(log);
  for (std::string line; std::getline(in, line);)
    if (auto r = json::parse(line); r.value("type", "step") == type) out.push_back(r);
  return out;
}

bool skipped_without_onednn(const Result& r) {
  if (r.out.find("built without oneDNN") == std::string::npos) return false;
  WARN("skipped: " << r.out);
  return true;
}

}  // namespace

TEST_CASE("a resume from an epoch's end keeps that epoch's validation and summary", "[cli][train]") {
  basin::test::TempDir dir{"train-resume"};
  REQUIRE(run("data synth --out " + (dir / "data") + " --classes 4 --train-per-class 8 --val-per-class 4 "
              "--size 32 --quiet").exit_code == 0);
  // 32 images in batches of 8: 4 steps an epoch, 3 epochs.
  const std::string args = "train --data " + (dir / "data") + tiny +
                           " --batch 8 --epochs 3 --lr 0.1 --base-batch 16 --warmup-epochs 1 --milestones 2 --out ";
  Result stopped = run(args + (dir / "stopped") + " --stop-after 4");  // the checkpoint at epoch 1's end
  if (skipped_without_onednn(stopped)) return;
  REQUIRE(stopped.exit_code == 0);
  REQUIRE(run(args + (dir / "stopped") + " --resume").exit_code == 0);
  REQUIRE(run(args + (dir / "whole")).exit_code == 0);
  // Validation at steps 4, 8 and 12 in both; the resumed run's epoch 1 from before the resume.
  auto steps_of = [](const std::vector<json>& v) {
    std::vector<int> s;
    for (const auto& r : v) s.push_back(r["step"]);
    return s;
  };
  const auto resumed = records(dir / "stopped/log.jsonl", "val"), whole = records(dir / "whole/log.jsonl", "val");
  REQUIRE(steps_of(resumed) == std::vector<int>{4, 8, 12});
  REQUIRE(steps_of(whole) == steps_of(resumed));
  REQUIRE(resumed.front()["top1"] == whole.front()["top1"]);
  const json summary = json::parse(read_file(dir / "stopped/summary.json"));
  REQUIRE(summary["epochs"].size() == 3);
  REQUIRE(summary["epochs"][0]["epoch"] == 1);
  REQUIRE(summary["epochs"][0]["top1"] == whole.front()["top1"]);
  REQUIRE(summary["epochs"][0]["train_loss"] == whole.front()["train_loss"]);

  // Resumed once finished: said, and the results stand.
  const std::string before = read_file(dir / "stopped/summary.json");
  Result again = run(args + (dir / "stopped") + " --resume");
  INFO(again.out);
  REQUIRE(again.exit_code == 0);
  REQUIRE_THAT(again.out, HasText("\"top1\""));
  const json after = json::parse(read_file(dir / "stopped/summary.json"));
  REQUIRE(after["epochs"] == json::parse(before)["epochs"]);
  REQUIRE(records(dir / "stopped/log.jsonl", "val").size() == 3);
  // Its summary lost (killed after the last checkpoint): written again from the log, nothing run.
  fs::remove(dir / "stopped/summary.json");
  Result rewritten = run(args + (dir / "stopped") + " --resume");
  INFO(rewritten.out);
  REQUIRE(rewritten.exit_code == 0);
  const json restored = json::parse(read_file(dir / "stopped/summary.json"));
  REQUIRE(restored["epochs"] == json::parse(before)["epochs"]);
  REQUIRE(restored["finished"] == true);
  REQUIRE(records(dir / "stopped/log.jsonl", "val").size() == 3);
  // Fewer epochs than the checkpoint has run: refused, naming --epochs, the run left as it was.
  std::string fewer = args;
  fewer.replace(fewer.find("--epochs 3"), 10, "--epochs 1");
  Result shorter = run(fewer + (dir / "stopped") + " --resume");
  REQUIRE(shorter.exit_code == 2);
  REQUIRE_THAT(shorter.out, HasText("--epochs (epochs): at least the 12 steps"));
  REQUIRE(records(dir / "stopped/log.jsonl", "val").size() == 3);

  // Stopped inside epoch 2 (step 6) and resumed with exactly those steps (1.5 epochs): no step
  // is left, but the run's end is validated and its weights written, and it is then finished.
  Result inside = run(args + (dir / "inside") + " --stop-after 6");
  REQUIRE(inside.exit_code == 0);
  REQUIRE_FALSE(fs::exists(dir / "inside/weights"));
  std::string exactly = args;
  exactly.replace(exactly.find("--epochs 3"), 10, "--epochs 1.5");
  Result ended = run(exactly + (dir / "inside") + " --resume");
  INFO(ended.out);
  REQUIRE(ended.exit_code == 0);
  REQUIRE(fs::is_directory(dir / "inside/weights"));
  const json inside_summary = json::parse(read_file(dir / "inside/summary.json"));
  REQUIRE(inside_summary["finished"] == true);
  REQUIRE(inside_summary["total_steps"] == 6);
  REQUIRE(steps_of(records(dir / "inside/log.jsonl", "val")) == std::vector<int>{4, 6});
  // And resumed once more, it is a finished run.
  REQUIRE(run(exactly + (dir / "inside") + " --resume").exit_code == 0);
  REQUIRE(records(dir / "inside/log.jsonl", "val").size() == 2);
  // Stopped at an epoch's end (step 4, validated there) and resumed as a one-epoch run: its
  // weights and summary are written, and epoch 1 is not validated a second time.
  REQUIRE(run(args + (dir / "boundary") + " --stop-after 4").exit_code == 0);
  std::string one = args;
  one.replace(one.find("--epochs 3"), 10, "--epochs 1");
  Result at_end = run(one + (dir / "boundary") + " --resume");
  INFO(at_end.out);
  REQUIRE(at_end.exit_code == 0);
  REQUIRE(fs::is_directory(dir / "boundary/weights"));
  REQUIRE(steps_of(records(dir / "boundary/log.jsonl", "val")) == std::vector<int>{4});
  const json boundary = json::parse(read_file(dir / "boundary/summary.json"));
  REQUIRE(boundary["finished"] == true);
  REQUIRE(boundary["epochs"].size() == 1);
}

TEST_CASE("a plan's warmup start follows the run's peak when flags move it", "[cli][train]") {
  basin::test::TempDir dir{"train-warmup-start"};
  REQUIRE(run("data synth --out " + (dir / "data") + " --classes 2 --train-per-class 8 --val-per-class 2 "
              "--size 32 --quiet").exit_code == 0);
  // Global batch 16 of base batch 256: lr 0.00625, and the plan's start min(0.1, 0.00625).
  REQUIRE(run("plan --cluster dgx1:1 --model resnet18 --gpus 1 --batches 16 --buckets-mb 0 --precisions fp32 "
              "--epochs 2 --dataset-images 16 --out " + (dir / "plan.json")).exit_code == 0);
  const json plan = json::parse(read_file(dir / "plan.json"));
  REQUIRE(plan["lr_schedule"]["warmup_start_lr"] == plan["lr_schedule"]["lr"]);
  const std::string args = "train --plan " + (dir / "plan.json") + " --data " + (dir / "data") +
                           " --blocks 1,1 --width 8 --image-size 24 --threads 1 --loader-threads 1 --epochs 2 "
                           "--stop-after 1 --out ";
  // --lr 3.2 puts the peak at 3.2 x 16 / 256 = 0.2: warmup climbs from min(3.2, 0.2), the peak
  // itself, so there is none (it climbed from the plan's 0.00625 before).
  Result r = run(args + (dir / "run") + " --lr 3.2");
  if (skipped_without_onednn(r)) return;
  INFO(r.out);
  REQUIRE(r.exit_code == 0);
  REQUIRE_THAT(r.out, HasText("peak lr 0.2 from the first step"));
  // A start the plan's author set apart from the rule stays.
  json own = plan;
  own["lr_schedule"]["warmup_start_lr"] = 0.001;
  std::ofstream(dir / "own.json") << own.dump();
  r = run("train --plan " + (dir / "own.json") + args.substr(args.find(" --data")) + (dir / "run2") + " --lr 3.2");
  REQUIRE(r.exit_code == 0);
  REQUIRE_THAT(r.out, HasText("warmup from 0.001"));
  // A plan without its (derived) lr runs, keeping its start.
  json bare = plan;
  bare["lr_schedule"].erase("lr");
  std::ofstream(dir / "bare.json") << bare.dump();
  r = run("train --plan " + (dir / "bare.json") + args.substr(args.find(" --data")) + (dir / "run3") + " --lr 3.2");
  REQUIRE(r.exit_code == 0);
  REQUIRE_THAT(r.out, HasText("peak lr 0.2"));
}

TEST_CASE("basin train --plan auto leaves a run's plan alone when it refuses, and resumes by it", "[cli][train]") {
  basin::test::TempDir dir{"train-auto-again"};
  REQUIRE(run("data synth --out " + (dir / "data") + " --classes 2 --train-per-class 8 --val-per-class 2 "
              "--size 32 --quiet").exit_code == 0);
  const std::string args = "train --plan auto --data " + (dir / "data") + tiny + " --epochs 2 --out " + (dir / "run");
  Result first = run(args + " --batch 8 --stop-after 1");
  if (skipped_without_onednn(first)) return;
  INFO(first.out);
  REQUIRE(first.exit_code == 0);
  const std::string plan = read_file(dir / "run/plan.json");
  Result again = run(args + " --batch 4");
  REQUIRE(again.exit_code == 2);
  REQUIRE_THAT(again.out, HasText("checkpoint.basin exists"));
  REQUIRE(read_file(dir / "run/plan.json") == plan);
  Result resumed = run(args + " --batch 8 --resume");
  INFO(resumed.out);
  REQUIRE(resumed.exit_code == 0);
  REQUIRE(read_file(dir / "run/plan.json") == plan);
  // The plan names resnet-custom, whose shape it does not record: refused without --blocks.
  Result bare = run("train --plan " + (dir / "run/plan.json") + " --data " + (dir / "data") + " --out " +
                    (dir / "other"));
  REQUIRE(bare.exit_code == 2);
  REQUIRE_THAT(bare.out, HasText("/model"));
  REQUIRE_FALSE(fs::exists(dir / "other"));
}

TEST_CASE("basin train refuses a negative warmup start and --stop-after 0, and --no-validate needs no val/",
          "[cli][train]") {
  basin::test::TempDir dir{"train-small-flags"};
  REQUIRE(run("data synth --out " + (dir / "data") + " --classes 2 --train-per-class 8 --val-per-class 2 "
              "--size 32 --quiet").exit_code == 0);
  const std::string args = "train --data " + (dir / "data") + tiny + " --batch 8 --epochs 1 --out " + (dir / "run");
  Result r = run(args + " --warmup-start-lr -0.5");
  REQUIRE(r.exit_code == 2);
  REQUIRE_THAT(r.out, HasText("--warmup-start-lr: expected a rate of 0 or more"));
  r = run(args + " --stop-after 0");
  REQUIRE(r.exit_code == 2);
  REQUIRE_THAT(r.out, HasText("--stop-after: expected 1 or more steps"));
  // What only the GPU backend reads is refused on the CPU; a zero size names its flag.
  for (const char* flag : {" --tf32", " --deterministic", " --persistent-batchnorm", " --gpu 1"}) {
    r = run(args + flag);
    REQUIRE(r.exit_code == 2);
    REQUIRE_THAT(r.out, HasText("expected --device gpu with"));
  }
  r = run("train --data " + (dir / "data") + " --blocks 1,1 --width 0 --image-size 24 --batch 8 --out " +
          (dir / "run"));
  REQUIRE(r.exit_code == 2);
  REQUIRE_THAT(r.out, HasText("--width: expected 1 or more channels"));
  REQUIRE_FALSE(fs::exists(dir / "run"));
  // A training-only tree: refused when validating, trained when not.
  fs::remove_all(dir.path / "data" / "val");
  r = run(args);
  REQUIRE(r.exit_code == 2);
  REQUIRE_THAT(r.out, HasText("val/"));
  r = run(args + " --no-validate");
  if (skipped_without_onednn(r)) return;
  INFO(r.out);
  REQUIRE(r.exit_code == 0);
  REQUIRE_THAT(r.out, HasText("\"finished\": true"));
}

TEST_CASE("an interrupted --nproc run stops its ranks, says how to resume, and removes its rendezvous", "[cli][train]") {
  basin::test::TempDir dir{"train-interrupt"};
  REQUIRE(run("data synth --out " + (dir / "data") + " --classes 2 --train-per-class 64 --val-per-class 2 "
              "--size 32 --quiet").exit_code == 0);
  // Long enough (hundreds of steps) that the interrupt lands while the ranks train.
  const std::string args = std::string(BASIN_EXE) + " train --data " + (dir / "data") + tiny +
                           " --batch 4 --epochs 40 --checkpoint-every 5 --nproc 2 --comm-timeout-s 20 --out " +
                           (dir / "run");
  const int status = std::system(("timeout --preserve-status -s INT 3 " + args + " > " + (dir / "out.txt") +
                                  " 2>&1").c_str());
  const std::string said = read_file(dir / "out.txt");
  INFO(said);
  if (said.find("built without oneDNN") != std::string::npos) return;
  REQUIRE(WIFEXITED(status));
  REQUIRE(WEXITSTATUS(status) == 128 + SIGINT);
  REQUIRE_THAT(said, HasText("stopping the ranks; the run resumes from its last checkpoint with --resume"));
  for (const auto& e : fs::directory_iterator(dir.path / "run"))
    REQUIRE_FALSE(e.path().filename().string().starts_with(".rendezvous"));
}

TEST_CASE("a --nproc launcher killed outright takes its ranks with it", "[cli][train]") {
  basin::test::TempDir dir{"train-launcher-killed"};
  REQUIRE(run("data synth --out " + (dir / "data") + " --classes 2 --train-per-class 64 --val-per-class 2 "
              "--size 32 --quiet").exit_code == 0);
  const std::string out = dir / "run";
  const std::string args = std::string(BASIN_EXE) + " train --data " + (dir / "data") + tiny +
                           " --batch 4 --epochs 400 --nproc 2 --comm-timeout-s 20 --out " + out;  // ~90 s
  // The launcher in the background; its pid, then SIGKILL once both ranks have met (the log).
  REQUIRE(std::system(("sh -c '" + args + " > " + (dir / "out.txt") + " 2>&1 & echo $! > " + (dir / "pid") + "'")
                          .c_str()) == 0);
  const std::string launcher = read_file(dir / "pid");
  auto ranks_running = [&](bool stop_them = false) {
    int found = 0;
    for (const auto& p : fs::directory_iterator("/proc")) {
      const std::string name = p.path().filename().string();
      if (name.find_first_not_of("0123456789") != std::string::npos || name + "\n" == launcher) continue;
      std::ifstream in(p.path() / "cmdline");
      std::string cmdline((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      if (cmdline.find(out) == std::string::npos || cmdline.find("train") == std::string::npos) continue;
      ++found;
      if (stop_them) ::kill(std::stoi(name), SIGKILL);
    }
    return found;
  };
  for (int i = 0; i < 300 && !fs::exists(out + "/log.jsonl"); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  const std::string said = read_file(dir / "out.txt");
  INFO(said);
  if (said.find("built without oneDNN") != std::string::npos) return;
  REQUIRE(fs::exists(out + "/log.jsonl"));
  REQUIRE(ranks_running() == 2);
  REQUIRE(std::system(("kill -9 " + launcher).c_str()) == 0);
  int left = 2;
  for (int i = 0; i < 100 && (left = ranks_running()) > 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  CHECK(left == 0);
  ranks_running(/*stop_them=*/true);  // none, unless the check above failed
}

TEST_CASE("a resumed run's summary holds every epoch without validation, across a partial last epoch, and "
          "a finished run's counts",
          "[cli][train]") {
  basin::test::TempDir dir{"train-resume-epochs"};
  REQUIRE(run("data synth --out " + (dir / "data") + " --classes 4 --train-per-class 8 --val-per-class 2 "
              "--size 32 --quiet").exit_code == 0);
  std::ofstream(dir.path / "data" / "train" / fs::directory_iterator(dir.path / "data" / "train")->path().filename() /
                "broken.jpg")
      << "not a JPEG";
  const std::string args = "train --data " + (dir / "data") + tiny +
                           " --batch 8 --lr 0.1 --base-batch 16 --warmup-epochs 1 --milestones 2 --out ";
  auto epochs_of = [&](const std::string& run_dir) {
    std::vector<std::pair<int, double>> out;
    const json summary = json::parse(read_file(dir / (run_dir + "/summary.json")));
    for (const auto& e : summary["epochs"])
      out.emplace_back(e["epoch"].get<int>(), e["train_loss"].get<double>());
    return out;
  };
  // Without validation, stopped and resumed twice (the second time finished): epochs 1 to 3.
  Result r = run(args + (dir / "nv") + " --epochs 3 --no-validate --stop-after 4");
  if (skipped_without_onednn(r)) return;
  REQUIRE(r.exit_code == 0);
  REQUIRE(run(args + (dir / "nv") + " --epochs 3 --no-validate --resume").exit_code == 0);
  const json finished = json::parse(read_file(dir / "nv/summary.json"));
  REQUIRE(finished["skipped_files"] == 1);
  REQUIRE(run(args + (dir / "nv") + " --epochs 3 --no-validate --resume").exit_code == 0);
  REQUIRE(epochs_of("nv").size() == 3);
  REQUIRE(json::parse(read_file(dir / "nv/summary.json"))["skipped_files"] == 1);
  // 2.5 epochs, then given 3: the third epoch's loss is over all its steps, as in one run of 3.
  REQUIRE(run(args + (dir / "part") + " --epochs 2.5").exit_code == 0);
  REQUIRE(run(args + (dir / "part") + " --epochs 3 --resume").exit_code == 0);
  REQUIRE(run(args + (dir / "whole") + " --epochs 3").exit_code == 0);
  const auto part = epochs_of("part"), whole = epochs_of("whole");
  REQUIRE(part.size() == 3);
  for (size_t i = 0; i < 3; ++i) {
    REQUIRE(part[i].first == whole[i].first);
    REQUIRE_THAT(part[i].second, WithinRel(whole[i].second, 1e-12));
  }
}
