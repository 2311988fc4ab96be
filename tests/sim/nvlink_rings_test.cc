// NCCL's rings inside one server of point-to-point NVLinks (sim/src/nvlink_rings.cc): the rings
// the search finds on the hybrid cube mesh against NVIDIA's description of it, and the time of
// the allreduce over them against the closed form.
#include "../catch.h"

#include <basin/sim.h>

#include <algorithm>
#include <map>

using namespace basin;
using namespace basin::sim;

namespace {

// Every ring visits all ranks once, each hop over a direct NVLink, and no directed pair carries
// more rings than it has links; returns the rings per directed pair.
std::map<std::pair<int, int>, int> check_rings(const topo::Topology& t, const std::vector<topo::Vertex>& gpus,
                                               const std::vector<std::vector<int>>& rings) {
  const int p = static_cast<int>(gpus.size());
  std::map<std::pair<int, int>, int> used;
  for (const auto& ring : rings) {
    std::vector<int> sorted = ring;
    std::sort(sorted.begin(), sorted.end());
    REQUIRE(static_cast<int>(sorted.size()) == p);
    for (int k = 0; k < p; ++k) REQUIRE(sorted[k] == k);
    for (int k = 0; k < p; ++k) {
      const int a = ring[k], b = ring[(k + 1) % p];
      const auto [e, linked] = boost::edge(gpus[a], gpus[b], t.graph);
      REQUIRE(linked);
      REQUIRE(t.graph[e].kind == topo::LinkKind::nvlink);
      REQUIRE(++used[{a, b}] <= t.graph[e].count);
    }
  }
  return used;
}

int nvlinks_each_way(const topo::Topology& t, const std::vector<topo::Vertex>& gpus) {
  int links = 0;
  for (topo::Vertex a : gpus)
    for (topo::Vertex b : gpus)
      if (auto [e, linked] = boost::edge(a, b, t.graph); linked && t.graph[e].kind == topo::LinkKind::nvlink)
        links += t.graph[e].count;
  return links;
}

}  // namespace

TEST_CASE("NCCL's rings on DGX-1 are the cube mesh's three interwoven rings, each both ways", "[sim][rings]") {
  // NVIDIA DGX-1 System Architecture whitepaper (WP-08437-001, 2017): the V100 hybrid cube mesh
  // "can also be thought of as three interwoven rings of single NVLink connections". Run both
  // ways they take every one of a GPU's six NVLinks in each direction once.
  const topo::Topology t = topo::load_any("dgx1");
  const auto gpus = topo::gpus(t);
  const auto rings = nvlink_rings(t, gpus);
  REQUIRE(rings.size() == 6);
  const auto used = check_rings(t, gpus, rings);
  int total = 0;
  for (const auto& [pair, n] : used) total += n;
  REQUIRE(total == nvlinks_each_way(t, gpus));  // 8 GPUs x 6 links, every one used
  REQUIRE(total == 48);
  // Big Basin's P100s have four single NVLinks each: two rings, each both ways, take all of them.
  const topo::Topology bb = topo::load_any("bigbasin");
  const auto bb_rings = nvlink_rings(bb, topo::gpus(bb));
  REQUIRE(bb_rings.size() == 4);
  int bb_total = 0;
  for (const auto& [pair, n] : check_rings(bb, topo::gpus(bb), bb_rings)) bb_total += n;
  REQUIRE(bb_total == 32);  // 8 GPUs x 4 links, every one used
  // GPUs on an NVSwitch have no direct NVLinks: no rings, NCCL's ring is the plain one.
  const topo::Topology h100 = topo::load_any("dgx-h100");
  REQUIRE(nvlink_rings(h100, topo::gpus(h100)).empty());
}

TEST_CASE("the allreduce over DGX-1's six rings runs on all six NVLinks of a GPU, the tree's chains too", "[sim][rings]") {
  // Each step a GPU sends 1/(8 x 6) of the vector on each of its six links, at NCCL's 20 GB/s
  // per V100 NVLink (src/graph/topo.h, SM70_NVLINK_BW); 7 steps of reduce-scatter and 7 of
  // allgather: 14 / (48 x 20 GB/s) per byte, busbw 2 (7/8) / that = 120 GB/s. The ring in rank
  // order crosses PCIe and the CPUs' link between GPUs 3 and 4 and is far slower.
  const topo::Topology t = topo::load_any("dgx1");
  Network net(t);
  const auto gpus = topo::gpus(t);
  const CollectiveCost rings = server_rings_cost(net, gpus);
  REQUIRE_THAT(rings.seconds_per_byte, WithinRel(14.0 / (48 * 20e9), 1e-9));
  REQUIRE(net.cost(allreduce_schedule(Algorithm::ring, 8), gpus).seconds_per_byte > 4 * rings.seconds_per_byte);
  // NCCL's tree there: per channel a chain along a ring, reduced down it and broadcast back up
  // at once. Each direction of a link is a hop of at most two chains (one ring's reduce, the
  // reverse ring's broadcast), 1/6 of the vector each: 2 / (6 x 20 GB/s) per byte.
  REQUIRE_THAT(server_trees_cost(net, gpus).seconds_per_byte, WithinRel(2.0 / (6 * 20e9), 1e-9));
  // On an NVSwitch: the ring in rank order, as before.
  const topo::Topology h100 = topo::load_any("dgx-h100");
  Network nh(h100);
  REQUIRE(server_rings_cost(nh, topo::gpus(h100)).seconds_per_byte ==
          nh.cost(allreduce_schedule(Algorithm::ring, 8), topo::gpus(h100)).seconds_per_byte);
}

TEST_CASE("DGX-1's subsets get the rings their links close, and none where they close none", "[sim][rings]") {
  // DGX-1's first GPUs (the pairs and their bonded links: DGX-1 whitepaper's cube mesh):
  // 0-1 x1, 0-2 x1, 0-3 x2, 1-2 x2, 1-3 x1, 2-3 x2.
  const topo::Topology t = topo::load_any("dgx1");
  const auto all = topo::gpus(t);
  auto first = [&](int n) { return std::vector<topo::Vertex>(all.begin(), all.begin() + n); };
  Network net(t);
  // Three GPUs: GPU 0 has two links to the others, so one cycle, both ways: 2 rings, each GPU
  // sending 1/(3 x 2) a step on each of two links at 20 GB/s; 4 steps: 4 / (6 x 20 GB/s) per
  // byte, busbw 40 GB/s.
  REQUIRE(nvlink_rings(t, first(3)).size() == 2);
  REQUIRE_THAT(server_rings_cost(net, first(3)).seconds_per_byte, WithinRel(4.0 / (6 * 20e9), 1e-9));
  // Four GPUs: GPUs 0 and 1 have four links each, so two cycles (0-1-2-3, 0-2-1-3), 4 rings,
  // 6 steps of 1/(4 x 4) on each of four links: 6 / (16 x 20 GB/s) per byte, busbw 80 GB/s.
  REQUIRE(nvlink_rings(t, first(4)).size() == 4);
  check_rings(t, first(4), nvlink_rings(t, first(4)));
  REQUIRE_THAT(server_rings_cost(net, first(4)).seconds_per_byte, WithinRel(6.0 / (16 * 20e9), 1e-9));
  // Five GPUs: GPU 4's only NVLink among them is to GPU 0, so no cycle: the ring in rank order.
  REQUIRE(nvlink_rings(t, first(5)).empty());
  REQUIRE(server_rings_cost(net, first(5)).seconds_per_byte ==
          net.cost(allreduce_schedule(Algorithm::ring, 5), first(5)).seconds_per_byte);
  REQUIRE(server_trees_cost(net, first(5)).seconds_per_byte ==
          net.cost(allreduce_schedule(Algorithm::tree, 5), first(5)).seconds_per_byte);
  // Two GPUs with two bonded links: one ring per link.
  REQUIRE(nvlink_rings(t, {all[0], all[3]}).size() == 2);
  REQUIRE(nvlink_rings(t, {all[0], all[1]}).size() == 1);
  // On an NVSwitch the tree stays the binary tree in rank order, as before.
  const topo::Topology h100 = topo::load_any("dgx-h100");
  Network nh(h100);
  REQUIRE(server_trees_cost(nh, topo::gpus(h100)).seconds_per_byte ==
          nh.cost(allreduce_schedule(Algorithm::tree, 8), topo::gpus(h100)).seconds_per_byte);
}

TEST_CASE("rings_allreduce takes rank orders that visit every rank once", "[sim][rings]") {
  REQUIRE_THROWS_AS(rings_allreduce({}), std::invalid_argument);
  REQUIRE_THROWS_AS(rings_allreduce({{0, 1, 2}, {}}), std::invalid_argument);
  REQUIRE_THROWS_AS(rings_allreduce({{0, 1, 2}, {0, 2}}), std::invalid_argument);
  REQUIRE_THROWS_AS(rings_allreduce({{0, 1, 1}}), std::invalid_argument);
  const Schedule s = rings_allreduce({{0, 1, 2}, {2, 1, 0}});
  REQUIRE(s.steps.size() == 2);
  REQUIRE(s.steps[0].transfers.size() == 6);
  for (const Transfer& tr : s.steps[0].transfers) REQUIRE_THAT(tr.fraction, WithinRel(1.0 / 6, 1e-12));
}
