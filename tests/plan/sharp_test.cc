// Sums in the network between servers (InfiniBand SHARP): NVLS across servers and CollNet's chain
// against their closed forms at line rate, the oversubscription they do not feel, where they run
// and where they are refused, NCCL's latency constants for them, and CollNet's chain against a
// published nccl-tests run.
#include "../catch.h"
#include "candidate.h"

#include <basin/plan.h>

#include <nlohmann/json.hpp>

using namespace basin;
using namespace basin::plan;
using basin::test::candidate;
using sim::Algorithm;

using basin::test::nccl_selection;

TEST_CASE("NVLS across servers: each NIC carries its channel's share once each way, the uplinks too",
          "[plan][sharp]") {
  // Line rate, DGX B200 (18 NVLinks of 50 GB/s, eight 400 Gb/s NICs of 50 GB/s). Inside a server
  // NVLS moves (1 + 1/8) n each way over a GPU's NVLinks; between servers the 8 heads each send
  // 1/8 of the server's sum up the tree and receive 1/8 back: n / (8 x 50 GB/s), on 4 servers or
  // 32, on one switch or a fat tree whose leaves have a quarter of their downlinks' capacity up.
  for (const char* cluster : {"dgx-b200:4,sharp=on", "dgx-b200:32,sharp=on", "dgx-b200:32,fabric=fat-tree:4,sharp=on"}) {
    CAPTURE(cluster);
    const topo::Topology t = topo::load_any(cluster);
    sim::Network net(t, {.per_message_overhead_us = 0, .reduce_GBps = 0, .line_rate = true});
    const sim::NvlsTreeParts parts = sim::nvls_parts(net, topo::gpus(t));
    REQUIRE(parts.servers == t.servers);
    REQUIRE_THAT(parts.in_servers.seconds_per_byte, WithinRel(1.125 / (18 * 50e9), 1e-9));
    REQUIRE_THAT(parts.between_servers.seconds_per_byte, WithinRel(1 / (8 * 50e9), 1e-9));
    REQUIRE_THAT(sim::allreduce_cost(net, topo::gpus(t), Algorithm::nvls).seconds_per_byte,
                 WithinRel(1 / (8 * 50e9), 1e-9));
  }
  // On the fat tree a leaf sends each channel's sum up once: 4 of the 8 channels to each spine,
  // 1/8 each, over a leaf-spine link of 4 servers x 8 NICs x 50 GB/s / 4 (oversubscription) / 2
  // spines = 200 GB/s: as busy as each NIC.
  const topo::Topology t = topo::load_any("dgx-b200:32,fabric=fat-tree:4,sharp=on");
  sim::Network net(t);
  const sim::NvlsTreeParts parts = sim::nvls_parts(net, topo::gpus(t));
  const topo::Vertex leaf = *topo::find_node(t, "fabric/leaf0"), spine = *topo::find_node(t, "fabric/spine0");
  const int uplink = t.graph[boost::edge(leaf, spine, t.graph).first].id;
  REQUIRE(t.graph[boost::edge(leaf, spine, t.graph).first].bandwidth_GBps == 200);
  REQUIRE_THAT(parts.between_servers.busy_s_per_byte.at(uplink), WithinRel(4 * 0.125 / 200e9, 1e-9));
  // A ring between the same servers crosses those uplinks with every server's traffic: slower.
  REQUIRE(sim::channel_rings_cost(net, topo::gpus(t)).seconds_per_byte > 1.5 / (8 * 50e9));
}

TEST_CASE("CollNet's chain: the chain's NVLink traffic or the NIC's share, whichever binds", "[plan][sharp]") {
  // Per channel each server's 8 GPUs form a chain ending at its c-th GPU; over the 8 channels a
  // GPU is the head once, the tail once and inside the chain 6 times, sending 1/8 up and 1/8 down
  // inside it: (1 + 1 + 6 x 2) / 8 = 1.75 n over its NVLinks. Each head's NIC carries 1/8 each way.
  struct Case {
    const char* cluster;
    double seconds_per_byte;
  };
  for (const Case& c : {Case{"dgx-h100:2,sharp=on", 1.75 / (18 * 25e9)},   // NVLink binds
                        Case{"dgx-b200:2,sharp=on", 0.125 / 50e9},         // the NIC binds
                        Case{"dgx-b200:32,fabric=fat-tree:4,sharp=on", 0.125 / 50e9}}) {
    CAPTURE(c.cluster);
    const topo::Topology t = topo::load_any(c.cluster);
    sim::Network net(t, {.per_message_overhead_us = 0, .reduce_GBps = 0, .line_rate = true});
    REQUIRE_THAT(sim::collnet_chain_cost(net, topo::gpus(t)).seconds_per_byte, WithinRel(c.seconds_per_byte, 1e-9));
  }
  // On one server it is the chain alone, NCCL's tree there.
  const topo::Topology one = topo::load_any("dgx-h100:2,sharp=on");
  sim::Network net(one);
  const auto eight = pick_gpus(one, 8, 0);
  REQUIRE_THAT(sim::collnet_chain_cost(net, eight).seconds_per_byte,
               WithinRel(sim::channel_trees_cost(net, eight).seconds_per_byte, 1e-12));
}

TEST_CASE("in-network sums run only on a fabric that sums, with as many GPUs on each server", "[plan][sharp]") {
  const Choice nvls{Algorithm::nvls, Protocol::simple}, chain{Algorithm::collnet_chain, Protocol::simple};
  const topo::Topology sharp = topo::load_any("dgx-h100:2,sharp=on"), plain = topo::load_any("dgx-h100:2");
  REQUIRE(nccl_runs(nvls, sharp, pick_gpus(sharp, 16, 0)));
  REQUIRE(nccl_runs(chain, sharp, pick_gpus(sharp, 16, 0)));
  REQUIRE(nccl_runs(nvls, plain, pick_gpus(plain, 8, 0)));         // one server: the NVSwitch alone
  REQUIRE_FALSE(nccl_runs(nvls, plain, pick_gpus(plain, 16, 0)));  // NCCL needs SHARP across servers
  REQUIRE_FALSE(nccl_runs(chain, plain, pick_gpus(plain, 16, 0)));
  REQUIRE_FALSE(nccl_runs(chain, sharp, pick_gpus(sharp, 8, 0)));  // CollNet needs two nodes
  REQUIRE_FALSE(nccl_runs(nvls, sharp, pick_gpus(sharp, 12, 0)));  // 8 and 4
  REQUIRE_FALSE(nccl_runs(chain, sharp, pick_gpus(sharp, 12, 0)));
  const topo::Topology a100 = topo::load_any("dgx-a100:2,sharp=on");  // its NVSwitch does not sum
  REQUIRE_FALSE(nccl_runs(nvls, a100, pick_gpus(a100, 16, 0)));
  REQUIRE(nccl_runs(chain, a100, pick_gpus(a100, 16, 0)));
  sim::Network net(plain);
  try {
    sim::collnet_chain_cost(net, pick_gpus(plain, 16, 0), "--algorithm");
    FAIL("accepted");
  } catch (const topo::InputError& e) {
    REQUIRE(e.origin == "--algorithm");
    REQUIRE_THAT(e.expected, HasText("sharp=on"));
  }
  // NCCL's moves GPU memory to the NICs itself: never staged through host memory.
  sim::Network sharp_net(sharp);
  REQUIRE_THROWS_AS(sim::allreduce_cost(sharp_net, pick_gpus(sharp, 16, 0), Algorithm::collnet_chain,
                                        Algorithm::halving_doubling, {.mode = sim::HostStaging::Mode::on}),
                    topo::InputError);
  // Only as NCCL's, with Simple, and never between servers of a hierarchical allreduce.
  REQUIRE(choice_from_string("nccl-collnet-chain/Simple").algorithm == Algorithm::collnet_chain);
  for (const char* refused : {"collnet-chain", "nccl-collnet-chain/LL", "hierarchical:collnet-chain"})
    REQUIRE_THROWS_AS(choice_from_string(refused), topo::InputError);
  REQUIRE(candidate(nccl_selection("dgx-h100:2,sharp=on"), "nccl-collnet-chain/Simple") >= 0);
  REQUIRE(candidate(nccl_selection("dgx-h100:2"), "nccl-collnet-chain/Simple") == -1);
  REQUIRE(candidate(nccl_selection("dgx-h100:2"), "nccl-nvls/Simple") == -1);
}

TEST_CASE("NCCL's latency for in-network sums: tuning.cc's constants", "[plan][sharp]") {
  // tuning.cc hwLatencies, Simple: NVLS 25 us on NVLink plus 18 us on the network across servers;
  // CollNet's chain 2.8 us per NVLink hop of the chain, both ways (2 x 7 on 8 GPUs), plus 30 us.
  const topo::Topology t = topo::load_any("dgx-h100:4,sharp=on");
  sim::Network net(t);
  const auto gpus = topo::gpus(t);
  REQUIRE_THAT(nccl_cost(net, gpus, Algorithm::nvls, Protocol::simple).latency_s, WithinRel(43e-6, 1e-9));
  REQUIRE_THAT(nccl_cost(net, pick_gpus(t, 8, 0), Algorithm::nvls, Protocol::simple).latency_s,
               WithinRel(25e-6, 1e-9));
  REQUIRE_THAT(nccl_cost(net, gpus, Algorithm::collnet_chain, Protocol::simple).latency_s,
               WithinRel((2 * 7 * 2.8 + 30) * 1e-6, 1e-9));
}

TEST_CASE("NCCL's CollNet chain against a published nccl-tests run", "[plan][sharp]") {
  // coreweave/nccl-tests README (commit fb4787c, 2023): HGX H100 nodes with eight 400 Gb/s NDR
  // NICs, NCCL 2.18.1, NCCL_ALGO=COLLNETCHAIN with NCCL_COLLNET_ENABLE=1; at 8 GB busbw 386.56 GB/s
  // (algbw 195.31; their ratio, 1.979, is 96 ranks: 12 nodes). The model is NCCL's bandwidth model
  // on the topology, an upper bound like the rest: the chain's NVLink traffic binds at NCCL's
  // 20.6 GB/s per NVLink.
  const Selection s = nccl_selection("dgx-h100:12,sharp=on");
  REQUIRE(s.ranks == 96);
  const SizeRow& big = s.rows.back();
  const double model = busbw_GBps(big.bytes, big.time_s[candidate(s, "nccl-collnet-chain/Simple")], s.ranks);
  REQUIRE(model > 386.56);
  REQUIRE_THAT(model, WithinRel(386.56, 0.10));
}

TEST_CASE("in-network sums pay no host-stack overhead, and need InfiniBand NICs under the switches",
          "[plan][sharp]") {
  // What a NIC sends to a switch that sums is the NIC's own work, not a message through the
  // host's stack: with a 5 us per-message overhead, the chain's latency is its hops' overheads
  // once each, not once per channel leaving the server (8 x).
  const topo::Topology t = topo::load_any("dgx-b200:4,sharp=on");
  sim::Network free_net(t, {.per_message_overhead_us = 0, .reduce_GBps = 0});
  sim::Network costly(t, {.per_message_overhead_us = 5, .reduce_GBps = 0});
  const auto gpus = topo::gpus(t);
  const double hops = 2 * (7 + 2);  // up a chain of 8 and a one-switch tree (GPU-NIC, NIC-switch), and down
  REQUIRE_THAT(sim::collnet_chain_cost(costly, gpus).latency_s - sim::collnet_chain_cost(free_net, gpus).latency_s,
               WithinRel(hops * 5e-6, 1e-9));
  // NCCL's on one server is NCCL's tree.
  const auto eight = pick_gpus(t, 8, 0);
  const sim::CollectiveCost chain = nccl_cost(costly, eight, Algorithm::collnet_chain, Protocol::simple);
  const sim::CollectiveCost tree = nccl_cost(costly, eight, Algorithm::tree, Protocol::simple);
  REQUIRE(chain.latency_s == tree.latency_s);
  REQUIRE(chain.seconds_per_byte == tree.seconds_per_byte);
  // A hand-written file may mark a switch above Ethernet NICs as summing; nothing uses it.
  nlohmann::json j = topo::to_json(topo::load_any("bigbasin:2"));
  for (auto& n : j["nodes"])
    if (n["kind"] == "net_switch") n["sharp"] = true;
  const topo::Topology ethernet = topo::from_json(j, "ethernet.json");
  REQUIRE_THAT(sim::collnet_chain_refusal(ethernet, topo::gpus(ethernet)), HasText("InfiniBand"));
  REQUIRE_FALSE(nccl_runs({Algorithm::collnet_chain, Protocol::simple}, ethernet, topo::gpus(ethernet)));
}
