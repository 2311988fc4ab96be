// NCCL's channels spread over every NIC as close to a GPU as its closest: a server of four PCIe
// GPUs and two 100 GbE NICs on one PCIe switch, where one GPU a server drives both NICs (NVIDIA
// nccl#804: "NCCL already support one GPU two NICs [in all_reduce], and the bandwidth of these
// two NICs can be fully utilized"), and where a GPU has one closest NIC nothing moves.
#include "../catch.h"

#include <basin/plan.h>
#include <basin/sim.h>

#include <nlohmann/json.hpp>

#include <map>
#include <set>
#include <string>

using namespace basin;

namespace {

// Four GPUs and two 100 GbE NICs (12.5 GB/s each way) under one PCIe Gen4 switch, itself under
// the CPU: every GPU reaches both NICs by the same two PCIe links.
topo::Topology two_nic_box() {
  nlohmann::json doc = {{"format", "basin.topology/1"}, {"name", "4 GPUs, 2 NICs on one switch"}};
  doc["nodes"] = {{{"id", "cpu0"}, {"kind", "cpu"}, {"numa", 0}, {"cores", 32}},
                  {{"id", "sw0"}, {"kind", "pcie_switch"}}};
  doc["links"] = nlohmann::json::array();
  auto pcie4 = [&](const std::string& from, const std::string& to) {
    doc["links"].push_back({{"from", from}, {"to", to}, {"kind", "pcie"}, {"generation", 4}, {"width", 16},
                            {"bandwidth_GBps", 31.5}, {"latency_us", 1.0}});
  };
  pcie4("cpu0", "sw0");
  for (int i = 0; i < 4; ++i) {
    const std::string id = "gpu" + std::to_string(i);
    doc["nodes"].push_back({{"id", id}, {"kind", "gpu"}, {"index", i}, {"model", "NVIDIA L40S"},
                            {"memory_GB", 48}, {"numa", 0}});
    pcie4("sw0", id);
  }
  for (int k = 0; k < 2; ++k) {
    const std::string id = "nic" + std::to_string(k);
    doc["nodes"].push_back({{"id", id}, {"kind", "nic"}, {"port_GBps", 12.5}, {"port_kind", "ethernet"}});
    pcie4("sw0", id);
  }
  return topo::from_json(doc, "two-nic box");
}

constexpr double kNicBps = 12.5e9;

}  // namespace

TEST_CASE("a GPU's closest NICs are those it reaches as well as its own, its own first", "[plan][nics]") {
  const topo::Topology t = topo::build_cluster(two_nic_box(), 2, topo::FabricSpec{});
  sim::Network net(t);
  // GPUs 0 and 1 own NIC 0 (GPU i takes NIC i * 2 / 4), 2 and 3 NIC 1; both NICs are as close.
  const auto gpus = plan::pick_gpus(t, 8, 4);
  REQUIRE(net.closest_nics(gpus[1]) == std::vector<int>{0, 1});
  REQUIRE(net.closest_nics(gpus[2]) == std::vector<int>{1, 0});
  // On a DGX H100 each GPU has its own NIC on its own PCIe switch; on a DGX-1 two GPUs share a
  // switch with their NIC; pcie8's NICs hang off one CPU each. One closest NIC a GPU, its own:
  // there the channels cross as the routes choose, as before.
  for (const char* cluster : {"dgx-h100:2", "dgx-b200:2", "dgx1:2", "pcie8:2"}) {
    CAPTURE(cluster);
    const topo::Topology other = topo::load_any(cluster);
    sim::Network other_net(other);
    const auto other_gpus = plan::pick_gpus(other, 16, 8);
    for (int i = 0; i < 16; ++i) {
      CAPTURE(i);
      const auto& closest = other_net.closest_nics(other_gpus[i]);
      REQUIRE(closest.size() == 1);
      REQUIRE(other_net.nics(i / 8)[closest.front()] == other_net.own_nic_of(other_gpus[i]));
    }
  }
  // A DGX A100 has two NICs on each GPU pair's switch: both are closest to either GPU.
  const topo::Topology a100 = topo::load_any("dgx-a100:2");
  sim::Network a100_net(a100);
  const auto a100_gpus = plan::pick_gpus(a100, 16, 8);
  REQUIRE(a100_net.closest_nics(a100_gpus[0]) == std::vector<int>{0, 1});
  REQUIRE(a100_net.closest_nics(a100_gpus[1]) == std::vector<int>{1, 0});
  REQUIRE(a100_net.closest_nics(a100_gpus[14]) == std::vector<int>{6, 7});
}

TEST_CASE("NCCL's ring and tree from one or two GPUs a server use both NICs beside them", "[plan][nics]") {
  // A ring allreduce of p ranks sends 2(p-1)/p of the vector out of each server and takes as much
  // in (the ranks of a server are adjacent in every channel's ring). Over two NICs of 12.5 GB/s,
  // with each GPU's PCIe link (31.5 x 128/152 = 26.5 GB/s of payload) wider than both together,
  // that takes 2(p-1)/p / 25 GB/s. Over one NIC, as a single ring or a GPU's own NIC alone
  // gives, twice that.
  const topo::Topology t = topo::build_cluster(two_nic_box(), 2, topo::FabricSpec{});
  sim::Network net(t, {.per_message_overhead_us = 0, .reduce_GBps = 0});
  for (int per_server : {1, 2}) {
    CAPTURE(per_server);
    const int p = 2 * per_server;
    const auto gpus = plan::pick_gpus(t, p, per_server);
    const double moved = 2.0 * (p - 1) / p;
    const sim::CollectiveCost rings = sim::channel_rings_cost(net, gpus);
    REQUIRE_THAT(rings.seconds_per_byte, WithinRel(moved / (2 * kNicBps), 1e-6));
    // Both NICs of server 0 carry the same share each way.
    std::set<int> busy_nics;
    for (const auto& [link, busy] : rings.busy_s_per_byte)
      for (topo::Edge e : boost::make_iterator_range(boost::edges(t.graph)))
        if (t.graph[e].id == link && t.graph[e].kind == topo::LinkKind::ethernet &&
            t.graph[boost::source(e, t.graph)].kind == topo::NodeKind::nic && t.graph[boost::source(e, t.graph)].server == 0) {
          busy_nics.insert(static_cast<int>(boost::source(e, t.graph)));
          REQUIRE_THAT(busy, WithinRel(moved / 2 / kNicBps, 1e-9));
        }
    REQUIRE(busy_nics.size() == 2);
    const sim::CollectiveCost one_ring = net.cost(sim::allreduce_schedule(sim::Algorithm::ring, p), gpus);
    REQUIRE_THAT(one_ring.seconds_per_byte, WithinRel(moved / kNicBps, 1e-6));
  }
  // NCCL's tree on one GPU a server: a double binary tree over two nodes is one edge each, and
  // each carries half the vector up and half down, so n leaves each server and n enters: over
  // both NICs, n / 25 GB/s.
  const sim::CollectiveCost trees = sim::channel_trees_cost(net, plan::pick_gpus(t, 2, 1));
  REQUIRE_THAT(trees.seconds_per_byte, WithinRel(1.0 / (2 * kNicBps), 1e-6));
}

TEST_CASE("NCCL's ring on three GPUs a server, or four and two, still fills both NICs", "[plan][nics]") {
  // Six ranks in both layouts: 2(p-1)/p = 5/3 of the vector leaves each server, over two NICs
  // of 12.5 GB/s, 5/3 / 25 GB/s (each GPU sends 1/6 a step over its 26.5 GB/s of PCIe payload,
  // less than a NIC's half of the server's 1/6 at 12.5). A channel per GPU would load one NIC
  // with two of three channels (3+3: 18.75 GB/s busbw); one ring, as before for unequal
  // servers, one NIC (12.5).
  const topo::Topology t = topo::build_cluster(two_nic_box(), 2, topo::FabricSpec{});
  sim::Network net(t, {.per_message_overhead_us = 0, .reduce_GBps = 0});
  for (int per_server : {3, 4}) {
    CAPTURE(per_server);
    const auto gpus = plan::pick_gpus(t, 6, per_server);
    std::map<int, int> on_server;
    for (topo::Vertex v : gpus) ++on_server[t.graph[v].server];
    REQUIRE(on_server.size() == 2);
    REQUIRE(on_server.begin()->second == per_server);
    REQUIRE_THAT(sim::channel_rings_cost(net, gpus).seconds_per_byte, WithinRel(5.0 / 3 / (2 * kNicBps), 1e-6));
  }
}

TEST_CASE("a NIC slower than its neighbour, or on another network, carries no channel", "[plan][nics]") {
  // One GPU a server. (a) The second NIC's port at 3.125 GB/s beside a 50 GB/s first: only the
  // first is closest, and the ring runs at the GPU's PCIe payload, 31.5 x 128/152 GB/s. (b) Each
  // server's second NIC cabled to a switch of its own (a front-end network): the channels keep to
  // the NIC that reaches the other server, 12.5 GB/s, where naming the second failed the run.
  const topo::Topology box = two_nic_box();
  nlohmann::json uneven = topo::to_json(box);
  for (auto& n : uneven["nodes"])
    if (n["id"] == "nic0") n["port_GBps"] = 50;
    else if (n["id"] == "nic1") n["port_GBps"] = 3.125;
  const topo::Topology slow = topo::build_cluster(topo::from_json(uneven, "uneven NICs"), 2, topo::FabricSpec{});
  sim::Network slow_net(slow, {.per_message_overhead_us = 0, .reduce_GBps = 0});
  const auto one_each = plan::pick_gpus(slow, 2, 1);
  REQUIRE(slow_net.closest_nics(one_each[0]) == std::vector<int>{0});
  REQUIRE_THAT(sim::channel_rings_cost(slow_net, one_each).seconds_per_byte,
               WithinRel(1.0 / (31.5e9 * 128 / 152), 1e-6));

  nlohmann::json split = topo::to_json(topo::build_cluster(box, 2, topo::FabricSpec{}));
  for (int s = 0; s < 2; ++s) {
    const std::string own = "fabric/front" + std::to_string(s), nic = "s" + std::to_string(s) + "/nic1";
    split["nodes"].push_back({{"id", own}, {"kind", "net_switch"}, {"server", -1}});
    for (auto& l : split["links"]) {
      if (l["from"] == nic && l["kind"] == "ethernet") l["to"] = own;
      if (l["to"] == nic && l["kind"] == "ethernet") l["from"] = own;
    }
  }
  const topo::Topology front = topo::from_json(split, "front-end NICs");
  sim::Network front_net(front, {.per_message_overhead_us = 0, .reduce_GBps = 0});
  REQUIRE_THAT(sim::channel_rings_cost(front_net, plan::pick_gpus(front, 2, 1)).seconds_per_byte,
               WithinRel(1.0 / kNicBps, 1e-6));
}
