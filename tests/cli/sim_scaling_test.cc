// `basin sim --scaling`: the sweep's points are the single-configuration predictions of the
// same command, from one server up, and its plot and bad input behave.
#include "../catch.h"
#include "../run_basin.h"
#include "../temp_dir.h"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>

using basin::test::run;

namespace {
nlohmann::json json_of(const std::string& out) { return nlohmann::json::parse(out.substr(out.find('{'))); }
}  // namespace

TEST_CASE("basin sim --scaling predicts each count as basin sim --gpus does", "[cli]") {
  auto r = run("sim --cluster bigbasin:6 --gpus 48 --scaling --json");
  REQUIRE(r.exit_code == 0);
  const auto j = json_of(r.out);
  REQUIRE(j["format"] == "basin.sim_scaling/1");
  // One 8-GPU server, then doubling, then the requested 48.
  std::vector<int> counts;
  for (const auto& p : j["points"]) counts.push_back(p["gpus"]);
  REQUIRE(counts == std::vector<int>{8, 16, 32, 48});
  REQUIRE_THAT(j["points"][0]["scaling_efficiency_vs_one_server"].get<double>(), WithinRel(1.0, 1e-12));
  for (const auto& p : j["points"]) {
    const int gpus = p["gpus"];
    CAPTURE(gpus);
    auto one = run("sim --cluster bigbasin:6 --gpus " + std::to_string(gpus) + " --json");
    REQUIRE(one.exit_code == 0);
    const auto k = json_of(one.out);
    REQUIRE_THAT(p["iteration_s"].get<double>(), WithinRel(k["iteration_s"].get<double>(), 1e-12));
    REQUIRE_THAT(p["scaling_efficiency_vs_one_server"].get<double>(),
                 WithinRel(k["scaling_efficiency_vs_one_server"].get<double>(), 1e-12));
    REQUIRE(p["data_stall_s"].get<double>() == k["breakdown"]["data_stall_s"].get<double>());
  }
}

TEST_CASE("basin sim --scaling --per-server N starts at N GPUs on one server and names each layout", "[cli]") {
  auto r = run("sim --cluster dgx-h100:4 --per-server 4 --scaling --json");
  REQUIRE(r.exit_code == 0);
  const auto j = json_of(r.out);
  // 4 GPUs on each of 1, 2 and 4 servers.
  std::vector<int> counts;
  std::vector<std::vector<int>> layouts;
  for (const auto& p : j["points"]) {
    counts.push_back(p["gpus"]);
    layouts.push_back(p["ranks_per_server"].get<std::vector<int>>());
  }
  REQUIRE(counts == std::vector<int>{4, 8, 16});
  REQUIRE(layouts == std::vector<std::vector<int>>{{4}, {4, 4}, {4, 4, 4, 4}});
  REQUIRE_THAT(j["points"][0]["scaling_efficiency_vs_one_server"].get<double>(), WithinRel(1.0, 1e-12));
  auto one = run("sim --cluster dgx-h100:4 --per-server 4 --gpus 8 --json");
  REQUIRE(one.exit_code == 0);
  REQUIRE_THAT(j["points"][1]["iteration_s"].get<double>(),
               WithinRel(json_of(one.out)["iteration_s"].get<double>(), 1e-12));
  // Servers no route joins: the sweep stops at one server, and says why.
  r = run("sim --cluster dgx-h100:4,fabric=none --scaling");
  REQUIRE(r.exit_code == 0);
  REQUIRE_THAT(r.out, HasText("the sweep stops at one server's 8 GPUs"));
  // The table says it too; uneven servers are spelled out.
  r = run("sim --cluster dgx-h100:3 --per-server 3 --gpus 8 --scaling");
  REQUIRE(r.exit_code == 0);
  REQUIRE_THAT(r.out, HasText("1 x 3"));
  REQUIRE_THAT(r.out, HasText("2 x 3"));
  REQUIRE_THAT(r.out, HasText("3+3+2"));
}

TEST_CASE("basin sim --scaling names what it sweeps and says where compute is an estimate", "[cli]") {
  // No B200 has been measured: its speed is the H100's share of peak (profiles/devices).
  auto r = run("sim --cluster dgx-b200:2 --precision bf16 --scaling");
  REQUIRE(r.exit_code == 0);
  REQUIRE_THAT(r.out, HasText("resnet50 on dgx-b200:2,switch: 32 images/GPU, bf16, hierarchical"));
  REQUIRE_THAT(r.out, HasText("compute: ESTIMATE"));
  auto j = json_of(run("sim --cluster dgx-b200:2 --precision bf16 --scaling --json").out);
  REQUIRE(j["compute_estimated"] == true);
  // The P100 was measured.
  r = run("sim --cluster bigbasin:2 --scaling");
  REQUIRE(r.exit_code == 0);
  REQUIRE_THAT(r.out, HasText("compute: measured"));
  REQUIRE_THAT(r.out, !HasText("ESTIMATE"));
}

TEST_CASE("basin sim --scaling shows the input pipeline's stall and says when it sets the pace", "[cli]") {
  // 14 cores per H100 at 150 images/s each feed 2,100 images/s; one H100 computes 3,976 in bf16
  // (profiles/devices/h100.json): every GPU waits, alike at every count.
  auto r = run("sim --cluster dgx-h100:2 --precision bf16 --batch-per-gpu 256 --scaling");
  REQUIRE(r.exit_code == 0);
  REQUIRE_THAT(r.out, HasText("stall s"));
  REQUIRE_THAT(r.out, HasText("The input pipeline stalls every GPU"));
  // Fed fast enough, it does not.
  r = run("sim --cluster dgx-h100:2 --precision bf16 --batch-per-gpu 256 --scaling --decode-rate 1000");
  REQUIRE(r.exit_code == 0);
  REQUIRE_THAT(r.out, !HasText("The input pipeline stalls"));
}

TEST_CASE("basin sim --scaling --plot writes the curve and the measured points", "[cli]") {
  basin::test::TempDir dir;
  const std::string svg = (dir.path / "scaling.svg").string();
  auto r = run("sim --cluster bigbasin:4 --scaling --plot " + svg + " --measured 16:0.95,32:0.9");
  REQUIRE(r.exit_code == 0);
  REQUIRE_THAT(r.out, HasText("wrote " + svg));
  std::ifstream in(svg);
  std::stringstream text;
  text << in.rdbuf();
  const std::string s = text.str();
  REQUIRE(s.rfind("<svg", 0) == 0);
  REQUIRE_THAT(s, HasText("data-label=\"basin sim\""));
  REQUIRE_THAT(s, HasText("data-label=\"measured\""));
}

TEST_CASE("basin sim --scaling refuses bad measured points and stray plot flags", "[cli]") {
  basin::test::TempDir dir;
  const std::string svg = (dir.path / "no.svg").string();
  for (const char* bad : {"256", "256:x", "0:0.9", "256:0.9,", "256:-1"}) {
    CAPTURE(bad);
    auto r = run(std::string("sim --cluster bigbasin:4 --scaling --plot ") + svg + " --measured '" +
                 bad + "'");
    REQUIRE(r.exit_code == 2);
    REQUIRE_THAT(r.out, HasText("--measured"));
    REQUIRE_FALSE(std::filesystem::exists(svg));
  }
  auto r = run("sim --cluster bigbasin:4 --plot " + svg);
  REQUIRE(r.exit_code == 2);
  REQUIRE_THAT(r.out, HasText("--scaling"));
  REQUIRE_FALSE(std::filesystem::exists(svg));
}
