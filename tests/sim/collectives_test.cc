// Allreduce schedules timed by the network engine against the closed-form alpha-beta-gamma costs
// of Thakur, Rabenseifner & Gropp (2005), and contention against hand-computed shares.
#include "../catch.h"
#include "uniform_topologies.h"

#include <basin/sim.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>

using namespace basin;
using basin::test::full_mesh;
using basin::test::star;
using namespace basin::sim;

namespace {

struct AlphaBeta {
  double alpha, beta, gamma;  // s per message, s per byte sent, s per byte reduced
};

// Closed forms (Thakur et al. 2005, sec. 4; the fold for p != 2^k costs one full-vector
// send-and-reduce before and one full-vector send after; Gloo's binary blocks for
// halving-doubling at p != 2^k, as its allreduce_halving_doubling.h describes them).
double closed_form(Algorithm a, int p, double n, AlphaBeta c) {
  if (p < 2) return 0;
  const int q = 1 << static_cast<int>(std::floor(std::log2(p)));
  const double lg = std::log2(q);
  const double fold = q == p ? 0 : (c.alpha + n * c.beta + n * c.gamma) + (c.alpha + n * c.beta);
  switch (a) {
    case Algorithm::ring:
      return 2 * (p - 1) * c.alpha + 2.0 * (p - 1) / p * n * c.beta + double(p - 1) / p * n * c.gamma;
    case Algorithm::halving_doubling: {
      // Gloo's binary blocks: the largest block b0 sets the reduce-scatter and allgather. Blocks
      // run without waiting for each other, so block b_k hands its shares up (pieces of
      // n/b_{k-1}, each on its own link of the mesh) while b_{k-1} still halves with pieces of
      // n/(2 b_k) >= n/b_{k-1}, and the pieces come back down during the mirrored doubling
      // step: the transfers hide, and what remains is the larger rank's sum of the piece
      // handed up, before it can go on.
      double t = 2 * lg * c.alpha + 2.0 * (q - 1) / q * n * c.beta + double(q - 1) / q * n * c.gamma;
      std::vector<int> blocks;
      for (int b = q; b >= 1; b /= 2)
        if (p & b) blocks.push_back(b);
      for (size_t k = 1; k < blocks.size(); ++k) t += n / blocks[k - 1] * c.gamma;
      return t;
    }
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
  // a Hamiltonian path), so each moves n bytes at 18 GB/s (the 18 of P100's 20 GB/s per NVLink
  // that NCCL's src/graph/topo.h counts on, SM60_NVLINK_BW). Phase 2: halving-doubling among 4
  // leaders over 50 Gb/s: 2 (4-1)/4 n / 6.25 GB/s.
  // GPU to GPU across servers (no host staging: the form for RDMA NICs), asked for explicitly.
  topo::Topology t = topo::load_any("bigbasin:4");
  Network net(t);
  CollectiveCost c = allreduce_cost(net, topo::gpus(t), Algorithm::hierarchical,
                                    Algorithm::halving_doubling,
                                    {.mode = HostStaging::Mode::off});
  double expect = 2 * (1 / 18e9) + 2.0 * 3 / 4 / 6.25e9;
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

TEST_CASE("tree bcube and 2d-torus times equal their single-port closed forms within 1 percent",
          "[sim]") {
  // Closed forms for one full-duplex port per rank: double binary tree 2 h alpha + L n beta
  // with L <= 2 the busiest port's load (Sanders, Speck & Traeff 2009: each inner rank moves n/2
  // up and n/2 to each child in its tree plus n/2 up as a leaf of the other); bcube 2 k alpha + 2 (p-1)/p n beta (k digits, Gloo);
  // 2D-torus 2 (x-1 + y-1) alpha + (2 (x-1)/x + 2 (y-1)/(x y)) n beta (Mikami et al. 2018).
  const double GBps = 25, hop_us = 1, overhead_us = 3;
  const double alpha = (2 * hop_us + overhead_us) * 1e-6, beta = 1 / (GBps * 1e9);
  for (int p : {2, 3, 4, 6, 8, 9, 12, 16, 24, 27, 32, 48, 64}) {
    topo::Topology t = star(p, GBps, hop_us);
    Network net(t, {.per_message_overhead_us = overhead_us});
    auto gpus = topo::gpus(t);
    // Tree height from the parent rule alone: the longest walk to the root. Port load: a rank
    // sends n/2 to its parent and to each child in each tree (and receives as much).
    int h = 0;
    std::vector<double> load(p, 0);
    for (int which : {0, 1}) {
      auto parent = binary_tree_parents(p, which);
      for (int r = 0; r < p; ++r)
        if (parent[r] >= 0) load[r] += 0.5, load[parent[r]] += 0.5;
      std::set<int> roots;
      for (int r = 0; r < p; ++r) {
        int depth = 0, v = r;
        for (; parent[v] >= 0 && depth <= p; v = parent[v]) ++depth;
        REQUIRE(depth < p);  // no cycle
        roots.insert(v);
        h = std::max(h, depth);
      }
      REQUIRE(roots.size() == 1);  // one tree spanning every rank
    }
    const double L = *std::max_element(load.begin(), load.end());
    REQUIRE(L <= 2.0);  // the two-tree bound: no rank inner in both trees
    REQUIRE(h >= static_cast<int>(std::floor(std::log2(p))));
    REQUIRE(h <= static_cast<int>(std::ceil(std::log2(p))) + 1);
    const int k = static_cast<int>(bcube_digits(p, 4).size());
    int product = 1;
    for (int d : bcube_digits(p, 4)) product *= d;
    REQUIRE(product == p);
    const int x = torus_2d_default_width(p), y = p / x;
    REQUIRE(x * y == p);
    CollectiveCost tree = allreduce_cost(net, gpus, Algorithm::tree);
    CollectiveCost bcube = allreduce_cost(net, gpus, Algorithm::bcube);
    CollectiveCost torus = allreduce_cost(net, gpus, Algorithm::torus_2d);
    for (double n : {1e3, 1e6, 1e9}) {
      CAPTURE(p, n, h, k, x);
      REQUIRE_THAT(tree.time_s(n), WithinRel(2 * h * alpha + L * n * beta, 0.01));
      REQUIRE_THAT(bcube.time_s(n), WithinRel(2 * k * alpha + 2.0 * (p - 1) / p * n * beta, 0.01));
      REQUIRE_THAT(torus.time_s(n),
                   WithinRel(2 * (x - 1 + y - 1) * alpha +
                                 (2.0 * (x - 1) / x + 2.0 * (y - 1) / (x * y)) * n * beta,
                             0.01));
    }
  }
}

TEST_CASE("2d-torus rows follow servers and a tree beats a ring on latency at scale", "[sim]") {
  // 8 Big Basin servers: the torus is 8 wide (one row per server). For tiny messages the tree's
  // 2 log2(64) latency terms beat the ring's 2 * 63; for 100 MB the ring's 2(p-1)/p n beats the
  // tree's 2 n over the single NIC.
  topo::Topology t = topo::load_any("bigbasin:8");
  Network net(t, {.per_message_overhead_us = 5});
  auto gpus = topo::gpus(t);
  CollectiveCost ring = allreduce_cost(net, gpus, Algorithm::ring);
  CollectiveCost tree = allreduce_cost(net, gpus, Algorithm::tree);
  REQUIRE(tree.time_s(1e3) < ring.time_s(1e3) / 3);
  REQUIRE(ring.time_s(1e8) < tree.time_s(1e8));
  Schedule s = torus_2d_allreduce(64, 8);
  REQUIRE(s.steps.front().repeat == 7);
  REQUIRE(s.steps.front().transfers[0].dst == 1);  // rank 0's row neighbour is in its server
  REQUIRE_THROWS_AS(torus_2d_allreduce(64, 7), std::invalid_argument);
}

TEST_CASE("routes composed per server and fabric equal whole-graph widest routes", "[sim]") {
  // The engine routes between servers in three pieces (source server, fabric, destination
  // server); topo::route searches the whole graph. They must agree on the links, the width and
  // the latency for every GPU pair of every built-in fabric, at line rate and at the rates the
  // engine times (achievable_view).
  for (const char* spec : {"bigbasin:3", "dgx1:2", "dgx-a100:3,fabric=rail", "dgx-h100:4,fabric=fat-tree:2,leaf-servers=2"})
  for (bool line_rate : {true, false}) {
    const topo::Topology line = topo::load_any(spec);
    const topo::Topology t = line_rate ? line : achievable_view(line);
    Network net(line, {.line_rate = line_rate});
    const auto& g = t.graph;
    auto gpus = topo::gpus(t);
    for (topo::Vertex a : gpus)
      for (topo::Vertex b : gpus) {
        if (a == b) continue;
        topo::Route whole = topo::route(t, a, b);
        const auto& piecewise = net.route(a, b);
        CAPTURE(spec, g[a].id, g[b].id);
        REQUIRE(piecewise.bandwidth_GBps == whole.bandwidth_GBps);
        REQUIRE_THAT(piecewise.latency_s, WithinRel(whole.latency_us * 1e-6, 1e-12));
        REQUIRE(piecewise.links.size() == whole.links.size());
      }
  }
}

TEST_CASE("a bandwidth-bound ring keeps its bottleneck link busy all the time", "[sim]") {
  // 16 GPUs on 2 Big Basin servers: the ring crosses each NIC's 6.25 GB/s port, the narrowest
  // link on it, in every one of its steps. For 1 GB the latency is negligible, so that port is
  // busy (nearly) the whole collective while each NVLink, timed at 18 GB/s, idles most of it.
  topo::Topology t = topo::load_any("bigbasin:2");
  // The network phase alone (GPU to GPU, as over RDMA): Gloo's host copies would idle the port.
  Network net(t, {.per_message_overhead_us = 5});
  CollectiveCost ring = allreduce_cost(net, topo::gpus(t), Algorithm::ring,
                                       Algorithm::halving_doubling,
                                       {.mode = HostStaging::Mode::off});
  auto busiest = busiest_links(t, ring);
  auto u = link_utilization(busiest, ring, 1e9);
  REQUIRE(u.count("ethernet") == 1);
  REQUIRE(u.at("ethernet") > 0.99);
  REQUIRE(u.at("ethernet") <= 1.0);
  REQUIRE(u.at("nvlink") < 0.5);
  // Small messages are latency-bound: the port is mostly idle.
  REQUIRE(link_utilization(busiest, ring, 1e3).at("ethernet") < 0.1);
}

TEST_CASE("host-staged hierarchical allreduce on Big Basin adds the PCIe copies and the CPU sums",
          "[sim]") {
  // Gloo over TCP, 256 KiB and more: NVLink chain reduce and broadcast (n at 18 GB/s each, as
  // above), a
  // device-to-host and a host-to-device copy of n between GPU 0 and socket 0 over PCIe Gen3 x16
  // (8 GT/s x 128/130 x 16 lanes / 8 = 15.754 GB/s of line rate, of which 128-byte payloads in
  // packets of 24 bytes more carry 128/152), halving-doubling between the 4 hosts over
  // 50 Gb/s (2 (4-1)/4 n / 6.25 GB/s), and on one core the sums of the reduce-scatter (n/2 + n/4
  // at 2/3 of the copy rate) and the copies of the allgather (n/4 + n/2 at the copy rate).
  const double pcie = 8.0 * 128 / 130 * 16 / 8 * 1e9 * 128 / 152, copy = 6e9, sum = 4e9;
  topo::Topology t = topo::load_any("bigbasin:4");
  Network net(t);
  HostStaging staging{.mode = HostStaging::Mode::on, .core_copy_GBps = 6};
  CollectiveCost c = allreduce_cost(net, topo::gpus(t), Algorithm::hierarchical,
                                    Algorithm::halving_doubling, staging);
  const double large = 2 / 18e9 + 2 / pcie + 1.5 / 6.25e9 + 0.75 / sum + 0.75 / copy;
  REQUIRE_THAT(c.seconds_per_byte, WithinRel(large, 1e-9));
  // Under 256 KiB all 8 GPUs copy to socket 0 at once: two GPUs share each switch's x16 uplink
  // (the QPI link, 38.4 GB/s, carries four at 9.6 GB/s each and is not the bound), then 7 sums
  // of n on the CPU, the same network phase, and 8 copies back.
  REQUIRE(c.small != nullptr);
  const double small = 2 * (2 / pcie) + 7 / sum + 1.5 / 6.25e9 + 0.75 / sum + 0.75 / copy;
  REQUIRE_THAT(c.small->seconds_per_byte, WithinRel(small, 1e-9));
  REQUIRE(c.small_below_bytes == 256 * 1024);
  REQUIRE_THAT(c.time_s(100e3), WithinRel(c.small->latency_s + 100e3 * small, 1e-9));
  REQUIRE_THAT(c.time_s(1e6), WithinRel(c.latency_s + 1e6 * large, 1e-9));
  // The terms are the phases and add up to the whole.
  double terms = 0;
  for (const CostTerm& term : c.terms) terms += term.seconds_per_byte;
  REQUIRE_THAT(terms, WithinRel(large, 1e-9));
  REQUIRE_THAT(c.without("host reduction").seconds_per_byte,
               WithinRel(large - 0.75 / sum - 0.75 / copy, 1e-9));
}

TEST_CASE("host staging is automatic over Ethernet and absent over InfiniBand", "[sim]") {
  auto has_staging = [](const CollectiveCost& c) {
    return std::any_of(c.terms.begin(), c.terms.end(),
                       [](const CostTerm& t) { return t.name == "pcie host staging"; });
  };
  topo::Topology bb = topo::load_any("bigbasin:2"), dgx = topo::load_any("dgx1:2");
  Network nb(bb), nd(dgx);
  REQUIRE(stages_through_host(bb, {}));
  REQUIRE_FALSE(stages_through_host(dgx, {}));
  REQUIRE(has_staging(allreduce_cost(nb, topo::gpus(bb), Algorithm::hierarchical)));
  REQUIRE_FALSE(has_staging(allreduce_cost(nd, topo::gpus(dgx), Algorithm::hierarchical)));
  // One server has no inter-server phase, so nothing to stage.
  auto one = topo::gpus(bb);
  one.resize(8);
  REQUIRE_FALSE(has_staging(allreduce_cost(nb, one, Algorithm::hierarchical)));
}

TEST_CASE("fastest_of is the lower envelope of its costs' lines", "[sim]") {
  // Lines t = L + b s, in microseconds and microseconds per byte: (1, 3), (5, 2), (10, 1) cross at
  // b = 4 (1 + 3b = 5 + 2b) and b = 5 (5 + 2b = 10 + b); (20, 2.5) is above the envelope
  // everywhere (it would need b < 0 to beat the second or the third).
  auto line = [](double latency_us, double us_per_byte) {
    CollectiveCost c;
    c.latency_s = latency_us * 1e-6;
    c.seconds_per_byte = us_per_byte * 1e-6;
    return c;
  };
  const std::vector<CollectiveCost> lines = {line(10, 1), line(20, 2.5), line(1, 3), line(5, 2)};
  const CollectiveCost envelope = fastest_of(lines);
  for (double b : {0.5, 1.0, 3.9, 4.0, 4.1, 4.5, 5.0, 5.5, 100.0, 1e6}) {
    double least = std::numeric_limits<double>::infinity();
    for (const auto& c : lines) least = std::min(least, c.latency_s + b * c.seconds_per_byte);
    CAPTURE(b);
    REQUIRE_THAT(envelope.time_s(b), WithinRel(least, 1e-12));
  }
  // Three segments, switching where the closed form says.
  REQUIRE(envelope.seconds_per_byte == 1e-6);
  REQUIRE_THAT(envelope.small_below_bytes, WithinRel(5.0, 1e-12));
  REQUIRE(envelope.small->seconds_per_byte == 2e-6);
  REQUIRE_THAT(envelope.small->small_below_bytes, WithinRel(4.0, 1e-12));
  REQUIRE(envelope.small->small->seconds_per_byte == 3e-6);
  REQUIRE(envelope.small->small->small == nullptr);
  // Ties: of two lines with the same latency the flatter serves from 0 bytes; a line through the
  // point where two others cross adds no segment of its own length; identical lines are one.
  const CollectiveCost tie = fastest_of({line(2, 3), line(2, 1)});
  REQUIRE(tie.small == nullptr);
  REQUIRE(tie.seconds_per_byte == 1e-6);
  const CollectiveCost through = fastest_of({line(1, 3), line(9, 1), line(5, 2)});  // all meet at b = 4
  for (double b : {1.0, 4.0, 10.0})
    REQUIRE_THAT(through.time_s(b), WithinRel(std::min({1 + 3 * b, 9 + b, 5 + 2 * b}) * 1e-6, 1e-12));
  REQUIRE(through.small != nullptr);  // the steepest line below 4 bytes, the flattest above
  REQUIRE(through.small->seconds_per_byte == 3e-6);
  REQUIRE(through.small->small == nullptr);
  REQUIRE(fastest_of({line(1, 1), line(1, 1)}).small == nullptr);
  // One line is itself; no lines, a line that already switches, or one that is not finite is a
  // programming error.
  REQUIRE(fastest_of({line(1, 1)}).small == nullptr);
  REQUIRE_THROWS_AS(fastest_of({}), std::invalid_argument);
  // A cost that already changes with size is itself, and its pieces join the envelope where each
  // holds: below 10 bytes (1, 3), from 10 on (2, 0.5), beside the line (5, 1), which wins from 2
  // to 10 bytes (1 + 3b = 5 + b at b = 2) and never after (2 + 0.5b < 5 + b).
  for (double b : {0.5, 3.9, 4.5, 100.0}) REQUIRE_THAT(fastest_of({envelope}).time_s(b), WithinRel(envelope.time_s(b), 1e-12));
  CollectiveCost stepped = line(2, 0.5);
  stepped.small = std::make_shared<const CollectiveCost>(line(1, 3));
  stepped.small_below_bytes = 10;
  const CollectiveCost mixed = fastest_of({stepped, line(5, 1)});
  for (double b : {0.5, 1.9, 2.0, 2.1, 5.0, 9.99, 10.0, 11.0, 1e3}) {
    CAPTURE(b);
    const double least = b < 10 ? std::min(1 + 3 * b, 5 + b) : std::min(2 + 0.5 * b, 5 + b);
    REQUIRE_THAT(mixed.time_s(b), WithinRel(least * 1e-6, 1e-12));
  }
  REQUIRE(mixed.seconds_per_byte == 0.5e-6);  // three pieces: (1, 3), (5, 1) from 2, (2, 0.5) from 10
  REQUIRE(mixed.small_below_bytes == 10);
  REQUIRE(mixed.small->seconds_per_byte == 1e-6);
  REQUIRE_THAT(mixed.small->small_below_bytes, WithinRel(2.0, 1e-12));
  REQUIRE(mixed.small->small->small == nullptr);
  // fastest_segments names which input wins where: A is (1, 1) below 10 bytes and (5, 5) from 10,
  // B (1, 1) throughout. A wins the tie below 10 (the first of equals), B from 10, even though
  // its line there equals A's line below.
  CollectiveCost a = line(5, 5);
  a.small = std::make_shared<const CollectiveCost>(line(1, 1));
  a.small_below_bytes = 10;
  const auto segments = fastest_segments({a, line(1, 1)});
  REQUIRE(segments.size() == 2);
  REQUIRE(segments[0] == std::pair<size_t, double>{0, 0.0});
  REQUIRE(segments[1] == std::pair<size_t, double>{1, 10.0});
  REQUIRE_THROWS_AS(fastest_of({line(1, 1), line(std::numeric_limits<double>::infinity(), 0.5)}),
                    std::invalid_argument);
  REQUIRE_THROWS_AS(fastest_of({line(1, 1), line(std::nan(""), 0.5)}), std::invalid_argument);
  // Phases compose one size class at a time: a cost that switches schedules by size cannot be added.
  CollectiveCost phase = line(1, 1);
  REQUIRE_THROWS_AS(phase.add(envelope), std::invalid_argument);
  REQUIRE_THROWS_AS(CollectiveCost(envelope).add(line(1, 1)), std::invalid_argument);
}
