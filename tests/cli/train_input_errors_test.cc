// Bad input to `basin train` and `basin plot`: recipe numbers that are NaN, infinite or out of
// range (refused with exit 2 before any run directory is made, not trained into a "diverged"
// exit 3 or a silent default), misspelt plan fields, and logs cut off by a killed run.
#include "../catch.h"
#include "../run_basin.h"
#include "../svg_points.h"
#include "../temp_dir.h"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <functional>
#include <string>

namespace fs = std::filesystem;
using basin::test::Result;
using basin::test::read_file;
using basin::test::run;

TEST_CASE("basin train refuses NaN and out-of-range recipe numbers before it starts", "[cli][train][input]") {
  basin::test::TempDir dir{"train-numbers"};
  // Checked before the dataset is opened, so none is needed.
  const std::string base = "train --data " + (dir / "nowhere") + " --out " + (dir / "run") +
                           " --blocks 1,1,1 --width 8 --image-size 32 ";
  auto [flags, named] = GENERATE(
      std::pair{"--momentum nan", "momentum"},
      std::pair{"--weight-decay nan", "weight_decay"},
      std::pair{"--lr inf", "--lr (base_lr)"},
      std::pair{"--gamma -1", "gamma"},
      std::pair{"--gamma nan", "gamma"},
      std::pair{"--bucket-mb nan", "bucket_mb"},
      std::pair{"--warmup-epochs nan", "warmup_epochs"},
      std::pair{"--warmup-start-lr nan", "--warmup-start-lr"},
      std::pair{"--milestones -1", "milestones"},
      std::pair{"--min-scale 0", "min_scale"},
      std::pair{"--min-scale 2", "min_scale"},
      std::pair{"--flip-probability 7", "flip_probability"},
      std::pair{"--checkpoint-every -1", "checkpoint_every"},
      std::pair{"--trace-step -5", "trace_step"},
      std::pair{"--loss-scale dynamic --loss-scale-init 0", "--loss-scale-init (loss_scale.initial)"},
      std::pair{"--threads -3", "--threads"},
      std::pair{"--comm-timeout-s -1", "--comm-timeout-s"});
  CAPTURE(flags);
  const Result r = run(base + flags);
  INFO(r.out);
  REQUIRE(r.exit_code == 2);
  REQUIRE_THAT(r.out, HasText(named));
  REQUIRE_THAT(r.out, HasText("expected"));
  REQUIRE_FALSE(fs::exists(dir / "run"));
}

TEST_CASE("basin train refuses a file as its run directory", "[cli][train][input]") {
  basin::test::TempDir dir{"train-out-file"};
  std::ofstream(dir / "notes.txt") << "mine\n";
  const Result r = run("train --data " + (dir / "nowhere") + " --out " + (dir / "notes.txt") +
                       " --blocks 1,1,1 --width 8 --image-size 32");
  INFO(r.out);
  REQUIRE(r.exit_code == 2);
  REQUIRE_THAT(r.out, HasText("--out"));
  REQUIRE_THAT(r.out, HasText("notes.txt"));
  REQUIRE(read_file(dir / "notes.txt") == "mine\n");
  // A file above it, and a file where the run writes its weights/ directory, are named before
  // the run starts (they failed as a filesystem error, exit 1, or only after the last step).
  const Result below = run("train --data " + (dir / "nowhere") + " --out " + (dir / "notes.txt/run") +
                           " --blocks 1,1,1 --width 8 --image-size 32");
  INFO(below.out);
  REQUIRE(below.exit_code == 2);
  REQUIRE_THAT(below.out, HasText("notes.txt is a file (on the path to"));
  fs::create_directories(dir.path / "old");
  std::ofstream(dir / "old/weights") << "not a directory\n";
  const Result weights = run("train --data " + (dir / "nowhere") + " --out " + (dir / "old") +
                             " --blocks 1,1,1 --width 8 --image-size 32");
  INFO(weights.out);
  REQUIRE(weights.exit_code == 2);
  REQUIRE_THAT(weights.out, HasText("weights/ directory, but"));
  REQUIRE(read_file(dir / "old/weights") == "not a directory\n");
}

TEST_CASE("basin train refused after the dataset is read leaves no run directory", "[cli][train][input]") {
  basin::test::TempDir dir{"train-refused"};
  REQUIRE(run("data synth --out " + (dir / "data") + " --classes 2 --train-per-class 10 "
              "--val-per-class 1 --size 32 --quiet").exit_code == 0);
  // A trailing slash on --out too: the directories --nproc made must still all go.
  const std::string base = "train --data " + (dir / "data") + " --out " + (dir / "run/deeper/") +
                           " --blocks 1,1,1 --width 8 --image-size 32 --threads 1 --quiet ";
  // 20 images: one shard holds at most 20, two ranks' shards 10 each; and nothing to resume.
  auto [flags, named] = GENERATE(std::pair{"--batch 21", "--batch (batch): expected at most 20"},
                                 std::pair{"--batch 11 --nproc 2", "--batch (batch): expected at most 10"},
                                 std::pair{"--resume", "--resume: no checkpoint"});
  CAPTURE(flags);
  const Result r = run(base + flags);
  INFO(r.out);
  if (r.out.find("built without oneDNN") != std::string::npos) {
    WARN("skipped: " << r.out);
    return;
  }
  REQUIRE(r.exit_code == 2);
  REQUIRE_THAT(r.out, HasText(named));
  REQUIRE_FALSE(fs::exists(dir / "run"));
}

TEST_CASE("basin train names a misspelt or fractional field of a plan file", "[cli][train][input]") {
  basin::test::TempDir dir{"train-plan-fields"};
  const std::string plan = dir / "plan.json";
  REQUIRE(run("plan --cluster bigbasin:2 --precisions fp32 --algorithms hierarchical:halving-doubling --out " + plan)
              .exit_code == 0);
  const auto good = nlohmann::json::parse(read_file(plan));
  REQUIRE(good["allreduce"]["algorithm"] == "hierarchical");
  auto train_with = [&](const nlohmann::json& doc) {
    std::ofstream(dir / "edited.json") << doc.dump(2);
    return run("train --plan " + (dir / "edited.json") + " --data " + (dir / "nowhere") + " --out " +
               (dir / "run") + " --world-size 1");
  };
  // "inter" misspelt: read as absent, the run would silently take halving-doubling instead.
  nlohmann::json typo = good;
  typo["allreduce"]["intr"] = typo["allreduce"]["inter"];
  typo["allreduce"].erase("inter");
  Result r = train_with(typo);
  INFO(r.out);
  REQUIRE(r.exit_code == 2);
  REQUIRE_THAT(r.out, HasText("edited.json"));
  REQUIRE_THAT(r.out, HasText("/allreduce/intr"));
  REQUIRE_THAT(r.out, HasText("known fields"));
  typo = good;
  typo["lr_schedule"]["warmup_epoch"] = 5;
  r = train_with(typo);
  REQUIRE(r.exit_code == 2);
  REQUIRE_THAT(r.out, HasText("/lr_schedule/warmup_epoch"));
  // A fractional batch was truncated to a whole one without a word.
  nlohmann::json half = good;
  half["batch_per_device"] = 2.5;
  r = train_with(half);
  REQUIRE(r.exit_code == 2);
  REQUIRE_THAT(r.out, HasText("/batch_per_device"));
  REQUIRE_THAT(r.out, HasText("whole number"));
  // A misspelt algorithm or protocol would run Gloo's nearest stand-in; a global batch or lr
  // that disagrees with the fields it follows from leaves which one was meant to a guess.
  const std::pair<std::function<void(nlohmann::json&)>, const char*> edits[] = {
      {[](nlohmann::json& d) { d["allreduce"]["algorithm"] = "rnig"; }, "/allreduce/algorithm"},
      {[](nlohmann::json& d) { d["allreduce"]["inter"] = "halving-doublnig"; }, "/allreduce/inter"},
      {[](nlohmann::json& d) { d["allreduce"]["protocol"] = "bogus"; }, "/allreduce/protocol"},
      {[](nlohmann::json& d) { d["global_batch"] = d["global_batch"].get<int>() * 2; }, "/global_batch"},
      {[](nlohmann::json& d) { d["lr_schedule"]["lr"] = 0.5; }, "/lr_schedule/lr"},
      {[](nlohmann::json& d) { d["model"] = "resnet51"; }, "/model"},
  };
  for (const auto& [edit, pointer] : edits) {
    nlohmann::json bad = good;
    edit(bad);
    r = train_with(bad);
    INFO(r.out);
    REQUIRE(r.exit_code == 2);
    REQUIRE_THAT(r.out, HasText(std::string("edited.json: ") + pointer));
  }
  // Step decay's gamma and milestones are not asked of a cosine plan: it reads on to the data.
  nlohmann::json cosine = good;
  cosine["lr_schedule"]["decay"] = "cosine";
  cosine["lr_schedule"].erase("gamma");
  cosine["lr_schedule"].erase("milestones");
  r = train_with(cosine);
  INFO(r.out);
  REQUIRE(r.exit_code == 2);
  REQUIRE_THAT(r.out, !HasText("/lr_schedule/") && HasText("nowhere"));
  REQUIRE_FALSE(fs::exists(dir / "run"));
}

TEST_CASE("a plan's value out of range is named by the plan's field, a flag's by the flag", "[cli][train][input]") {
  basin::test::TempDir dir{"train-plan-values"};
  REQUIRE(run("data synth --out " + (dir / "data") + " --classes 2 --train-per-class 4 --val-per-class 2 "
              "--size 32 --quiet").exit_code == 0);
  REQUIRE(run("plan --cluster dgx1:1 --model resnet18 --gpus 1 --batches 16 --buckets-mb 0 --precisions fp32 "
              "--epochs 1 --dataset-images 16 --out " + (dir / "plan.json")).exit_code == 0);
  nlohmann::json plan = nlohmann::json::parse(read_file(dir / "plan.json"));
  plan["lr_schedule"]["base_lr"] = -1;
  plan["lr_schedule"]["lr"] = -1.0 * plan["global_batch"].get<double>() / plan["lr_schedule"]["base_batch"].get<double>();
  std::ofstream(dir / "negative.json") << plan.dump(2);
  const std::string args = "train --plan " + (dir / "negative.json") + " --data " + (dir / "data") +
                           " --blocks 1,1 --width 8 --image-size 24 --threads 1 --loader-threads 1 --out ";
  Result r = run(args + (dir / "run"));
  INFO(r.out);
  REQUIRE(r.exit_code == 2);
  REQUIRE_THAT(r.out, HasText("negative.json: /lr_schedule/base_lr: expected more than 0"));
  r = run(args + (dir / "run") + " --lr -2");
  REQUIRE(r.exit_code == 2);
  REQUIRE_THAT(r.out, HasText("--lr (base_lr): expected more than 0"));
  REQUIRE_FALSE(fs::exists(dir / "run"));
}

TEST_CASE("basin plot draws a log whose last line a killed run cut off", "[cli][input]") {
  basin::test::TempDir dir{"plot-torn"};
  {
    // basin train flushes whole lines; a kill mid-write leaves the last one without its end.
    std::ofstream log(dir / "log.jsonl");
    log << "{\"step\": 0, \"loss\": 2.0}\n{\"step\": 1, \"loss\": 1.5}\n{\"step\": 2, \"lo";
  }
  Result r = run("plot " + dir.path.string());
  INFO(r.out);
  REQUIRE(r.exit_code == 0);
  REQUIRE_THAT(r.out, HasText("line 3 is cut off"));
  REQUIRE(basin::test::series_points(read_file(dir / "loss.svg"), "training loss").size() == 2);
  // A bad line that is not the last, or a last line with its newline, is still an error.
  std::ofstream(dir / "log.jsonl") << "{\"step\": 0, \"loss\": 2.0}\n{\"step\": 1, \"lo\n";
  r = run("plot " + dir.path.string());
  REQUIRE(r.exit_code == 2);
  REQUIRE_THAT(r.out, HasText("line 2"));
}

TEST_CASE("basin plot names a record type it does not know and a bad --out-dir", "[cli][input]") {
  basin::test::TempDir dir{"plot-type"};
  std::ofstream(dir / "log.jsonl")
      << "{\"step\": 0, \"loss\": 2.0}\n"
      << "{\"type\": \"vall\", \"step\": 1, \"epoch\": 1, \"loss\": 1.6, \"top1\": 0.4, \"top5\": 0.9}\n";
  Result r = run("plot " + dir.path.string());
  INFO(r.out);
  REQUIRE(r.exit_code == 2);
  REQUIRE_THAT(r.out, HasText("log.jsonl"));
  REQUIRE_THAT(r.out, HasText("line 2/type"));
  REQUIRE_THAT(r.out, HasText("vall"));
  REQUIRE_FALSE(fs::exists(dir / "loss.svg"));
  std::ofstream(dir / "log.jsonl") << "{\"step\": 0, \"loss\": 2.0}\n";
  // A missing --out-dir is made; one under a file cannot be, and is named.
  r = run("plot " + dir.path.string() + " --out-dir " + (dir / "new/plots"));
  REQUIRE(r.exit_code == 0);
  REQUIRE(fs::exists(dir / "new/plots/loss.svg"));
  r = run("plot " + dir.path.string() + " --out-dir " + (dir / "log.jsonl/plots"));
  REQUIRE(r.exit_code == 2);
  REQUIRE_THAT(r.out, HasText("--out-dir"));
  REQUIRE_THAT(r.out, HasText(dir / "log.jsonl/plots"));
  REQUIRE(read_file(dir / "log.jsonl") == "{\"step\": 0, \"loss\": 2.0}\n");
}
