// Allreduce schedules timed by the network engine against the closed-form alpha-beta-gamma costs
// of Thakur, Rabenseifner & Gropp (2005), and contention against hand-computed shares.
#include "../catch.h"

#include <basin/sim.h>

#include <cmath>

using namespace basin;
using namespace basin::sim;

namespace {

// p GPUs, every ordered pair joined by its own link: no contention, uniform alpha and beta.
topo::Topology full_mesh(int p, double GBps, double latency_us) {
  topo::Topology t;
  t.name = "mesh";
  std::vector<topo::Vertex> v;
  for (int i = 0; i < p; ++i) {
    topo::Node n{.id = "gpu" + std::to_string(i), .kind = topo::NodeKind::gpu};
    n.index = i;
    v.push_back(topo::add_node(t, n));
  }
  for (int i = 0; i < p; ++i)
    for (int j = i + 1; j < p; ++j)
      topo::add_link(t, v[i], v[j],
                     {.kind = topo::LinkKind::nvlink, .bandwidth_GBps = GBps,
                      .latency_us = latency_us});
  return t;
}

struct AlphaBeta {
  double alpha, beta, gamma;  // s per message, s per byte sent, s per byte reduced
};

// Closed forms (Thakur et al. 2005, sec. 4; the fold for p != 2^k costs one full-vector
// send-and-reduce before and one full-vector send after).
double closed_form(Algorithm a, int p, double n, AlphaBeta c) {
  if (p < 2) return 0;
  const int q = 1 << static_cast<int>(std::floor(std::log2(p)));
  const double lg = std::log2(q);
  const double fold = q == p ? 0 : (c.alpha + n * c.beta + n * c.gamma) + (c.alpha + n * c.beta);
  switch (a) {
    case Algorithm::ring:
      return 2 * (p - 1) * c.alpha + 2.0 * (p - 1) / p * n * c.beta + double(p - 1) / p * n * c.gamma;
    case Algorithm::halving_doubling:
      return 2 * lg * c.alpha + 2.0 * (q - 1) / q * n * c.beta + double(q - 1) / q * n * c.gamma +
             fold;
    case Algorithm::recursive_doubling:
      return lg * (c.alpha + n * c.beta + n * c.gamma) + fold;
    default: return -1;
  }
}

}  // namespace

TEST_CASE("flat allreduce times equal their closed-form alpha-beta costs within 1 percent",
          "[sim]") {
  const double GBps = 25, latency_us = 2, overhead_us = 3, reduce_GBps = 100;
  const AlphaBeta c{(latency_us + overhead_us) * 1e-6, 1 / (GBps * 1e9), 1 / (reduce_GBps * 1e9)};
  for (int p : {2, 3, 4, 5, 6, 7, 8, 12, 13, 16, 24, 31, 32, 48, 63, 64}) {
    topo::Topology t = full_mesh(p, GBps, latency_us);
    Network net(t, {.per_message_overhead_us = overhead_us, .reduce_GBps = reduce_GBps});
    auto gpus = topo::gpus(t);
    for (Algorithm a : {Algorithm::ring, Algorithm::halving_doubling, Algorithm::recursive_doubling}) {
      CollectiveCost cost = allreduce_cost(net, gpus, a);
      for (double n : {1e3, 1e4, 1e6, 1e8, 1e9}) {
        CAPTURE(p, to_string(a), n);
        REQUIRE_THAT(cost.time_s(n), WithinRel(closed_form(a, p, n, c), 0.01));
      }
    }
  }
}

TEST_CASE("schedules move the bytes their algorithm documents", "[sim]") {
  // Bytes sent per rank, in units of n: ring and halving-doubling 2(p-1)/p (Gloo's docs),
  // recursive doubling log2(p).
  for (int p : {2, 4, 8, 16, 64}) {
    auto sent_by_rank0 = [](const Schedule& s) {
      double sum = 0;
      for (const Step& st : s.steps)
        for (const Transfer& t : st.transfers)
          if (t.src == 0) sum += t.fraction * st.repeat;
      return sum;
    };
    auto steps = [](const Schedule& s) {
      int n = 0;
      for (const Step& st : s.steps) n += st.repeat;
      return n;
    };
    CAPTURE(p);
    REQUIRE_THAT(sent_by_rank0(ring_allreduce(p)), WithinRel(2.0 * (p - 1) / p, 1e-12));
    REQUIRE(steps(ring_allreduce(p)) == 2 * (p - 1));
    REQUIRE(ring_allreduce(p).steps.size() == 2);  // 2(p-1) identical steps stored twice
    REQUIRE_THAT(sent_by_rank0(halving_doubling_allreduce(p)), WithinRel(2.0 * (p - 1) / p, 1e-12));
    REQUIRE(steps(halving_doubling_allreduce(p)) == 2 * static_cast<int>(std::log2(p)));
    REQUIRE_THAT(sent_by_rank0(recursive_doubling_allreduce(p)), WithinRel(std::log2(p), 1e-12));
  }
  REQUIRE(ring_allreduce(1).steps.empty());
  REQUIRE(halving_doubling_allreduce(1).steps.empty());
}

TEST_CASE("two flows over one link take twice as long as one", "[sim]") {
  // a and b both send through switch s to c: the s->c link is shared.
  topo::Topology t;
  auto node = [&](const char* id, topo::NodeKind k) {
    return topo::add_node(t, {.id = id, .kind = k});
  };
  auto a = node("a", topo::NodeKind::gpu), b = node("b", topo::NodeKind::gpu);
  auto c = node("c", topo::NodeKind::gpu), s = node("s", topo::NodeKind::pcie_switch);
  for (auto v : {a, b, c})
    topo::add_link(t, v, s, {.kind = topo::LinkKind::pcie, .bandwidth_GBps = 10});
  Network net(t);
  double one = net.transfer_time_s({{a, c}}, {1e9});
  double two = net.transfer_time_s({{a, c}, {b, c}}, {1e9, 1e9});
  REQUIRE_THAT(one, WithinRel(0.1, 1e-9));
  REQUIRE_THAT(two, WithinRel(2 * one, 1e-9));
  // Unequal sizes: both at 5 GB/s until the small one ends at 0.1 s, then the big one alone at
  // 10 GB/s for its remaining 1.5 GB: 0.25 s in all.
  REQUIRE_THAT(net.transfer_time_s({{a, c}, {b, c}}, {0.5e9, 2e9}), WithinRel(0.25, 1e-9));
  // Opposite directions do not share: links are full duplex.
  REQUIRE_THAT(net.transfer_time_s({{a, c}, {c, a}}, {1e9, 1e9}), WithinRel(one, 1e-9));
}

TEST_CASE("a ring across a 2 to 1 oversubscribed fat tree slows by the uplink share", "[sim]") {
  // 4 Big Basin servers, 2 per leaf, 2 spines. A leaf's uplink to each spine carries
  // 2 servers x 6.25 GB/s / ratio / 2 spines: 6.25 GB/s at 1:1, 3.125 GB/s at 2:1. A ring over one
  // GPU per server crosses between leaves once in each direction, so at 1:1 its narrowest hop is
  // the 50 Gb/s NIC and at 2:1 the 3.125 GB/s uplink: twice as slow per byte.
  auto leaders = [](const topo::Topology& t) {
    std::vector<topo::Vertex> v;
    for (int s = 0; s < 4; ++s) v.push_back(*topo::find_node(t, "s" + std::to_string(s) + "/gpu0"));
    return v;
  };
  topo::Topology full = topo::load_any("bigbasin:4,fabric=fat-tree:1,leaf-servers=2");
  topo::Topology over = topo::load_any("bigbasin:4,fabric=fat-tree:2,leaf-servers=2");
  Network nf(full), no(over);
  CollectiveCost cf = nf.cost(ring_allreduce(4), leaders(full));
  CollectiveCost co = no.cost(ring_allreduce(4), leaders(over));
  REQUIRE_THAT(cf.seconds_per_byte, WithinRel(2.0 * 3 / 4 / 6.25e9, 1e-9));
  REQUIRE_THAT(co.seconds_per_byte / cf.seconds_per_byte, WithinRel(2.0, 1e-9));
}

TEST_CASE("hierarchical allreduce on Big Basin is NVLink chains plus the leaders' network phase",
          "[sim]") {
  // Phase 1 and 3: a chain through all 8 GPUs of a server exists over NVLink (the cube mesh has
  // a Hamiltonian path), so each moves n bytes at 20 GB/s. Phase 2: halving-doubling among 4
  // leaders over 50 Gb/s: 2 (4-1)/4 n / 6.25 GB/s.
  topo::Topology t = topo::load_any("bigbasin:4");
  Network net(t);
  CollectiveCost c = allreduce_cost(net, topo::gpus(t), Algorithm::hierarchical,
                                    Algorithm::halving_doubling);
  double expect = 2 * (1 / 20e9) + 2.0 * 3 / 4 / 6.25e9;
  REQUIRE_THAT(c.seconds_per_byte, WithinRel(expect, 1e-9));
  REQUIRE(c.latency_s > 0);
}

TEST_CASE("unknown algorithm names are input errors listing the known ones", "[sim]") {
  REQUIRE(algorithm_from_string("ring") == Algorithm::ring);
  try {
    algorithm_from_string("telepathy");
    FAIL("accepted");
  } catch (const topo::InputError& e) {
    REQUIRE(std::string(e.what()).find("halving-doubling") != std::string::npos);
    REQUIRE(std::string(e.what()).find("telepathy") != std::string::npos);
  }
}
