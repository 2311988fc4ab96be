// `select`: the per-size choice against the alpha-beta closed forms and Goyal et al.'s finding
// that halving-doubling beats ring between servers.
#include "../catch.h"
#include "../sim/uniform_topologies.h"

#include <basin/plan.h>

#include <cmath>
#include <limits>

using namespace basin;
using basin::test::star;
using namespace basin::plan;
using sim::Algorithm;

namespace {

// Recursive doubling (log p (alpha + n beta)) beats halving-doubling (2 log p alpha +
// 2 (p-1)/p n beta) below n* = log p alpha / (beta (log p - 2 (p-1)/p)).
double rd_hd_crossover(int p, double alpha_s, double GBps) {
  const double lg = std::log2(p), beta = 1 / (GBps * 1e9);
  return lg * alpha_s / (beta * (lg - 2.0 * (p - 1) / p));
}

double crossover_bytes(const topo::Topology& t, double overhead_us) {
  SelectOptions o;
  o.candidates = {{Algorithm::recursive_doubling}, {Algorithm::halving_doubling}};
  o.network.per_message_overhead_us = overhead_us;
  Selection s = select_allreduce(t, o);
  REQUIRE(s.crossovers.size() == 1);
  REQUIRE(s.crossovers[0].from == "recursive-doubling");
  REQUIRE(s.crossovers[0].to == "halving-doubling");
  return s.crossovers[0].bytes;
}

}  // namespace

TEST_CASE("select crossovers sit where the alpha-beta model puts them and move with it", "[plan]") {
  // The ladder doubles, so the first size at which halving-doubling wins is in [n*, 2 n*).
  const int p = 32;
  const double hop_us = 1;
  for (double GBps : {10.0, 20.0})
    for (double overhead_us : {3.0, 8.0}) {
      const double n_star = rd_hd_crossover(p, (2 * hop_us + overhead_us) * 1e-6, GBps);
      const double c = crossover_bytes(star(p, GBps, hop_us), overhead_us);
      CAPTURE(GBps, overhead_us, n_star, c);
      REQUIRE(c >= n_star);
      REQUIRE(c < 2 * n_star);
    }
  // Direction: more latency or more bandwidth moves the crossover to larger messages.
  REQUIRE(crossover_bytes(star(p, 10, hop_us), 20) > crossover_bytes(star(p, 10, hop_us), 3));
  REQUIRE(crossover_bytes(star(p, 40, hop_us), 3) > crossover_bytes(star(p, 10, hop_us), 3));
}

TEST_CASE("on 32 Big Basin servers halving-doubling beats ring until they converge", "[plan]") {
  // One leader per server, as in the inter-server phase of Goyal et al. Latency-bound, the
  // ratio is the step counts' 2 (p-1) / (2 log2 p) = 6.2; bandwidth-bound both move
  // 2 (p-1)/p n over the 6.25 GB/s NIC and converge.
  topo::Topology t = topo::load_any("bigbasin:32");
  SelectOptions o;
  o.ranks = 32;
  o.per_server = 1;
  o.candidates = {{Algorithm::ring}, {Algorithm::halving_doubling}};
  Selection s = select_allreduce(t, o);
  REQUIRE(s.servers == 32);
  // Over Big Basin's Ethernet both also copy the buffer to host memory and back (Gloo over TCP):
  // each copy a 2-hop PCIe route (1 us per hop, link_specs.cc) plus the 5 us per-message
  // overhead, the same for both algorithms, so the step counts set the ratio once it is removed.
  const auto& tiny = s.rows.front();
  const double copies_s = 2 * (2 * 1.0 + 5) * 1e-6;
  REQUIRE_THAT((tiny.time_s[0] - copies_s) / (tiny.time_s[1] - copies_s),
               WithinRel(62.0 / 10.0, 0.01));
  for (const auto& r : s.rows) {
    CAPTURE(r.bytes);
    REQUIRE(r.time_s[1] <= r.time_s[0]);              // halving-doubling never loses
    if (r.bytes <= 4e6) REQUIRE(r.time_s[0] / r.time_s[1] > 1.5);  // up to ~1M floats: clearly
  }
  const auto& huge = s.rows.back();
  REQUIRE(huge.bytes == 8.0 * (1ull << 30));
  REQUIRE(huge.time_s[0] / huge.time_s[1] < 1.01);
  // Bandwidth-bound, Gloo over TCP adds to the 2 (p-1)/p n at 6.25 GB/s a copy each way over PCIe
  // Gen3 x16 (15.754 GB/s of line rate, 128/152 of it payload: 128-byte payloads, 24 bytes of
  // framing, header and LCRC a packet) and, on one core, the sums (31/32 n at 2/3 of the 5.6 GB/s copy rate)
  // and the allgather's copies (31/32 n at 5.6 GB/s): sim.h HostStaging's published figures.
  const double per_byte = 2 / (15.754e9 * 128 / 152) + 2.0 * 31 / 32 / 6.25e9 +
                          31.0 / 32 * (1 / (5.6e9 * 2 / 3) + 1 / 5.6e9);
  REQUIRE_THAT(busbw_GBps(huge.bytes, huge.time_s[1], 32), WithinRel(2.0 * 31 / 32 / per_byte / 1e9, 0.01));
  // With every candidate, small messages go to a latency-optimal (log-step) algorithm.
  SelectOptions all = o;
  all.candidates.clear();
  all.nccl = true;
  Selection a = select_allreduce(t, all);
  std::string small = a.candidates[a.rows.front().best].name();
  CAPTURE(small);
  REQUIRE(small != "ring");
  REQUIRE(small != "nccl-ring/LL");
  REQUIRE(small != "nccl-ring/Simple");
}

TEST_CASE("select rejects more ranks than the cluster has", "[plan]") {
  topo::Topology t = topo::load_any("bigbasin:2");
  SelectOptions o;
  o.ranks = 3;
  o.per_server = 1;
  REQUIRE_THROWS_AS(select_allreduce(t, o), topo::InputError);
  o.ranks = 16;
  o.per_server = 0;
  REQUIRE_NOTHROW(select_allreduce(t, o));
}

TEST_CASE("NCCL rules from a selection cover every size with the fastest NCCL choice", "[plan]") {
  topo::Topology t = topo::load_any("bigbasin:4");
  SelectOptions o;
  o.nccl = true;
  Selection s = select_allreduce(t, o);
  tuner::Selection rules = nccl_rules(s);
  REQUIRE(!rules.rules.empty());
  REQUIRE(rules.rules.front().min_bytes == 0);
  REQUIRE(rules.rules.back().max_bytes == UINT64_MAX);
  for (size_t i = 1; i < rules.rules.size(); ++i) {
    REQUIRE(rules.rules[i].min_bytes == rules.rules[i - 1].max_bytes + 1);
    // Merged: neighbours differ.
    REQUIRE((rules.rules[i].algorithm != rules.rules[i - 1].algorithm ||
             rules.rules[i].protocol != rules.rules[i - 1].protocol));
  }
  for (const auto& row : s.rows) {
    tuner::Query q{tuner::Collective::allreduce, static_cast<std::uint64_t>(row.bytes), 4, 32};
    int k = tuner::find_rule(rules.rules, q);
    REQUIRE(k >= 0);
    // The rule's choice is the fastest NCCL candidate at this size.
    double fastest = 1e30, chosen = -1;
    for (size_t i = 0; i < s.candidates.size(); ++i) {
      const Choice& c = s.candidates[i];
      if (!c.is_nccl()) continue;
      fastest = std::min(fastest, row.time_s[i]);
      const bool same_algo = (c.algorithm == Algorithm::tree) ==
                             (rules.rules[k].algorithm == tuner::Algorithm::tree);
      const tuner::Protocol p = rules.rules[k].protocol;
      const bool same_proto = (c.protocol == Protocol::ll && p == tuner::Protocol::ll) ||
                              (c.protocol == Protocol::ll128 && p == tuner::Protocol::ll128) ||
                              (c.protocol == Protocol::simple && p == tuner::Protocol::simple);
      if (same_algo && same_proto) chosen = row.time_s[i];
    }
    CAPTURE(row.bytes);
    REQUIRE(chosen == fastest);
  }
  // Only for this communicator: another node count matches nothing.
  REQUIRE(tuner::find_rule(rules.rules, {tuner::Collective::allreduce, 1024, 8, 64}) == -1);
  // Round trip through both formats.
  REQUIRE(tuner::parse_selection_json(tuner::format_selection_json(rules), "x") == rules);
  REQUIRE(tuner::parse_nccl_conf(tuner::format_nccl_conf(rules.rules), "x") == rules.rules);
}

TEST_CASE("a size ladder without end is refused", "[plan][select]") {
  const topo::Topology t = topo::load_any("dgx-h100:1");
  for (double max : {std::numeric_limits<double>::infinity(), 1e30, std::nan("")}) {
    CAPTURE(max);
    SelectOptions o;
    o.max_bytes = max;
    REQUIRE_THROWS_AS(select_allreduce(t, o), topo::InputError);
  }
  SelectOptions o;
  o.min_bytes = o.max_bytes = 1ull << 50;  // the largest allowed
  REQUIRE(select_allreduce(t, o).rows.size() == 1);
}

TEST_CASE("NCCL rules from a narrowed ladder cover only the sizes it decided", "[plan][select]") {
  // Rows at 1, 2, ..., 64 MiB: the first decides (512 KiB, 1 MiB], the last nothing above 64 MiB.
  SelectOptions o;
  o.nccl = true;
  o.min_bytes = 1 << 20;
  o.max_bytes = 64 << 20;
  const tuner::Selection rules = nccl_rules(select_allreduce(topo::load_any("dgx-h100:1"), o));
  REQUIRE_FALSE(rules.rules.empty());
  REQUIRE(rules.rules.front().min_bytes == (512u << 10) + 1);
  REQUIRE(rules.rules.back().max_bytes == 64u << 20);
}

TEST_CASE("a per-server count alone takes that many GPUs of every server; more than a server has is an error",
          "[plan][select]") {
  const topo::Topology t = topo::load_any("dgx-b200:2");
  REQUIRE(pick_gpus(t, 0, 4).size() == 8);  // 4 of each of the 2 servers
  try {
    pick_gpus(t, 0, 9);
    FAIL("accepted");
  } catch (const topo::InputError& e) {
    REQUIRE(e.origin == "--per-server");
    REQUIRE_THAT(e.expected, HasText("the 8 GPUs of a server"));
  }
}

TEST_CASE("NCCL rules reach the end when the ladder was asked to, wherever its doubling stops",
          "[plan][select]") {
  // From 3e9 the ladder is 3e9, 6e9: the default --max-bytes (8 GiB) still means "and above".
  SelectOptions o;
  o.nccl = true;
  o.min_bytes = 3e9;
  const tuner::Selection rules = nccl_rules(select_allreduce(topo::load_any("dgx-h100:1"), o));
  REQUIRE(rules.rules.front().min_bytes == 1500000001u);
  REQUIRE(rules.rules.back().max_bytes == UINT64_MAX);
  o.min_bytes = 0.5;  // sizes are whole bytes
  REQUIRE_THROWS_AS(select_allreduce(topo::load_any("dgx-h100:1"), o), topo::InputError);
}
