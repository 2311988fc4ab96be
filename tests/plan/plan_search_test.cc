// What the planner searches and how it ranks: servers no route joins are planned one server at a
// time, one precision's refusal stays its own, and plans within the model's 0.5% tie wherever they
// fall, the cheaper (or faster) first.
#include "../catch.h"

#include <basin/plan.h>

#include <algorithm>
#include <set>

using namespace basin;
using namespace basin::plan;
using sim::Precision;

namespace {
sim::DeviceProfile profile_for(const topo::Topology& t) {
  return sim::find_device_profile(sim::default_profiles_dir(), t.graph[topo::gpus(t)[0]].model);
}
}  // namespace

TEST_CASE("servers no route joins (fabric=none) are planned one server at a time", "[plan]") {
  const topo::Topology t = topo::load_any("dgx-h100:4,fabric=none");
  PlanOptions o;
  o.batches_per_gpu = {64, 128};
  const PlanResult r = make_plan(t, profile_for(t), o);
  // A DGX H100 has 8 GPUs: counts 1, 2, 4 and 8, all on the first server.
  REQUIRE(r.one_server_only == 8);
  std::set<int> counts;
  for (const PlanRow& row : r.rows) {
    REQUIRE(row.servers() == 1);
    counts.insert(row.gpus);
  }
  REQUIRE(counts == std::set<int>{1, 2, 4, 8});
  // The same servers on a fabric search past one server, and say nothing of it.
  REQUIRE(make_plan(topo::load_any("dgx-h100:4"), profile_for(t), o).one_server_only == 0);
  // At most 2 a server: 1 and 2 GPUs, and a count of 4 is refused as more than that allows.
  PlanOptions two = o;
  two.gpus_per_server = {2};
  const PlanResult r2 = make_plan(t, profile_for(t), two);
  REQUIRE(r2.one_server_only == 2);
  for (const PlanRow& row : r2.rows) REQUIRE(row.gpus <= 2);
  two.gpu_counts = {4};
  REQUIRE_THROWS_AS(make_plan(t, profile_for(t), two), topo::InputError);
  // More GPUs than one server's is refused by name.
  o.gpu_counts = {16};
  try {
    make_plan(t, profile_for(t), o);
    FAIL("16 GPUs on servers no route joins were planned");
  } catch (const topo::InputError& e) {
    REQUIRE(e.origin == "--gpus");
    REQUIRE_THAT(e.expected, HasText("at most 8"));
  }
}

TEST_CASE("a precision that does not fit leaves the other precisions' plans as they are", "[plan]") {
  // Batch 256 in fp32 needs more than a 16 GB V100 has; in fp16 it fits. Searching both must give
  // the fp16 plans the fp16 search alone gives: none of them turned away, none as over a budget.
  const topo::Topology t = topo::load_any("dgx1:1");
  const sim::DeviceProfile v100_16 = sim::device_profile_for(sim::default_profiles_dir(), t, topo::gpus(t));
  REQUIRE(v100_16.memory_GB == 16);  // the DGX-1's GPUs, not the profile's 32 GB part
  PlanOptions o;
  o.batches_per_gpu = {256};
  o.precisions = {{Precision::fp16, Precision::fp16}};
  const PlanResult alone = make_plan(t, v100_16, o);
  o.precisions = {{Precision::fp32, Precision::fp32}, {Precision::fp16, Precision::fp16}};
  const PlanResult both = make_plan(t, v100_16, o);
  REQUIRE(alone.rows.size() > 0);
  REQUIRE(both.rows.size() == alone.rows.size());
  for (const PlanRow& r : both.rejected) {
    CAPTURE(r.rejected);
    REQUIRE(r.precision.compute == Precision::fp32);
    REQUIRE_THAT(r.rejected, HasText("needs about"));
  }
}

TEST_CASE("plans within 0.5% of the best tie wherever they fall, and the cheaper or faster wins", "[plan]") {
  // 16 DGX H100s: the fastest plans take 128 GPUs; 64 GPUs as 4 a server train within 0.5% of
  // them at half the GPU-hours. Every row within 0.5% of the fastest ties with it, so the first
  // is the cheapest of them; a fixed grid of 0.5% bands had split them at a band's edge.
  const topo::Topology t = topo::load_any("dgx-h100:16");
  PlanOptions o;
  const PlanResult r = make_plan(t, profile_for(t), o);
  double fastest = r.rows.front().time_to_train_h;
  for (const PlanRow& row : r.rows) fastest = std::min(fastest, row.time_to_train_h);
  for (const PlanRow& row : r.rows)
    if (row.time_to_train_h <= fastest * 1.005) REQUIRE(row.cost >= r.rows.front().cost * (1 - 1e-3));
  REQUIRE(r.rows.front().time_to_train_h <= fastest * 1.005);
  // A row of the best's group says it ties, and what it loses instead (never a "-0%").
  for (size_t i = 1; i < r.rows.size(); ++i)
    if (r.rows[i].time_to_train_h <= fastest * 1.005) REQUIRE_THAT(r.rows[i].lost, HasText("ties on time to train; "));
    else REQUIRE_THAT(r.rows[i].lost, HasText("% time to train"));
  // Cost per image (throughput per dollar) ranks as cost does: among plans within 0.5% of the
  // cheapest, the fastest first, under either objective.
  const topo::Topology pcie = topo::load_any("pcie8:2");
  o.objective = Objective::cost;
  const PlanResult by_cost = make_plan(pcie, profile_for(pcie), o);
  o.objective = Objective::throughput_per_dollar;
  const PlanResult by_tpd = make_plan(pcie, profile_for(pcie), o);
  REQUIRE(by_tpd.rows.front().gpus == by_cost.rows.front().gpus);
  double cheapest = by_cost.rows.front().cost;
  for (const PlanRow& row : by_cost.rows) cheapest = std::min(cheapest, row.cost);
  for (const PlanRow& row : by_cost.rows)
    if (row.cost <= cheapest * 1.005) REQUIRE(row.time_to_train_h >= by_cost.rows.front().time_to_train_h * (1 - 1e-3));
}
