// `basin plot`: a run's log.jsonl becomes loss.svg and accuracy.svg with a point per record,
// and a bad log is named by file, line and field, with no plot left behind.
#include "../run_basin.h"
#include "../svg_points.h"
#include "../temp_dir.h"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace fs = std::filesystem;
using basin::test::read_file;
using basin::test::run;
using basin::test::series_points;

TEST_CASE("basin plot draws a run's loss and accuracy", "[cli]") {
  basin::test::TempDir dir{"plot"};
  {
    // A log as basin train writes it: step records (no type), validation records, a divergence.
    std::ofstream log(dir / "log.jsonl");
    for (int step = 0; step < 6; ++step)
      log << "{\"step\": " << step << ", \"epoch\": " << step / 3.0 << ", \"loss\": "
          << 2.0 - 0.3 * step << ", \"lr\": 0.1}\n";
    log << "{\"type\": \"val\", \"step\": 3, \"epoch\": 1, \"loss\": 1.6, \"top1\": 0.4, \"top5\": 0.9}\n";
    log << "{\"type\": \"val\", \"step\": 6, \"epoch\": 2, \"loss\": 0.9, \"top1\": 0.7, \"top5\": 1.0}\n";
    log << "{\"type\": \"diverged\", \"step\": 7, \"loss\": \"nan\"}\n";
  }
  auto r = run("plot " + dir.path.string());
  INFO(r.out);
  REQUIRE(r.exit_code == 0);
  const std::string loss = read_file(dir / "loss.svg"), acc = read_file(dir / "accuracy.svg");
  const auto train = series_points(loss, "training loss");
  REQUIRE(train.size() == 6);
  // Falling loss: each point lower on the page (larger y pixel means lower value) is higher.
  for (size_t i = 1; i < train.size(); ++i) REQUIRE(train[i].second > train[i - 1].second);
  REQUIRE(series_points(loss, "validation loss").size() == 2);
  const auto top1 = series_points(acc, "top-1"), top5 = series_points(acc, "top-5");
  REQUIRE(top1.size() == 2);
  REQUIRE(top5.size() == 2);
  REQUIRE(top5[0].second < top1[0].second);  // 90% is drawn above 40%
}

TEST_CASE("basin plot names a bad log's line and field and writes nothing", "[cli]") {
  basin::test::TempDir dir{"plot-bad"};
  {
    std::ofstream log(dir / "log.jsonl");
    log << "{\"step\": 0, \"loss\": 2.0}\n{\"step\": 1, \"loss\": \"high\"}\n";
  }
  auto r = run("plot " + dir.path.string());
  REQUIRE(r.exit_code == 2);
  REQUIRE_THAT(r.out, HasText("log.jsonl"));
  REQUIRE_THAT(r.out, HasText("line 2/loss"));
  REQUIRE_FALSE(fs::exists(dir / "loss.svg"));
  auto missing = run("plot " + (dir / "nowhere"));
  REQUIRE(missing.exit_code == 2);
  REQUIRE_THAT(missing.out, HasText("nowhere"));
}

TEST_CASE("basin plot says an accuracy plot in its directory is not from a log without validation", "[cli]") {
  basin::test::TempDir dir{"plot-stale"};
  std::ofstream(dir / "log.jsonl") << R"({"type": "step", "step": 1, "epoch": 0, "loss": 2.0, "lr": 0.1})" << "\n";
  std::ofstream(dir / "accuracy.svg") << "<svg/>";
  const auto r = run("plot " + dir.path.string());
  INFO(r.out);
  REQUIRE(r.exit_code == 0);
  REQUIRE_THAT(r.out, HasText("accuracy.svg is not from") && HasText("no validation records"));
  REQUIRE(read_file(dir / "accuracy.svg") == "<svg/>");
  REQUIRE(fs::exists(dir / "loss.svg"));
}

TEST_CASE("basin plot leaves out steps skipped for an overflowed loss", "[cli]") {
  basin::test::TempDir dir{"plot-skipped"};
  std::ofstream(dir / "log.jsonl") << R"({"type": "step", "step": 0, "epoch": 0, "loss": 2.0, "lr": 0.1})" << "\n"
                                   << R"({"step": 1, "epoch": 0, "loss": "inf", "lr": 0.1, "skipped": true})" << "\n"
                                   << R"({"step": 2, "epoch": 0, "loss": 1.5, "lr": 0.1})" << "\n";
  const auto r = run("plot " + dir.path.string());
  INFO(r.out);
  REQUIRE(r.exit_code == 0);
  const auto points = series_points(read_file(dir / "loss.svg"));
  REQUIRE(points.size() == 2);
}

TEST_CASE("basin plan --plot draws every Pareto plan of its JSON answer", "[cli]") {
  basin::test::TempDir dir{"plot-plan"};
  const std::string svg = dir / "pareto.svg";
  auto r = run("plan --cluster dgx1:4 --out '' --json --plot " + svg);
  REQUIRE(r.exit_code == 0);
  const std::string out = r.out.substr(r.out.find('{'));
  // The JSON lists the front's plans; the plot draws one vertex per plan on the front's line.
  const auto j = nlohmann::json::parse(out);
  const auto front = series_points(read_file(svg), "Pareto front, dgx1:4");
  REQUIRE(front.size() == j["pareto"].size());
  REQUIRE(front.size() >= 2);
  // Fastest first: time grows to the right, cost does not grow along the front.
  for (size_t i = 1; i < front.size(); ++i) {
    REQUIRE(front[i].first > front[i - 1].first);
    REQUIRE(front[i].second >= front[i - 1].second - 1e-6);
  }
}
