// The `basin` command line end to end: exit codes, errors on stderr, nothing half-written.
#include "../catch.h"
#include "../run_basin.h"

#include <basin/tuner.h>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <string>

namespace fs = std::filesystem;

using basin::test::Result;
using basin::test::run;

TEST_CASE("basin topo with no flags shows 32 Big Basin servers", "[cli]") {
  Result r = run("topo");
  REQUIRE(r.exit_code == 0);
  REQUIRE(r.out.find("32 servers, 256 GPUs") != std::string::npos);
  REQUIRE(r.out.find("s1..s31: like s0") != std::string::npos);
}

TEST_CASE("every format prints something of its own", "[cli]") {
  REQUIRE(run("topo --cluster dgx1 --format matrix").out.find("GPU0     X") != std::string::npos);
  REQUIRE(run("topo --cluster dgx1 --format dot").out.find("graph \"dgx1\" {") != std::string::npos);
  REQUIRE(run("topo --cluster dgx1 --format json").out.find("\"basin.topology/1\"") !=
          std::string::npos);
  REQUIRE(run("topo --cluster bigbasin:2 --route s0/gpu0 s1/gpu0").out.find("6.25 GB/s") !=
          std::string::npos);
  REQUIRE(run("topo --cluster bigbasin:32 --bisection").out.find("100 GB/s") != std::string::npos);
  // A query answers in JSON when asked: Big Basin's one 50 Gb/s NIC per server is 6.25 GB/s,
  // 16 servers on each side of the cut make 100 GB/s.
  const auto route = nlohmann::json::parse(
      run("topo --cluster bigbasin:2 --route s0/gpu0 s1/gpu0 --format json").out);
  REQUIRE_THAT(route["bandwidth_GBps"].get<double>(), WithinRel(6.25, 1e-9));
  REQUIRE(route["links"].size() >= 3);  // GPU to NIC, NIC to switch, switch to NIC, NIC to GPU
  REQUIRE(route["links"].front()["from"] == "s0/gpu0");
  REQUIRE(route["links"].back()["to"] == "s1/gpu0");
  // NVLink at its line rate (18 x 25 GB/s on an H100) and at the rate the simulator times it,
  // NCCL's 20.6 GB/s per link (src/graph/topo.h, SM90_NVLINK_BW).
  const auto nvlink = nlohmann::json::parse(run("topo --cluster dgx-h100 --route gpu0 gpu1 --format json").out);
  REQUIRE_THAT(nvlink["bandwidth_GBps"].get<double>(), WithinRel(450.0, 1e-9));
  REQUIRE_THAT(nvlink["timed_GBps"].get<double>(), WithinRel(18 * 20.6, 1e-9));
  REQUIRE_THAT(route["timed_GBps"].get<double>(), WithinRel(6.25, 1e-9));  // Ethernet: line rate
  const auto cut = nlohmann::json::parse(run("topo --cluster bigbasin:32 --bisection --format json").out);
  REQUIRE_THAT(cut["bisection_GBps_per_direction"].get<double>(), WithinRel(100.0, 1e-9));
  // The route shown is the simulator's: each GPU through its own NIC, though its Grace's other
  // NIC is as wide and as fast (the graph's own search entered through nic71 here).
  const std::string own = run("topo --cluster gb200-nvl72:2 --route s0/gpu5 s1/gpu70").out;
  CAPTURE(own);
  REQUIRE(own.find("s0/nic5 ") != std::string::npos);
  REQUIRE(own.find("s1/nic70 ") != std::string::npos);
  REQUIRE(own.find("s1/nic71 ") == std::string::npos);
  // A fabric switch as an end: the graph's route.
  const Result to_switch = run("topo --cluster dgx-h100:2 --route s0/gpu0 fabric/switch");
  REQUIRE(to_switch.exit_code == 0);
  REQUIRE(to_switch.out.find("50 GB/s bottleneck") != std::string::npos);
}

TEST_CASE("help exists for the program and the verb", "[cli]") {
  Result top = run("--help");
  REQUIRE(top.exit_code == 0);
  REQUIRE(top.out.find("topo") != std::string::npos);
  Result topo = run("topo --help");
  REQUIRE(topo.exit_code == 0);
  REQUIRE(topo.out.find("--cluster") != std::string::npos);
  REQUIRE(topo.out.find("--discover") != std::string::npos);
}

TEST_CASE("bad input to any verb exits 2 with the reason on stderr", "[cli]") {
  auto [args, words] = GENERATE(
      std::pair{"topo --cluster nosuch:4", "nosuch"},
      std::pair{"topo --no-such-flag", "no-such-flag"},
      std::pair{"topo --format pdf", "pdf"},
      std::pair{"topo --cluster /nonexistent/c.json", "/nonexistent/c.json"},
      std::pair{"topo --cluster dgx1 --route gpu0 gpu99", "gpu99"},
      std::pair{"topo --cluster dgx1 --route gpu0 gpu1 --format dot", "json or no --format with --route"},
      std::pair{"topo --cluster dgx1 --route gpu0 gpu1 --bisection", "not both"},
      std::pair{"topo --hwloc-xml /nonexistent/m.xml", "/nonexistent/m.xml"},
      std::pair{"", "subcommand"},
      std::pair{"sim --cluster bigbasin:2 --gpus 17", "--gpus"},
      std::pair{"sim --cluster bigbasin --model vgg16", "expected a network named resnet18"},
      std::pair{"sim --cluster bigbasin:2 --scaling --plot /tmp/basin-cli-never.svg --measured 16:1.5",
                "efficiency in (0, 1]), got '16:1.5'"},
      std::pair{"sim --cluster bigbasin --algorithm telepathy", "telepathy"},
      std::pair{"sim --cluster bigbasin --batch-per-gpu 4096", "fits"},
      std::pair{"sim --cluster bigbasin --precision fp8", "fp8"},
      std::pair{"sim --cluster bigbasin --wire fp4", "--wire"},
      std::pair{"select --cluster bigbasin:2 --ranks 3 --per-server 1", "--ranks"},
      std::pair{"select --cluster bigbasin:2 --min-bytes 0", "min"},
      std::pair{"select --cluster bigbasin:2 --selection /nonexistent/dir/s.json", "/nonexistent/dir"},
      std::pair{"plan --cluster bigbasin:2 --objective speed --out /dev/null", "speed"},
      std::pair{"plan --cluster bigbasin:2 --batches 4096 --out /dev/null", "rejected"},
      std::pair{"plan --cluster bigbasin:2 --algorithms nccl-ring/LL256 --out /dev/null", "LL256"},
      std::pair{"plan --cluster bigbasin:2 --precisions fp32/wire-fp4 --out /dev/null", "fp4"});
  CAPTURE(args);
  Result r = run(args);
  CAPTURE(r.out);
  REQUIRE(r.exit_code == 2);
  REQUIRE(r.out.find(words) != std::string::npos);
}

TEST_CASE("a bad input file writes no --dump output", "[cli]") {
  fs::path dir = fs::temp_directory_path() / "basin-cli-test";
  fs::create_directories(dir);
  fs::path bad = dir / "bad.json", dump = dir / "dump.json";
  fs::remove(dump);
  std::ofstream(bad) << R"({"format": "basin.topology/1", "nodes": [], "links": []})";
  Result r = run("topo --cluster " + bad.string() + " --dump " + dump.string());
  REQUIRE(r.exit_code == 2);
  REQUIRE(r.out.find("/nodes") != std::string::npos);
  REQUIRE_FALSE(fs::exists(dump));
  // And a good one writes a file that loads back through the same command.
  REQUIRE(run("topo --discover --dump " + dump.string()).exit_code == 0);
  Result back = run("topo --cluster " + dump.string() + " --format summary");
  REQUIRE(back.exit_code == 0);
  fs::remove_all(dir);
}

TEST_CASE("basin plan writes the best plan and no file when nothing fits", "[cli]") {
  fs::path dir = fs::temp_directory_path() / "basin-plan-test";
  fs::create_directories(dir);
  fs::path plan = dir / "plan.json";
  fs::remove(plan);
  Result bad = run("plan --cluster bigbasin:2 --batches 4096 --out " + plan.string());
  REQUIRE(bad.exit_code == 2);
  REQUIRE_FALSE(fs::exists(plan));
  Result good = run("plan --cluster bigbasin:2 --precisions fp32 --out " + plan.string());
  CAPTURE(good.out);
  REQUIRE(good.exit_code == 0);
  REQUIRE(good.out.find("Pareto front") != std::string::npos);
  REQUIRE(good.out.find("basin train --plan " + plan.string()) != std::string::npos);
  std::ifstream in(plan);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  REQUIRE(text.find("\"basin.plan/1\"") != std::string::npos);
  // What-if with faster network ports names both and says what bounds each.
  Result what_if =
      run("plan --cluster bigbasin:2 --precisions fp32 --out '' --compare-nic-GBps 50");
  REQUIRE(what_if.exit_code == 0);
  REQUIRE(what_if.out.find("what if") != std::string::npos);
  REQUIRE(what_if.out.find("bound by") != std::string::npos);
  // The paper's three phases between 50 GbE servers run as priced (NCCL inside, Gloo between),
  // but a 16-bit wire's host copies carry fp32, which the plan says.
  Result paper = run("plan --cluster bigbasin:2 --algorithms hierarchical --precisions fp32 --out ''");
  CAPTURE(paper.out);
  REQUIRE(paper.exit_code == 0);
  CHECK(paper.out.find("runs as priced: NCCL's reduce and broadcast in each server") != std::string::npos);
  CHECK(paper.out.find("twice the") == std::string::npos);
  Result narrow = run("plan --cluster bigbasin:2 --algorithms hierarchical --precisions fp32/wire-fp16 --out ''");
  CAPTURE(narrow.out);
  REQUIRE(narrow.exit_code == 0);
  CHECK(narrow.out.find("carry fp32, twice the fp16 wire's bytes priced") != std::string::npos);
  // A spec whose server is a file names it by its absolute path in the plan, as a whole file is.
  REQUIRE(run("topo --cluster pcie8 --dump " + (dir / "box.json").string()).exit_code == 0);
  const std::string relative = fs::relative(dir / "box.json").string();
  REQUIRE(run("plan --cluster " + relative + ":2,fabric=switch --top 1 --out " + plan.string()).exit_code == 0);
  const auto planned = nlohmann::json::parse(std::ifstream(plan));
  CHECK(planned["cluster"] == fs::absolute(dir / "box.json").string() + ":2");
  fs::remove_all(dir);
}

TEST_CASE("basin plan says when its best plan waits for the input pipeline, and by how much", "[cli]") {
  // DGX H100: 2 Xeon Platinum 8480C of 56 cores for 8 GPUs (NVIDIA's DGX H100 datasheet), so 14
  // cores per GPU at the default 150 images/s per core decode 2100 images/s per GPU, far below
  // what an H100 trains ResNet-50 at.
  Result fed_by_cpu = run("plan --cluster dgx-h100:2 --per-server 0 --top 1 --out ''");
  CAPTURE(fed_by_cpu.out);
  REQUIRE(fed_by_cpu.exit_code == 0);
  REQUIRE_THAT(fed_by_cpu.out, HasText("best; bound by input pipeline"));
  REQUIRE_THAT(fed_by_cpu.out, HasText("each GPU is fed about 2100 images/s (14 CPU cores per GPU"));
  REQUIRE_THAT(fed_by_cpu.out, HasText("--decode-rate 150 per core"));
  // Searched as well by default: half of each server's GPUs, each with 28 cores (4200 images/s),
  // as fast at half the GPU-hours (8 GPUs x 4200 = 16 x 2100 images/s).
  Result spread = run("plan --cluster dgx-h100:2 --top 1 --out ''");
  CAPTURE(spread.out);
  REQUIRE(spread.exit_code == 0);
  REQUIRE_THAT(spread.out, HasText("each GPU is fed about 4200 images/s (28 CPU cores per GPU"));
  REQUIRE_THAT(spread.out, HasText("(4 on each of 2 servers)"));
  // Decoding fast enough: nothing waits, and nothing is said.
  Result fast = run("plan --cluster dgx-h100:2 --top 1 --out '' --decode-rate 100000");
  CAPTURE(fast.out);
  REQUIRE(fast.exit_code == 0);
  REQUIRE_THAT(fast.out, !HasText("bound by input pipeline"));
  REQUIRE_THAT(fast.out, !HasText("waits for its input"));
}

TEST_CASE("basin select prints a row per nccl-tests size and the crossovers", "[cli]") {
  Result r = run("select --cluster bigbasin:4 --ranks 4 --per-server 1");
  REQUIRE(r.exit_code == 0);
  REQUIRE(r.out.find("8 B") != std::string::npos);
  REQUIRE(r.out.find("8 GiB") != std::string::npos);  // 2^33 bytes, as nccl-tests' largest
  REQUIRE(r.out.find("crossovers:") != std::string::npos);
  // Which candidates a run can use as timed: between Big Basin's servers (50 GbE) Gloo stages
  // basin's ring [0] and halving-doubling [1], and the three phases [6] run with NCCL inside each
  // server; the rest are designs.
  REQUIRE(r.out.find("runs as timed: on Gloo, staged through host memory [0] [1]; on NCCL in each server and Gloo "
                     "between, one host copy per server [6]; simulated only") != std::string::npos);
  Result h100 = run("select --cluster dgx-h100:2 --nccl");
  REQUIRE(h100.exit_code == 0);
  REQUIRE(h100.out.find("runs as timed: on NCCL [7]") != std::string::npos);
  REQUIRE(h100.out.find("on Gloo") == std::string::npos);  // InfiniBand: nothing staged
  REQUIRE(h100.out.find("nccl-ring/LL128") != std::string::npos);
  // NCCL enables LL128 between servers only with a NIC within a GPU's PCIe switches (PXB, or PXN
  // from a peer GPU): the same servers with their NICs moved onto the CPU lose it.
  auto far = nlohmann::json::parse(run("topo --cluster dgx-h100:2 --format json").out);
  for (auto& link : far["links"])
    if (link["kind"] == "pcie" && link["to"].get<std::string>().find("/nic") != std::string::npos)
      link["from"] = link["to"].get<std::string>().substr(0, link["to"].get<std::string>().find('/')) + "/cpu0";
  const fs::path far_file = fs::temp_directory_path() / "basin-select-far-nics.json";
  std::ofstream(far_file) << far.dump();
  Result far_out = run("select --cluster " + far_file.string() + " --nccl --json");
  REQUIRE(far_out.exit_code == 0);
  const auto far_json = nlohmann::json::parse(far_out.out);
  REQUIRE_FALSE(far_json["libraries"].contains("nccl-ring/LL128"));
  REQUIRE(far_json["libraries"]["nccl-ring/LL"] == "nccl");
  REQUIRE(far_json["libraries"]["ring"] == "simulated-only");
  fs::remove(far_file);
  // The NCCL rules for the tuner plugin, in both formats, load back through its parser.
  fs::path dir = fs::temp_directory_path() / "basin-select-test";
  fs::create_directories(dir);
  Result w = run("select --cluster bigbasin:4 --selection " + (dir / "s.json").string() +
                 " --nccl-conf " + (dir / "s.conf").string());
  CAPTURE(w.out);
  REQUIRE(w.exit_code == 0);
  auto json = basin::tuner::load_rules_file((dir / "s.json").string());
  auto conf = basin::tuner::load_rules_file((dir / "s.conf").string());
  REQUIRE(!json.rules.empty());
  REQUIRE(json.rules == conf.rules);
  REQUIRE(w.out.find("NCCL_COLLNET_ENABLE") == std::string::npos);  // Ethernet: no CollNet
  // Rules that name NVLS across servers (the fastest at 8 GB on 12 DGX H100s with SHARP) need
  // CollNet enabled in NCCL, and the command says so.
  Result sharp = run("select --cluster dgx-h100:12,sharp=on --min-bytes 8589934592 --nccl-conf " +
                     (dir / "sharp.conf").string());
  CAPTURE(sharp.out);
  REQUIRE(sharp.exit_code == 0);
  REQUIRE(basin::test::read_file((dir / "sharp.conf").string()).find("nvls") != std::string::npos);
  REQUIRE(sharp.out.find("set NCCL_COLLNET_ENABLE=1") != std::string::npos);
  fs::remove_all(dir);
}

TEST_CASE("basin sim times NCCL's algorithms as NCCL runs them", "[cli]") {
  auto comm = [](const std::string& algorithm) {
    Result r = run("sim --cluster dgx-h100:2 --precision bf16 --batch-per-gpu 64 --bucket-mb 25 --json --algorithm " +
                   algorithm);
    CAPTURE(r.out);
    REQUIRE(r.exit_code == 0);
    const auto j = nlohmann::json::parse(r.out);
    REQUIRE(j["config"]["algorithm"] == algorithm);
    REQUIRE(j["staged_through_host"] == false);
    return j["breakdown"]["comm_total_s"].get<double>();
  };
  // Two DGX H100s: NCCL's ring runs a channel per GPU, through all 8 NICs; basin's one ring, one.
  REQUIRE(comm("nccl-ring/Simple") < comm("ring") / 4);
  REQUIRE(comm("nccl-tree/LL128") > 0);
  // No protocol: NCCL's tuner's, bucket by bucket, never slower than one protocol for all.
  const double tuned = comm("nccl-ring");
  for (const char* held : {"nccl-ring/LL", "nccl-ring/LL128", "nccl-ring/Simple"}) REQUIRE(tuned <= comm(held) * (1 + 1e-12));
  // "nccl": the tuner picks the algorithm too, never slower than the ring or the tree alone.
  const double stock = comm("nccl");
  REQUIRE(stock <= tuned * (1 + 1e-12));
  REQUIRE(stock <= comm("nccl-tree") * (1 + 1e-12));
}

TEST_CASE("basin select --nccl on one H100 server adds NVLS, and basin plan can name it", "[cli]") {
  Result r = run("select --cluster dgx-h100:1 --nccl");
  CAPTURE(r.out);
  REQUIRE(r.exit_code == 0);
  REQUIRE(r.out.find("[12] nccl-nvls/Simple") != std::string::npos);
  REQUIRE(r.out.find("-> nccl-nvls/Simple") != std::string::npos);  // a crossover to it
  REQUIRE(run("select --cluster dgx-a100:1 --nccl").out.find("nvls") == std::string::npos);
  fs::path dir = fs::temp_directory_path() / "basin-nvls-plan-test";
  fs::create_directories(dir);
  Result p = run("plan --cluster dgx-h100:1 --gpus 8 --batches 64 --precisions bf16 --algorithms "
                 "nccl-nvls/Simple --out " + (dir / "plan.json").string());
  // Lists may be comma-separated: both choices are searched.
  Result both = run("plan --cluster dgx-h100:1 --gpus 4,8 --batches 64 --buckets-mb 25 --precisions bf16 --out '' --algorithms "
                    "nccl-nvls/Simple,nccl-ring/LL128");
  CAPTURE(both.out);
  REQUIRE(both.exit_code == 0);
  REQUIRE(both.out.find("nccl-ring/LL128") != std::string::npos);
  REQUIRE(both.out.find("nccl-nvls/Simple") != std::string::npos);
  REQUIRE(both.out.find("4 configurations simulated in") != std::string::npos);
  CAPTURE(p.out);
  REQUIRE(p.exit_code == 0);
  const auto plan = nlohmann::json::parse(basin::test::read_file((dir / "plan.json").string()));
  REQUIRE(plan["allreduce"]["algorithm"] == "nvls");
  REQUIRE(plan["allreduce"]["protocol"] == "Simple");
  // The plot: each size's winner, NCCL's fastest choice, and the user's nccl-tests figures.
  const std::string svg = (dir / "select.svg").string();
  Result plotted = run("select --cluster dgx-h100:1 --nccl --plot " + svg + " --measured 8589934592:480,268435456:455");
  CAPTURE(plotted.out);
  REQUIRE(plotted.exit_code == 0);
  const std::string s = basin::test::read_file(svg);
  REQUIRE(s.rfind("<svg", 0) == 0);
  for (const char* label : {"nccl-nvls/Simple", "NCCL's fastest choice", "measured"})
    REQUIRE(s.find(std::string("data-label=\"") + label) != std::string::npos);
  REQUIRE(s.find(">2 GiB<") != std::string::npos);  // sizes on the axis, not byte counts
  // Two such servers: NVLS-tree, which a plan names for the GPU trainer to set.
  Result two = run("select --cluster dgx-h100:2 --nccl --min-bytes 1e9");
  CAPTURE(two.out);
  REQUIRE(two.out.find("nccl-nvls-tree/Simple") != std::string::npos);
  Result tree_plan = run("plan --cluster dgx-h100:2 --gpus 16 --batches 64 --precisions bf16 --algorithms "
                         "nccl-nvls-tree/Simple --out " + (dir / "plan2.json").string());
  CAPTURE(tree_plan.out);
  REQUIRE(tree_plan.exit_code == 0);
  const auto plan2 = nlohmann::json::parse(basin::test::read_file((dir / "plan2.json").string()));
  REQUIRE(plan2["allreduce"]["algorithm"] == "nvls-tree");
  REQUIRE(plan2["allreduce"]["protocol"] == "Simple");
  fs::remove_all(dir);
}

TEST_CASE("a topology that states no CPU cores says its input pipeline is not modelled", "[cli]") {
  fs::path dir = fs::temp_directory_path() / "basin-nocores-test";
  fs::create_directories(dir);
  auto t = nlohmann::json::parse(run("topo --cluster dgx-h100 --format json").out);
  for (auto& n : t["nodes"]) n.erase("cores");
  const std::string file = (dir / "nocores.json").string();
  std::ofstream(file) << t.dump();
  Result plan = run("plan --cluster " + file + " --out " + (dir / "p.json").string());
  CAPTURE(plan.out);
  REQUIRE(plan.exit_code == 0);
  REQUIRE(plan.out.find("input pipeline is not modelled") != std::string::npos);
  std::ifstream plan_file(dir / "p.json");
  REQUIRE(nlohmann::json::parse(plan_file)["prediction"]["input_basis"].get<std::string>().rfind("not modelled", 0) == 0);
  Result sim = run("sim --cluster " + file + " --json");
  REQUIRE(sim.exit_code == 0);
  REQUIRE(nlohmann::json::parse(sim.out)["input_basis"].get<std::string>().find("not modelled") != std::string::npos);
  REQUIRE(run("plan --cluster dgx-h100 --out " + (dir / "p.json").string()).out.find("not modelled") ==
          std::string::npos);
  fs::remove_all(dir);
}

TEST_CASE("basin sim says when NCCL would not run the algorithm it was asked to price", "[cli]") {
  // Big Basin's P100s: NCCL enables LL128 from Volta on; basin plan leaves it out there.
  auto r = basin::test::run("sim --cluster bigbasin:2 --algorithm nccl-ring/LL128");
  REQUIRE(r.exit_code == 0);
  REQUIRE_THAT(r.out, HasText("NCCL does not run nccl-ring/LL128 on these 16 GPUs by default"));
  r = basin::test::run("sim --cluster dgx-h100:2 --precision bf16 --algorithm nccl-ring/LL128");
  REQUIRE(r.exit_code == 0);
  REQUIRE_THAT(r.out, !HasText("NCCL does not run"));
}

TEST_CASE("basin sim says how compute jitter moves a run against the GPUs its measurement ran on", "[cli]") {
  // The P100's figure was measured on 8 GPUs (e_8 = 1.42 standard deviations for the slowest);
  // one GPU waits for no one: (1 + 0.3 x 0) / (1 + 0.3 x 1.4236) = 0.701.
  auto r = basin::test::run("sim --cluster bigbasin:1 --gpus 1 --compute-jitter 0.3 --algorithm nccl");
  REQUIRE(r.exit_code == 0);
  REQUIRE_THAT(r.out, HasText("compute x0.701 for jitter 0.3: the slowest of 1 GPUs against the slowest of the 8"));
}

TEST_CASE("basin select and plan say plainly what they found", "[cli]") {
  // One algorithm fastest at every size: no crossover, said.
  auto r = basin::test::run("select");  // 32 Big Basins: hierarchical wins at every size
  REQUIRE(r.exit_code == 0);
  REQUIRE_THAT(r.out, HasText("crossovers: none"));
  // A device borrowing another's measurement names that device's fixed step cost once.
  r = basin::test::run("sim --cluster gb200-nvl72 --precision bf16 --batch-per-gpu 256 --algorithm nccl --json");
  REQUIRE(r.exit_code == 0);
  const std::string basis = nlohmann::json::parse(r.out)["compute_basis"];
  REQUIRE(basis.find("a fixed") != std::string::npos);
  REQUIRE(basis.find("a fixed") == basis.rfind("a fixed"));
  // Each count of rejected plans has an example of its own kind: a deadline's miss for those
  // simulated, an accuracy limit for those turned away before; and the header names the GPU the
  // cluster has (a DGX-1's 16 GB V100), not the profile's part.
  r = basin::test::run("plan --cluster bigbasin:32 --deadline-h 2 --out ''");
  REQUIRE(r.exit_code == 0);
  REQUIRE_THAT(r.out, HasText("past the deadline or budget (e.g. \"misses the deadline"));
  REQUIRE_THAT(r.out, HasText("rejected before simulation (e.g. \"global batch"));
  r = basin::test::run("plan --cluster dgx1:1 --out ''");
  REQUIRE(r.exit_code == 0);
  REQUIRE_THAT(r.out, HasText("on dgx1:1 (Tesla V100-SXM2-16GB)"));
  // --json holds what the table shows: --top rows, the first the best plan, and the rejections.
  r = basin::test::run("plan --cluster bigbasin:32 --deadline-h 2 --json --top 3 --out ''");
  REQUIRE(r.exit_code == 0);
  const auto j = nlohmann::json::parse(r.out.substr(r.out.find('{')));
  REQUIRE(j["rows"].size() == 3);
  REQUIRE(j["rows"][0]["why_not_first"] == "best");
  REQUIRE(j["rows"][0]["gpus"] == j["best"]["world_size"]);
  REQUIRE(j["rows"][1]["time_to_train_h"].get<double>() <= 2);
  REQUIRE(j["rejected_examples"].size() == 2);
  // A plan made for a topology file names it by an absolute path, found from any directory.
  const fs::path dir = fs::temp_directory_path() / "basin-cli-plan-abs";
  fs::create_directories(dir);
  REQUIRE(basin::test::run("topo --cluster pcie8 --format json > " + (dir / "box.json").string()).exit_code == 0);
  r = basin::test::run("plan --cluster " + (dir / "box.json").string() + " --out " + (dir / "p.json").string());
  REQUIRE(r.exit_code == 0);
  const auto plan = nlohmann::json::parse(std::ifstream(dir / "p.json"));
  REQUIRE(fs::path(plan["cluster"].get<std::string>()).is_absolute());
  REQUIRE(fs::exists(plan["cluster"].get<std::string>()));
  fs::remove_all(dir);
}

TEST_CASE("basin sim spreads a run over more servers with --per-server", "[cli]") {
  // Four GPUs on each of two DGX H100: each has its server's 112 cores over 4, 28.
  auto r = basin::test::run("sim --cluster dgx-h100:2 --gpus 8 --per-server 4 --precision fp16 --algorithm nccl");
  REQUIRE(r.exit_code == 0);
  REQUIRE_THAT(r.out, HasText("8 GPUs (at most 4 on each of 2 servers)"));
  REQUIRE_THAT(r.out, HasText("28 CPU cores per GPU: the server's 112 cores shared by the 4 GPUs used there"));
  r = basin::test::run("sim --cluster dgx-h100:2 --gpus 8 --per-server 9");
  REQUIRE(r.exit_code == 2);
  REQUIRE_THAT(r.out, HasText("--per-server"));
}
