// `basin data` end to end: synth writes a dataset that loads, refuses to overwrite, is
// reproducible; bad input exits 2 with the reason.
#include "../catch.h"
#include "../run_basin.h"
#include "data_test_util.h"

namespace fs = std::filesystem;
using namespace basin::data;
using basin::data::test::ScratchDir;

using basin::test::Result;
using basin::test::run;

TEST_CASE("basin data synth writes a dataset that basin data load reads", "[data][cli]") {
  ScratchDir dir("cli");
  const std::string out = (dir.path / "set").string();
  const std::string synth = "data synth --classes 3 --train-per-class 4 --val-per-class 2 --size 40x30 --seed 1";
  Result r = run(synth + " --out " + out);
  CAPTURE(r.out);
  REQUIRE(r.exit_code == 0);
  REQUIRE(r.out.find("18/18 images") != std::string::npos);  // progress
  ImageNetLayout layout = open_imagenet(out);
  REQUIRE(layout.train.classes.size() == 3);
  REQUIRE(layout.train.samples.size() == 12);
  REQUIRE(layout.val.samples.size() == 6);
  REQUIRE(read_jpeg_header(read_file(layout.train.samples[0].path)).width == 40);

  Result load = run("data load --root " + out + " --batch-size 4 --batches 5 --size 24 --threads 2");
  CAPTURE(load.out);
  REQUIRE(load.exit_code == 0);
  REQUIRE(load.out.find("3 classes, 12 train and 6 val images") != std::string::npos);
  REQUIRE(load.out.find("5 batches") != std::string::npos);
  REQUIRE(load.out.find("epoch 1, sample 8 of 12") != std::string::npos);  // 5 x 4 = 12 + 8
  REQUIRE(run("data load --root " + out + " --split val --batches 2 --size 24").exit_code == 0);
  // Decoding only, as the GPU input stage is fed: the same samples, the same position after.
  Result raw = run("data load --root " + out + " --batch-size 4 --batches 5 --size 24 --decode-only");
  CAPTURE(raw.out);
  REQUIRE(raw.exit_code == 0);
  REQUIRE(raw.out.find("decode only") != std::string::npos);
  REQUIRE(raw.out.find("epoch 1, sample 8 of 12") != std::string::npos);

  // Not over a non-empty directory without --force; with it, the same seed writes the same bytes.
  Result again = run(synth + " --out " + out);
  REQUIRE(again.exit_code == 2);
  REQUIRE(again.out.find("--force") != std::string::npos);
  std::vector<std::uint8_t> before = read_file(layout.val.samples[3].path);
  REQUIRE(run(synth + " --quiet --force --out " + out).exit_code == 0);
  REQUIRE(read_file(layout.val.samples[3].path) == before);
}

TEST_CASE("bad input to basin data exits 2 with the reason", "[data][cli]") {
  ScratchDir dir("cli-bad", /*numbered=*/false);
  const std::string d = dir.path.string();
  basin::data::test::write_text(dir.path / "no-val" / "train" / "a" / "1.JPEG", "x");
  basin::data::test::write_text(dir.path / "mismatch" / "train" / "a" / "1.JPEG", "x");
  basin::data::test::write_text(dir.path / "mismatch" / "val" / "b" / "1.JPEG", "x");
  basin::data::test::write_text(dir.path / "file", "x");
  auto [args, words] = GENERATE_COPY(
      std::pair{std::string("data synth --out ") + d + "/x --classes 0", std::string("--classes")},
      std::pair{"data synth --out " + d + "/x --classes 500", std::string("--classes")},
      std::pair{"data synth --out " + d + "/x --size 0", std::string("--size")},
      std::pair{"data synth --out " + d + "/x --size 64xq", std::string("64xq")},
      std::pair{"data synth --out " + d + "/x --train-per-class 0", std::string("--train-per-class")},
      std::pair{"data synth --out " + d + "/file", std::string("file")},
      std::pair{"data synth --classes 3", std::string("--out")},
      std::pair{"data load --root " + d + "/nope", std::string("does not exist")},
      std::pair{"data load --root " + d + "/no-val", std::string("val/")},
      std::pair{"data load --root " + d + "/mismatch", std::string("'b'")},
      std::pair{"data load --root " + d + "/mismatch --split test", std::string("--split")},
      std::pair{"data load --root " + d + "/mismatch --rank 2 --world-size 2", std::string("--rank")},
      std::pair{std::string("data"), std::string("subcommand")});
  CAPTURE(args);
  Result r = run(args);
  CAPTURE(r.out);
  REQUIRE(r.exit_code == 2);
  REQUIRE(r.out.find(words) != std::string::npos);
  REQUIRE_FALSE(fs::exists(dir.path / "x"));
}
