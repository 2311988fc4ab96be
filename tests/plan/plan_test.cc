// `plan`: Goyal et al.'s setting picks what the paper ran, the accuracy limit holds however many
// GPUs there are, the Pareto front is a true front, and the plan file carries the paper's
// learning-rate rule.
#include "../catch.h"

#include <basin/plan.h>

#include <algorithm>
#include <cmath>
#include <set>

using namespace basin;
using namespace basin::plan;
using sim::Algorithm;
using sim::Precision;

namespace {
sim::DeviceProfile profile_for(const topo::Topology& t) {
  return sim::find_device_profile(sim::default_profiles_dir(), t.graph[topo::gpus(t)[0]].model);
}
}  // namespace

TEST_CASE("accuracy penalty passes through Goyal et al.'s published points", "[plan]") {
  REQUIRE(accuracy_penalty_points(256) == 0);
  REQUIRE(accuracy_penalty_points(8192) == 0);
  REQUIRE_THAT(accuracy_penalty_points(16384), WithinAbs(1.2, 1e-12));
  REQUIRE_THAT(accuracy_penalty_points(32768), WithinAbs(4.0, 1e-12));
  REQUIRE_THAT(accuracy_penalty_points(65536), WithinAbs(10.4, 1e-12));
  const double mid = accuracy_penalty_points(11585);  // ~2^13.5
  REQUIRE(mid > 0.5);
  REQUIRE(mid < 0.7);
  REQUIRE(std::isnan(accuracy_penalty_points(131072)));
}

TEST_CASE("Goyal's setting plans 8k with hierarchical halving-doubling in about an hour", "[plan]") {
  // bigbasin:32, ResNet-50, fp32: the paper ran 256 GPUs x 32 = 8k with a 3-phase allreduce and
  // recursive halving-doubling between servers, 90 epochs in about one hour.
  // Among basin's own schedules (Gloo's ring and halving-doubling, and others of their kind), without
  // NCCL's, the planner picks the paper's.
  topo::Topology t = topo::load_any("bigbasin:32");
  PlanOptions o;
  o.precisions = {{Precision::fp32, Precision::fp32}};
  o.batches_per_gpu = {16, 32, 64, 128, 256};
  for (Algorithm a : {Algorithm::ring, Algorithm::halving_doubling, Algorithm::recursive_doubling,
                      Algorithm::bcube})
    o.algorithms.push_back({a});
  for (Algorithm inter : {Algorithm::halving_doubling, Algorithm::ring})
    o.algorithms.push_back({Algorithm::hierarchical, Protocol::none, inter});
  const PlanResult gloo = make_plan(t, profile_for(t), o);
  const PlanRow& paper = gloo.rows.front();
  CAPTURE(paper.gpus, paper.batch_per_gpu, paper.algorithm.name(), paper.time_to_train_h);
  REQUIRE(paper.global_batch == 8192);
  REQUIRE(paper.algorithm.algorithm == Algorithm::hierarchical);
  REQUIRE(paper.algorithm.inter == Algorithm::halving_doubling);
  // Priced as the paper's three phases (NCCL in the servers, Gloo between), which basin train
  // runs as --gpu-collective nccl+gloo; ring and halving-doubling between 50 GbE servers it runs
  // as priced (Gloo's ring_chunked and halving_doubling), the others have no Gloo schedule of
  // their shape.
  REQUIRE(paper.library == "nccl+gloo");
  for (const auto& row : gloo.rows) {
    if (row.gpus <= 8) continue;
    const bool as_gloo = row.algorithm.algorithm == Algorithm::ring ||
                         row.algorithm.algorithm == Algorithm::halving_doubling;
    const bool three_phases = row.algorithm.algorithm == Algorithm::hierarchical;
    REQUIRE(row.library == (as_gloo ? "gloo" : three_phases ? "nccl+gloo" : "simulated-only"));
  }
  REQUIRE(paper.time_to_train_h > 0.75);
  REQUIRE(paper.time_to_train_h < 1.25);

  // The default search adds NCCL's algorithms; the paper's batch and time hold whichever wins.
  o.algorithms.clear();
  o.batches_per_gpu = {16, 32, 64, 128, 256};
  PlanResult r = make_plan(t, profile_for(t), o);
  const PlanRow& best = r.rows.front();
  CAPTURE(best.gpus, best.batch_per_gpu, best.algorithm.name(), best.time_to_train_h);
  REQUIRE(best.global_batch == 8192);
  REQUIRE(best.time_to_train_h > 0.75);
  REQUIRE(best.time_to_train_h < 1.25);
  REQUIRE(best.time_to_train_h <= paper.time_to_train_h * 1.005);
  // Every usable row respects memory and the accuracy limit; batch 256 in fp32 does not fit
  // a 16 GB P100 (PyTorch's step takes 21.0 GiB on an H100) and is listed with the reason.
  for (const auto& row : r.rows) {
    REQUIRE(row.global_batch <= 8192);
    REQUIRE(!(row.batch_per_gpu == 256));
    REQUIRE(row.memory_GB > 0);
    REQUIRE(row.memory_GB <= 16);
  }
  bool memory_reason = false;
  for (const auto& row : r.rejected)
    if (row.batch_per_gpu == 256 && row.rejected.find("GB") != std::string::npos) {
      memory_reason = true;
      REQUIRE(row.memory_GB > 16);
    }
  REQUIRE(memory_reason);
}

TEST_CASE("forbidding accuracy loss keeps the global batch at 8k however many GPUs", "[plan]") {
  topo::Topology t = topo::load_any("bigbasin:128");  // 1,024 GPUs
  PlanOptions o;
  o.precisions = {{Precision::fp32, Precision::fp32}};
  o.algorithms = {{Algorithm::hierarchical}};
  o.buckets_MB = {0};
  PlanResult strict = make_plan(t, profile_for(t), o);
  for (const auto& row : strict.rows) REQUIRE(row.global_batch <= 8192);
  // Tolerating 1.2 points admits 16k, which is faster with more GPUs.
  o.tolerated_loss_points = 1.2;
  PlanResult loose = make_plan(t, profile_for(t), o);
  REQUIRE(loose.rows.front().global_batch == 16384);
  REQUIRE(loose.rows.front().time_to_train_h < strict.rows.front().time_to_train_h);
}

TEST_CASE("the Pareto front of time against cost is a true front", "[plan]") {
  topo::Topology t = topo::load_any("dgx1:4");
  PlanOptions o;
  o.price_per_gpu_hour = 2.5;
  PlanResult r = make_plan(t, profile_for(t), o);
  REQUIRE(!r.cost_in_gpu_hours);
  REQUIRE(r.pareto.size() >= 2);
  for (size_t k = 1; k < r.pareto.size(); ++k) {
    REQUIRE(r.rows[r.pareto[k]].time_to_train_h >= r.rows[r.pareto[k - 1]].time_to_train_h);
    REQUIRE(r.rows[r.pareto[k]].cost * 1.005 < r.rows[r.pareto[k - 1]].cost);  // beyond the tie band
  }
  // No plan beats a point of the front by more than the 0.5% tie band on both time and cost.
  for (int i : r.pareto)
    for (const auto& other : r.rows) {
      const auto& p = r.rows[i];
      bool dominates = other.time_to_train_h * 1.005 < p.time_to_train_h && other.cost * 1.005 < p.cost;
      REQUIRE_FALSE(dominates);
    }
  // With time the objective, the front starts at the plan ranked first. Where the input pipeline
  // sets the pace (a few images a second per core), every batch ties on time and cost within the
  // band: the front's first point is still the first plan, not another 0.04% cheaper.
  REQUIRE(r.pareto.front() == 0);
  PlanOptions starved = o;
  starved.decode_images_per_s_per_core = 20;
  PlanResult fed = make_plan(t, profile_for(t), starved);
  REQUIRE(fed.rows.front().bottleneck() == "input pipeline");
  REQUIRE(fed.pareto.front() == 0);
  // Cost of a row: GPUs x hours x price.
  const auto& b = r.rows.front();
  REQUIRE_THAT(b.cost, WithinRel(b.gpus * b.time_to_train_h * 2.5, 1e-12));
  // Objective cost: nothing more than the documented 0.5% tie band cheaper than the first row,
  // and nothing in that band faster.
  o.objective = Objective::cost;
  PlanResult c = make_plan(t, profile_for(t), o);
  const PlanRow& first = c.rows.front();
  for (const auto& row : c.rows) {
    REQUIRE(row.cost >= first.cost / 1.005);
    if (row.cost <= first.cost) REQUIRE(row.time_to_train_h >= first.time_to_train_h / 1.005);
  }
  // Objective throughput per dollar: images/s over the GPUs' price an hour, no row more than the
  // tie band above the first's.
  // On DGX A100s, where more GPUs buy time at a price per image.
  const topo::Topology a100 = topo::load_any("dgx-a100:4");
  o.objective = Objective::throughput_per_dollar;
  PlanResult per_dollar = make_plan(a100, profile_for(a100), o);
  auto per_dollar_of = [](const PlanRow& row) { return row.images_per_s / (row.gpus * 2.5); };
  for (const auto& row : per_dollar.rows)
    REQUIRE(per_dollar_of(row) <= per_dollar_of(per_dollar.rows.front()) * 1.005);
  // A deadline shorter than the fastest plan leaves nothing: an input error naming the reasons,
  // the deadline's example the nearest miss, the fastest plan there is.
  o.objective = Objective::time;
  // (The first row is the cheapest of those within 0.5% of the fastest, not the fastest.)
  const PlanResult timed = make_plan(t, profile_for(t), o);
  const double fastest = std::min_element(timed.rows.begin(), timed.rows.end(), [](const auto& x, const auto& y) {
                           return x.time_to_train_h < y.time_to_train_h;
                         })->time_to_train_h;
  o.deadline_h = 0.01;
  try {
    make_plan(t, profile_for(t), o);
    FAIL("a plan met a deadline of 36 s");
  } catch (const topo::InputError& e) {
    char text[64];
    std::snprintf(text, sizeof text, "misses the deadline: %.3g h", fastest);
    REQUIRE_THAT(e.expected, HasText(text));
  }
}

TEST_CASE("the plan file carries the linear scaling rule and the prediction", "[plan]") {
  topo::Topology t = topo::load_any("bigbasin:4");
  PlanOptions o;
  o.cluster_spec = "bigbasin:4";
  o.precisions = {{Precision::fp32, Precision::fp32}};
  PlanResult r = make_plan(t, profile_for(t), o);
  const PlanRow& best = r.rows.front();
  nlohmann::json doc = plan_document(r, best, o);
  REQUIRE(doc.at("format") == "basin.plan/1");
  REQUIRE(doc.at("cluster") == "bigbasin:4");
  REQUIRE(doc.at("world_size") == best.gpus);
  REQUIRE(doc.at("global_batch") == best.global_batch);
  // Goyal et al.: lr = 0.1 x kn / 256, 5 warmup epochs, x0.1 at 30, 60, 80.
  REQUIRE_THAT(doc.at("lr_schedule").at("lr").get<double>(),
               WithinRel(0.1 * static_cast<double>(best.global_batch) / 256, 1e-12));
  REQUIRE(doc.at("lr_schedule").at("warmup_epochs") == 5);
  REQUIRE(doc.at("lr_schedule").at("milestones") == nlohmann::json({30, 60, 80}));
  // Warmup climbs from the paper's 0.1, or starts at lr where lr is under it (batch <= 256).
  REQUIRE(best.global_batch > 256);
  REQUIRE(doc.at("lr_schedule").at("warmup_start_lr") == 0.1);
  PlanRow small = best;
  small.global_batch = 64;
  REQUIRE_THAT(plan_document(r, small, o).at("lr_schedule").at("warmup_start_lr").get<double>(),
               WithinRel(0.1 * 64 / 256, 1e-12));
  REQUIRE_THAT(doc.at("prediction").at("time_to_train_h").get<double>(),
               WithinRel(best.time_to_train_h, 1e-12));
  // The command says how the plan's ranks start: on one server --nproc, across servers as
  // torchrun starts them, that many on each.
  REQUIRE(train_command("p.json", best).find("basin train --plan p.json") == 0);
  REQUIRE(best.servers() == 4);
  REQUIRE_THAT(train_command("p.json", best),
               HasText(std::to_string(best.ranks_per_server.front()) + " ranks on each of 4 servers"));
  PlanRow one_server = best;
  one_server.ranks_per_server = {8}, one_server.gpus = 8;
  REQUIRE_THAT(train_command("p.json", one_server), HasText("--nproc 8"));
}

TEST_CASE("plan inputs that cannot work are input errors", "[plan]") {
  topo::Topology t = topo::load_any("bigbasin:2");
  PlanOptions o;
  o.batches_per_gpu = {4096};  // never fits a 16 GB P100
  REQUIRE_THROWS_AS(make_plan(t, profile_for(t), o), topo::InputError);
  o = {};
  o.gpu_counts = {17};
  REQUIRE_THROWS_AS(make_plan(t, profile_for(t), o), topo::InputError);
  o = {};
  o.model = "vgg16";
  REQUIRE_THROWS_AS(make_plan(t, profile_for(t), o), topo::InputError);
  REQUIRE_THROWS_AS(objective_from_string("speed"), topo::InputError);
}

TEST_CASE("gloo_run maps every algorithm name to what Gloo runs, its shape only where it is Gloo's", "[plan]") {
  // Gloo's own classes (comm/README.md): AllreduceRingChunked is reduce-scatter + allgather, the
  // ring basin's simulator prices; AllreduceHalvingDoubling is Goyal et al.'s; bcube's base is 2
  // where basin's schedule uses 4; nothing in Gloo is a tree, a 2d torus or recursive doubling.
  const std::set<std::string> comm_names{"ring_chunked", "halving_doubling", "bcube", "hierarchical"};
  for (const std::string& name : sim::algorithm_names()) {
    const GlooRun g = gloo_run(name);
    CAPTURE(name, g.algorithm);
    CHECK(comm_names.count(g.algorithm) == 1);
    CHECK(g.same_shape == (name == "ring" || name == "halving-doubling" || name == "hierarchical"));
  }
  // The three phases are Gloo's shape where the leaders' schedule is.
  CHECK(gloo_run("hierarchical", "ring").same_shape);
  CHECK_FALSE(gloo_run("hierarchical", "bcube").same_shape);
  CHECK_FALSE(gloo_run("hierarchical", "tree").same_shape);
  CHECK(gloo_run("ring").algorithm == "ring_chunked");
  CHECK(gloo_run("tree").algorithm == "ring_chunked");
  CHECK(gloo_run("auto").algorithm == "halving_doubling");  // NCCL's own choice, run on CPU ranks
  // The three phases keep the plan's algorithm between servers (as Gloo names it); bcube, which
  // comm refuses there, becomes halving-doubling.
  CHECK(gloo_run("hierarchical", "ring").inter == "ring_chunked");
  CHECK(gloo_run("hierarchical", "halving-doubling").inter == "halving_doubling");
  CHECK(gloo_run("hierarchical", "bcube").inter == "halving_doubling");
  CHECK(gloo_run("hierarchical").inter == "halving_doubling");
  CHECK(gloo_run("hierarchical", "hierarchical").inter == "halving_doubling");
}

TEST_CASE("the default search holds to what basin train runs on GPUs", "[plan]") {
  PlanOptions o;
  o.precisions = {{Precision::fp32, Precision::fp32}};
  o.batches_per_gpu = {32};
  o.buckets_MB = {25};
  auto check_rows = [](const PlanResult& r, bool ethernet) {
    REQUIRE_FALSE(r.rows.empty());
    for (const auto& row : r.rows) {
      CAPTURE(row.gpus, row.algorithm.name(), row.library);
      if (row.gpus == 1) {
        REQUIRE(row.library == "none");
        REQUIRE(row.algorithm.is_nccl());  // what the plan file names for a run that reduces nothing
      } else if (row.algorithm.is_nccl()) {
        REQUIRE(row.library == "nccl");
      } else {
        // basin's own schedules only where Gloo stages them through host memory as priced:
        // flat ones between servers joined by Ethernet, and the three phases there with NCCL
        // inside each server; never inside one server, never over InfiniBand.
        REQUIRE(ethernet);
        REQUIRE(row.servers() > 1);
        if (row.algorithm.algorithm == Algorithm::hierarchical) {
          REQUIRE(row.algorithm.inter == Algorithm::halving_doubling);
          REQUIRE(row.library == "nccl+gloo");
        } else {
          REQUIRE((row.algorithm.algorithm == Algorithm::ring || row.algorithm.algorithm == Algorithm::halving_doubling));
          REQUIRE(row.library == "gloo");
        }
      }
    }
  };
  SECTION("Big Basin: 50 GbE between servers") {
    topo::Topology t = topo::load_any("bigbasin:2");
    const PlanResult r = make_plan(t, profile_for(t), o);
    check_rows(r, true);
    bool gloo = false, nccl_inside_a_server = false;
    for (const auto& row : r.rows) {
      gloo |= row.library == "gloo";
      nccl_inside_a_server |= row.library == "nccl" && row.gpus > 1 && row.gpus <= 8;
    }
    REQUIRE(gloo);
    REQUIRE(nccl_inside_a_server);
  }
  SECTION("DGX H100: InfiniBand between servers") {
    topo::Topology t = topo::load_any("dgx-h100:2");
    const PlanResult r = make_plan(t, profile_for(t), o);
    check_rows(r, false);
    // One GPU is a plan too (nothing to reduce), whichever choice comes first in the list.
    REQUIRE(std::any_of(r.rows.begin(), r.rows.end(), [](const PlanRow& row) { return row.gpus == 1; }));
    o.gpu_counts = {1};
    REQUIRE(make_plan(t, profile_for(t), o).rows.size() == 1);
  }
  SECTION("a choice named on --algorithms that runs nowhere beyond one GPU is reported") {
    // Big Basin's P100s predate LL128 (compute capability 6.0); NCCL leaves it off there.
    topo::Topology t = topo::load_any("bigbasin:2");
    o.algorithms = {{Algorithm::tree, Protocol::ll128}, {Algorithm::ring, Protocol::automatic}};
    const PlanResult r = make_plan(t, profile_for(t), o);
    REQUIRE(r.not_run.size() == 1);
    REQUIRE(r.not_run[0].first == "nccl-tree/LL128");
    REQUIRE(r.not_run[0].second == std::vector<int>{2, 4, 8, 16});  // every count above one
    for (const auto& row : r.rows)
      if (row.gpus > 1) REQUIRE(row.algorithm.name() == "nccl-ring");
  }
  SECTION("a choice that skips some GPU counts is reported with them") {
    // hierarchical needs two servers: on one Big Basin server (2, 4, 8 GPUs) it does not run.
    topo::Topology t = topo::load_any("bigbasin:2");
    o.algorithms = {{Algorithm::hierarchical}, {Algorithm::ring, Protocol::automatic}};
    o.gpu_counts = {1, 2, 8, 16};
    o.gpus_per_server = {0};  // packed: 2 and 8 GPUs are one server's
    const PlanResult r = make_plan(t, profile_for(t), o);
    REQUIRE(r.not_run.size() == 1);
    REQUIRE(r.not_run[0].first == "hierarchical(halving-doubling)");
    REQUIRE(r.not_run[0].second == std::vector<int>{2, 8});
    // Spread as well, 2 and 8 GPUs also sit on both servers (1 + 1, 4 + 4), where it runs.
    o.gpus_per_server = {};
    const PlanResult spread = make_plan(t, profile_for(t), o);
    REQUIRE(spread.not_run.empty());
    REQUIRE(std::any_of(spread.rows.begin(), spread.rows.end(), [](const PlanRow& row) {
      return row.gpus == 8 && row.algorithm.algorithm == Algorithm::hierarchical && row.placement() == "2x4";
    }));
    o.gpus_per_server = {0};
    // One GPU only: nothing to skip.
    o.gpu_counts = {1};
    REQUIRE(make_plan(t, profile_for(t), o).not_run.empty());
  }
  SECTION("GPUs a server named: that many on 1, 2, 4, ... servers and on every one") {
    // Four DGX-1s, three GPUs a server: 3, 6 and 12 GPUs are searched (3 x 1, 2, 4 servers),
    // beside the doubling counts; none above the cluster's 32.
    topo::Topology t = topo::load_any("dgx1:4");
    const std::vector<int> counts = default_gpu_counts(t, {3});
    for (int n : {1, 2, 3, 4, 6, 8, 12, 16, 32}) REQUIRE(std::count(counts.begin(), counts.end(), n) == 1);
    REQUIRE(counts.size() == 9);
    REQUIRE(default_gpu_counts(t) == std::vector<int>{1, 2, 4, 8, 16, 32});
    o.algorithms = {{Algorithm::ring, Protocol::automatic}};
    o.gpus_per_server = {3};
    const PlanResult r = make_plan(t, profile_for(t), o);
    REQUIRE(std::any_of(r.rows.begin(), r.rows.end(), [](const PlanRow& row) {
      return row.gpus == 12 && row.ranks_per_server == std::vector<int>{3, 3, 3, 3};
    }));
    o.gpus_per_server = {};
  }
  SECTION("NCCL's own choice of algorithm is a plan that leaves NCCL_ALGO unset") {
    topo::Topology t = topo::load_any("dgx-h100:2");
    o.algorithms = {choice_from_string("nccl")};
    o.gpu_counts = {16};
    const PlanResult r = make_plan(t, profile_for(t), o);
    REQUIRE_FALSE(r.rows.empty());
    const auto doc = plan_document(r, r.rows.front(), o);
    REQUIRE(doc["allreduce"]["algorithm"] == "auto");
    REQUIRE(doc["allreduce"]["library"] == "nccl");
    REQUIRE(doc["allreduce"]["protocol"] == "auto");
  }
  SECTION("a schedule named on --algorithms is searched, and marked as no library's") {
    topo::Topology t = topo::load_any("dgx-h100:2");
    o.algorithms = {{Algorithm::halving_doubling}};
    o.gpu_counts = {16};
    const PlanResult r = make_plan(t, profile_for(t), o);
    REQUIRE_FALSE(r.rows.empty());
    for (const auto& row : r.rows) REQUIRE(row.library == "simulated-only");
    REQUIRE(plan_document(r, r.rows.front(), o)["allreduce"]["library"] == "simulated-only");
  }
}

TEST_CASE("the default search leaves out precisions nothing measured, and marks estimates", "[plan]") {
  // Big Basin's P100 was measured in fp32 only (Goyal et al.); its fp16 speed would be half the
  // datasheet's fp16 peak, a guess that priced it 2.7x the measured fp32.
  topo::Topology t = topo::load_any("bigbasin:2");
  PlanOptions o;
  o.batches_per_gpu = {32};
  PlanResult r = make_plan(t, profile_for(t), o);
  for (const PlanRow& row : r.rows) {
    REQUIRE(row.precision.compute == Precision::fp32);
    REQUIRE_FALSE(row.compute_estimated);
  }
  REQUIRE(r.unmeasured.size() == 1);
  REQUIRE(r.unmeasured.front().first == "fp16");
  REQUIRE_THAT(r.unmeasured.front().second, HasText("peak"));
  // Named, it is planned, and the row and the plan file say what it rests on.
  o.precisions = {{Precision::fp16, Precision::fp16}};
  PlanResult named = make_plan(t, profile_for(t), o);
  REQUIRE(named.unmeasured.empty());
  REQUIRE(named.rows.front().compute_estimated);
  const nlohmann::json doc = plan_document(named, named.rows.front(), o);
  REQUIRE(doc.at("prediction").at("compute_estimated") == true);
  REQUIRE_THAT(doc.at("prediction").at("compute_basis").get<std::string>(), HasText("estimate"));

  // DGX A100: fp32 (TF32) and fp16 measured, bf16 estimated from fp16 at the same peak: all searched.
  topo::Topology a100 = topo::load_any("dgx-a100");
  PlanOptions all;
  all.batches_per_gpu = {128};
  all.gpu_counts = {8};
  PlanResult searched = make_plan(a100, profile_for(a100), all);
  REQUIRE(searched.unmeasured.empty());
  std::set<Precision> seen;
  for (const PlanRow& row : searched.rows) {
    seen.insert(row.precision.compute);
    REQUIRE(row.compute_estimated == (row.precision.compute == Precision::bf16));
  }
  REQUIRE(seen == std::set<Precision>{Precision::fp32, Precision::fp16, Precision::bf16});
}

TEST_CASE("the default search follows the profile's peaks; a named precision without one is refused",
          "[plan]") {
  topo::Topology t = topo::load_any("dgx1");
  PlanOptions o;
  o.batches_per_gpu = {64};
  o.gpu_counts = {8};
  // A profile that states no fp16 peak (and measured none): fp32 alone, no error.
  sim::DeviceProfile fp32_only = profile_for(t);
  fp32_only.peak_TFLOPS_fp16 = 0;
  std::erase_if(fp32_only.measured, [](const auto& m) { return m.precision != Precision::fp32; });
  const PlanResult r = make_plan(t, fp32_only, o);
  REQUIRE_FALSE(r.rows.empty());
  for (const PlanRow& row : r.rows) REQUIRE(row.precision.compute == Precision::fp32);
  // bf16 named on a V100, whose profile states no bf16 peak: the flag plan has is named.
  o.precisions = {{Precision::bf16, Precision::bf16}};
  try {
    make_plan(t, profile_for(t), o);
    FAIL("planned bf16 on a V100");
  } catch (const topo::InputError& e) {
    REQUIRE(e.origin == "--precisions");
    REQUIRE_THAT(e.expected, HasText("got bf16"));
  }
}

TEST_CASE("where the input pipeline binds, fewer GPUs on each of more servers train as fast for less", "[plan]") {
  // Two DGX H100: 112 cores a server (two 56-core sockets), 150 images/s a core. Eight GPUs on
  // one server get 14 cores each (2,100 images/s); four on each of two get 28 (4,200): 8 GPUs
  // spread decode as much as 16 packed, and the H100 trains faster than either feeds it (fp16 at
  // 256 images: 4,911 images/s measured).
  const topo::Topology t = topo::load_any("dgx-h100:2");
  PlanOptions o;
  o.gpu_counts = {8, 16};
  o.batches_per_gpu = {256};
  o.buckets_MB = {25};
  o.precisions = {{Precision::fp16, Precision::fp16}};
  o.gpus_per_server = {0};
  const PlanResult packed = make_plan(t, profile_for(t), o);
  o.gpus_per_server = {};
  const PlanResult searched = make_plan(t, profile_for(t), o);
  const PlanRow& fill = packed.rows.front();
  const PlanRow& best = searched.rows.front();
  REQUIRE(fill.gpus == 16);
  REQUIRE(best.gpus == 8);
  REQUIRE(best.ranks_per_server == std::vector<int>{4, 4});
  REQUIRE_THAT(best.images_per_s, WithinRel(8 * 28 * 150.0, 1e-3));
  REQUIRE_THAT(fill.images_per_s, WithinRel(16 * 14 * 150.0, 1e-3));
  REQUIRE_THAT(best.gpu_hours, WithinRel(fill.gpu_hours / 2, 1e-2));
  // Where compute binds (Big Basin's P100s), packing stays first: spreading only adds network.
  const topo::Topology bb = topo::load_any("bigbasin:4");
  o.batches_per_gpu = {32};
  o.precisions = {{Precision::fp32, Precision::fp32}};
  o.gpu_counts = {16};
  const PlanResult p100 = make_plan(bb, profile_for(bb), o);
  REQUIRE(p100.rows.front().ranks_per_server == std::vector<int>{8, 8});
  REQUIRE(std::any_of(p100.rows.begin(), p100.rows.end(),
                      [](const PlanRow& r) { return r.ranks_per_server.front() < 8; }));
}
