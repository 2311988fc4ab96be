// NCCL's ring between servers, a ring per channel crossing through every NIC: the schedule's
// shape, its time against the closed form of the NICs' aggregate, and NCCL's measured busbw on
// a published three-server A100 cluster.
#include "../catch.h"
#include "candidate.h"

#include <basin/model.h>
#include <basin/plan.h>
#include <basin/training.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <set>
#include <tuple>

using namespace basin;
using namespace basin::plan;
using sim::Algorithm;

TEST_CASE("each channel's ring visits every rank once and crosses servers at its own ranks", "[plan][rings]") {
  // Two servers of four ranks, ring order 0 1 2 3 and 4 5 6 7.
  const sim::Schedule s = sim::channel_rings_allreduce({{0, 1, 2, 3}, {4, 5, 6, 7}});
  REQUIRE(s.ranks == 8);
  REQUIRE(s.steps.size() == 2);
  for (const sim::Step& step : s.steps) {
    REQUIRE(step.repeat == 7);                 // p - 1 steps each of reduce-scatter and allgather
    REQUIRE(step.transfers.size() == 4 * 8);   // 4 channels, p hops each
    std::map<int, double> sent, received;
    std::multiset<std::pair<int, int>> crossings;
    for (const sim::Transfer& t : step.transfers) {
      REQUIRE_THAT(t.fraction, WithinRel(1.0 / 32, 1e-12));
      sent[t.src] += t.fraction;
      received[t.dst] += t.fraction;
      if (t.src / 4 != t.dst / 4) crossings.insert({t.src, t.dst});
    }
    for (int r = 0; r < 8; ++r) {  // every rank moves 1/p of the vector per step, as in one ring
      REQUIRE_THAT(sent[r], WithinRel(1.0 / 8, 1e-12));
      REQUIRE_THAT(received[r], WithinRel(1.0 / 8, 1e-12));
    }
    // Channel c leaves a server from its (c-1)-th rank and enters the other at its c-th: every
    // rank leaves once and enters once, so no two channels share a crossing GPU.
    REQUIRE(crossings.size() == 8);
    std::set<int> leaving, entering;
    for (auto [from, to] : crossings) leaving.insert(from), entering.insert(to);
    REQUIRE(leaving.size() == 8);
    REQUIRE(entering.size() == 8);
  }
  // One server: the plain ring.
  REQUIRE(sim::channel_rings_allreduce({{0, 1, 2}}).steps[0].transfers.size() == 3);
  // Servers of unequal counts: each channel rotates each server's own list, so the rings stay
  // permutations and a one-rank server is crossed by every channel through its one rank.
  const sim::Schedule uneven = sim::channel_rings_allreduce({{0, 1}, {2}});
  REQUIRE(uneven.ranks == 3);
  std::map<int, double> sent;
  for (const sim::Transfer& t : uneven.steps[0].transfers) sent[t.src] += t.fraction;
  for (int r = 0; r < 3; ++r) REQUIRE_THAT(sent[r], WithinRel(1.0 / 3, 1e-12));
  REQUIRE_THROWS(sim::channel_rings_allreduce({{0, 1}, {}}));
}

TEST_CASE("NCCL's ring between DGX H100s gets all eight NICs, one ring gets one", "[plan][rings]") {
  // 2 x DGX H100: 8 x 400 Gb/s NICs a server (50 GB/s each), NVLink 18 x 20.6 = 371 GB/s a GPU
  // at NCCL's per-link rate. A channel's exit GPU sends over PCIe instead of NVLink, so NVLink
  // carries 7/8 of a ring's 1/p per step (424 GB/s of busbw) and the NICs, 400 GB/s together,
  // bind: busbw 400 GB/s.
  const topo::Topology t = topo::load_any("dgx-h100:2");
  sim::Network net(t, {.per_message_overhead_us = 0, .reduce_GBps = 0});
  const auto gpus = pick_gpus(t, 16, 0);
  const double moved = 2.0 * 15 / 16;  // of the vector, through each server's boundary
  const sim::CollectiveCost rings = sim::channel_rings_cost(net, gpus);
  REQUIRE_THAT(rings.seconds_per_byte, WithinRel(moved / 400e9, 1e-6));
  const sim::CollectiveCost one = sim::allreduce_cost(net, gpus, Algorithm::ring);
  REQUIRE_THAT(one.seconds_per_byte, WithinRel(moved / 50e9, 1e-6));

  // The same servers written by hand without GPU indices (all 0): each GPU still finds its own
  // NIC by its place in the file, and the channels still get all eight NICs.
  nlohmann::json doc = topo::to_json(t);
  int stripped = 0;
  for (auto& n : doc["nodes"])
    if (n["kind"] == "gpu" && n.contains("index")) n.erase("index"), ++stripped;
  REQUIRE(stripped == 16);
  const topo::Topology plain = topo::from_json(doc, "hand-written");
  sim::Network plain_net(plain, {.per_message_overhead_us = 0, .reduce_GBps = 0});
  REQUIRE_THAT(sim::channel_rings_cost(plain_net, pick_gpus(plain, 16, 0)).seconds_per_byte,
               WithinRel(moved / 400e9, 1e-6));
}

TEST_CASE("NCCL's ring keeps to its rail on a rail-optimized fabric (PXN)", "[plan][rings]") {
  // A rail fabric joins NIC k of every server through leaf k alone. A channel's ring leaves a
  // server at the GPU before its entry GPU, on the next rail; NCCL's PXN hands the data over
  // NVLink to the GPU on the destination's rail, whose NIC sends it. The NICs stay the bound:
  // NVIDIA builds SuperPODs on rails because rings run there as on one switch. Before PXN was
  // modelled, the crossings doubled up on host links and the ring ran at half.
  for (const char* model : {"dgx-h100", "dgx-a100"}) {
    CAPTURE(model);
    auto seconds_per_byte = [&](const std::string& fabric) {
      const topo::Topology t = topo::load_any(std::string(model) + ":2,fabric=" + fabric);
      sim::Network net(t, {.per_message_overhead_us = 0, .reduce_GBps = 0});
      return sim::channel_rings_cost(net, pick_gpus(t, 16, 0)).seconds_per_byte;
    };
    const double one_switch = seconds_per_byte("switch"), rails = seconds_per_byte("rail");
    // Within the extra NVLink hop's share of the time, not twice it.
    REQUIRE(rails <= 1.1 * one_switch);
    REQUIRE(rails >= one_switch * (1 - 1e-9));
  }
}

TEST_CASE("NCCL's ring on three A100 servers with four HDR NICs each is near the measured 96 GB/s", "[plan][rings]") {
  // NVIDIA/nccl-tests#119 (2022): 3 servers of 8 A100 SXM4 and 4 HDR InfiniBand NICs (200 Gb/s),
  // all_reduce_perf up to 128 MB: peak busbw about 96 GB/s (the NICs' 4 x 25 GB/s = 100).
  // DGX A100 with one NIC on each of its four PCIe switches (NICs 1, 3, 5, 7 taken out) is that
  // server.
  nlohmann::json server = topo::to_json(topo::server_model("dgx-a100"));
  const std::set<std::string> gone = {"nic1", "nic3", "nic5", "nic7"};
  auto& nodes = server["nodes"];
  nodes.erase(std::remove_if(nodes.begin(), nodes.end(), [&](const nlohmann::json& n) { return gone.count(n["id"]); }),
              nodes.end());
  auto& links = server["links"];
  links.erase(std::remove_if(links.begin(), links.end(),
                             [&](const nlohmann::json& l) { return gone.count(l["from"]) || gone.count(l["to"]); }),
              links.end());
  const topo::Topology four_nics = topo::from_json(server, "dgx-a100 with 4 NICs");
  const topo::Topology cluster = topo::build_cluster(four_nics, 3, topo::FabricSpec{});
  SelectOptions o;
  o.candidates = {{Algorithm::ring, Protocol::simple}};
  o.min_bytes = o.max_bytes = 128.0 * (1 << 20);
  const Selection s = select_allreduce(cluster, o);
  REQUIRE(s.ranks == 24);
  REQUIRE(s.servers == 3);
  const double busbw = busbw_GBps(s.rows.front().bytes, s.rows.front().time_s[0], 24);
  CAPTURE(busbw);
  REQUIRE_THAT(busbw, WithinRel(96.0, 0.05));
}

TEST_CASE("NCCL's tree between two DGX H100s: chains inside, one tree edge per channel between", "[plan][rings]") {
  // Per channel c (1/8 of the vector), each server's chain ends at its c-th GPU, which joins the
  // two trees between the servers (half the share each). Inside a server a GPU is the chain's
  // end for one channel (sends 1/8 down), its tail for one (1/8 up) and in the middle for six
  // (1/8 up and 1/8 down): 1.75 n out of every GPU over NVLink, at 450 GB/s line rate. Between
  // the servers each NIC carries 1/8 n each way (n/2 up one tree, n/2 down the other, over 8
  // NICs): 400 GB/s together, so NVLink binds.
  const topo::Topology t = topo::load_any("dgx-h100:2");
  sim::Network net(t, {.per_message_overhead_us = 0, .reduce_GBps = 0, .line_rate = true});
  const sim::CollectiveCost trees = sim::channel_trees_cost(net, pick_gpus(t, 16, 0));
  REQUIRE_THAT(trees.seconds_per_byte, WithinRel(1.75 / 450e9, 1e-6));
  // Latency: 2 (8 - 1 + 1) hops.
  const sim::Schedule s = sim::channel_trees_allreduce({{0, 1, 2, 3, 4, 5, 6, 7}, {8, 9, 10, 11, 12, 13, 14, 15}});
  REQUIRE(s.steps.size() == 1);
  REQUIRE(s.steps[0].latency_hops == 16);
  // Every channel's tree edge joins the two servers' c-th GPUs.
  int between = 0;
  for (const sim::Transfer& tr : s.steps[0].transfers)
    if (tr.src / 8 != tr.dst / 8) {
      REQUIRE(tr.src % 8 == tr.dst % 8);
      ++between;
    }
  REQUIRE(between == 8 * 4);  // per channel: up and down each of the two trees' one edge
}

TEST_CASE("a prediction with NCCL's model times the run and its one-server baseline with it", "[plan][rings]") {
  const topo::Topology t = topo::load_any("dgx-h100:4");
  const sim::DeviceProfile profile =
      sim::find_device_profile(sim::default_profiles_dir(), t.graph[topo::gpus(t).front()].model);
  sim::TrainingConfig cfg;
  cfg.network = model::resnet(50);
  cfg.gpus = 32;
  cfg.batch_per_gpu = 64;
  cfg.precision = sim::Precision::bf16;
  cfg.bucket_MB = 25;
  cfg.decode_images_per_s_per_core = 1e9;
  const Choice ring{Algorithm::ring, Protocol::simple};
  const sim::Prediction p = sim::predict(t, profile, cfg, nccl_model(t, ring, cfg.network_params));
  // The same as simulating with nccl_cost, for 32 GPUs and for one server's 8.
  sim::Network net(t, cfg.network_params);
  const double run = sim::simulate_iteration(t, profile, cfg, nccl_cost(net, pick_gpus(t, 32, 0), ring.algorithm, ring.protocol))
                         .iteration_s;
  sim::TrainingConfig one = cfg;
  one.gpus = 8;
  const double baseline =
      sim::simulate_iteration(t, profile, one, nccl_cost(net, pick_gpus(t, 8, 0), ring.algorithm, ring.protocol))
          .iteration_s;
  REQUIRE_THAT(p.result.iteration_s, WithinRel(run, 1e-12));
  REQUIRE_THAT(p.one_server.iteration_s, WithinRel(baseline, 1e-12));
  // NCCL's channels spread over the NICs: less time in allreduce than basin's one ring.
  const sim::Prediction single = sim::predict(t, profile, [&] {
    sim::TrainingConfig c = cfg;
    c.algorithm = Algorithm::ring;
    return c;
  }());
  REQUIRE(p.result.comm_total_s < single.result.comm_total_s / 4);
}

TEST_CASE("NCCL's LL protocol is held to NCCL's own ceiling for it", "[plan][rings]") {
  // tuning.cc, llMaxBws (busbw, GB/s): one node by GPU generation (Volta 39, Hopper 141,
  // Blackwell 282); several by CPU vendor and node count (Intel on 2 nodes 39, AMD on 3 or more
  // 19). Below these the ring's LL runs at half its Simple rate: all of them bind at 8 GB here.
  struct Case {
    const char* cluster;
    double ceiling_GBps;
  };
  for (const Case& c : {Case{"dgx1", 39.0}, Case{"dgx-h100", 141.0}, Case{"dgx-b200", 282.0},
                        Case{"dgx-h100:2", 39.0}, Case{"dgx-a100:4", 19.0}}) {
    CAPTURE(c.cluster);
    const Selection s = basin::test::nccl_selection(c.cluster);
    const SizeRow& row = s.rows.back();
    const double ll = busbw_GBps(row.bytes, row.time_s[basin::test::candidate(s, "nccl-ring/LL")], s.ranks);
    const double simple = busbw_GBps(row.bytes, row.time_s[basin::test::candidate(s, "nccl-ring/Simple")], s.ranks);
    REQUIRE(simple / 2 > c.ceiling_GBps);
    REQUIRE_THAT(ll, WithinRel(c.ceiling_GBps, 1e-3));
  }
}

namespace {

// NCCL's tuner ranks each algorithm and protocol by its model corrected by size (NCCL 2.28
// src/graph/tuning.cc, ncclTopoGetAlgoTime): the tree's bandwidth times treeCorrectionFactor
// [protocol][log2(bytes / 64)] below 512 MB, and across servers the ring's Simple latency times
// 1.4 (1.9 before Ampere) once bytes / (channels x ranks) reaches 64, with one channel per GPU of
// a server as basin's model has (NCCL's own count, often higher, starts it at larger sizes). The time it ranks `line` (basin's cost of the pair) by.
double nccl_ranked_s(const sim::CollectiveCost& line, Algorithm a, Protocol p, double bytes, int servers,
                     int ranks, bool before_ampere, bool blackwell_x86 = false) {
  static const double tree_factor[3][24] = {
      {1.0, 1.0, 1.0, 1.0, .9, .8, .7, .7, .7, .7, .6, .5, .4, .4, .5, .6, .7, .8, .9, 1.0, 1.0, 1.0, 1.0, 1.0},
      {1.0, 1.0, 1.0, 1.0, 1.0, .9, .8, .8, .8, .7, .6, .6, .6, .6, .6, .6, .8, .9, .9, .9, .9, 1.0, 1.0, 1.0},
      {.9, .9, .9, .9, .9, .9, .9, .8, .7, .6, .6, .5, .5, .5, .5, .6, .7, .8, .7, .7, .8, .9, .9, .9}};
  double latency = line.latency_s, per_byte = line.seconds_per_byte;
  const int log_size = bytes >= 64 ? static_cast<int>(std::floor(std::log2(bytes / 64))) : -1;
  const int proto = p == Protocol::ll ? 0 : p == Protocol::ll128 ? 1 : 2;
  if (a == Algorithm::tree && log_size >= 0 && log_size < 23) per_byte /= tree_factor[proto][log_size];
  // NVLS-tree likewise up to 24 classes, on Blackwell (compute capability 10) with x86 CPUs.
  if (a == Algorithm::nvls_tree && blackwell_x86 && log_size >= 0 && log_size < 24)
    per_byte /= tree_factor[proto][log_size];
  if (a == Algorithm::ring && p == Protocol::simple && servers > 1 &&
      bytes / (1.0 * ranks / servers * ranks) >= 64)
    latency *= before_ampere ? 1.9 : 1.4;
  return latency + bytes * per_byte;
}

}  // namespace

TEST_CASE("NCCL's tuner's protocol is the fastest of those it enables, for every size", "[plan][nccl]") {
  // basin train sets only NCCL's algorithm; NCCL's tuner then takes, per message, the protocol its
  // model finds fastest among those enabled. LL128 is enabled by default from Volta (compute
  // capability 7.0) on, with NVLink inside the server: DGX-1's V100s and DGX H100 have it, Big
  // Basin's P100s (compute capability 6.0, NVLink 1) do not.
  const std::map<std::string, bool> ll128 = {{"dgx1", true}, {"dgx-h100:2", true}, {"bigbasin:2", false}};
  for (const auto& [spec, with_ll128] : ll128) {
    topo::Topology t = topo::load_any(spec);
    sim::Network net(t);
    const auto gpus = topo::gpus(t);
    CAPTURE(spec);
    REQUIRE(ll128_enabled(t, gpus) == with_ll128);
    REQUIRE(nccl_runs({Algorithm::ring, Protocol::ll128}, t, gpus) == with_ll128);
    for (Algorithm a : {Algorithm::ring, Algorithm::tree}) {
      const sim::CollectiveCost tuned = nccl_cost(net, gpus, a, Protocol::automatic);
      std::vector<std::pair<Protocol, sim::CollectiveCost>> each;
      for (Protocol p : {Protocol::ll, Protocol::ll128, Protocol::simple})
        if (p != Protocol::ll128 || with_ll128) each.push_back({p, nccl_cost(net, gpus, a, p)});
      const int servers = spec == "bigbasin:2" || spec == "dgx-h100:2" ? 2 : 1;
      const bool before_ampere = spec != "dgx-h100:2";  // P100 and V100
      std::set<double> rates;  // the protocols the tuner takes somewhere along the ladder
      for (double bytes = 8; bytes <= 8e9; bytes *= 2) {
        // The protocol NCCL ranks fastest, at basin's cost of it.
        double ranked = std::numeric_limits<double>::infinity(), picked = 0;
        for (const auto& [p, c] : each) {
          const double r = nccl_ranked_s(c, a, p, bytes, servers, static_cast<int>(gpus.size()), before_ampere);
          if (r < ranked) ranked = r, picked = c.time_s(bytes);
        }
        CAPTURE(spec, sim::to_string(a), bytes);
        REQUIRE_THAT(tuned.time_s(bytes), WithinRel(picked, 1e-12));
        rates.insert(tuned.for_bytes(bytes).seconds_per_byte);
      }
      // LL for the smallest messages and a wider protocol for the largest: at least two.
      REQUIRE(rates.size() >= 2);
    }
  }
  // The name leaves the protocol to NCCL, and reads back as the same choice.
  const Choice c = choice_from_string("nccl-tree");
  REQUIRE(c.protocol == Protocol::automatic);
  REQUIRE(c.name() == "nccl-tree");
  REQUIRE(choice_from_string("nccl-ring/auto").protocol == Protocol::automatic);
  REQUIRE(choice_from_string("nccl-nvls").protocol == Protocol::simple);  // its only protocol
}

TEST_CASE("with nothing set, NCCL's tuner takes the fastest algorithm and protocol it enables", "[plan][nccl]") {
  // NCCL_ALGO unset: ring and tree under each enabled protocol, and NVLS on one server or
  // NVLS-tree across several where the switches sum (CollNet, off by default, takes no part).
  const Choice nccl = choice_from_string("nccl");
  REQUIRE(nccl.nccl_picks_algorithm);
  REQUIRE(nccl.is_nccl());
  REQUIRE(nccl.name() == "nccl");
  // basin select writes NCCL rules that name an algorithm and a protocol for every size: it has
  // none to name for this choice.
  SelectOptions so;
  so.candidates = {nccl};
  REQUIRE_THROWS_AS(select_allreduce(topo::load_any("dgx-h100:1"), so), std::invalid_argument);
  for (const char* spec : {"dgx-h100:1", "dgx-h100:2", "bigbasin:2", "dgx1", "dgx-b200:2", "pcie8:2"}) {
    topo::Topology t = topo::load_any(spec);
    sim::Network net(t);
    const auto gpus = topo::gpus(t);
    const sim::CollectiveCost tuned = nccl_choice_cost(net, gpus, nccl);
    // Switches that sum change nothing by default: CollNet is off, so neither its chain nor NVLS
    // across servers takes part.
    if (std::string(spec) == "dgx-h100:2") {
      topo::Topology sharp = topo::load_any("dgx-h100:2,sharp=on");
      sim::Network sharp_net(sharp);
      REQUIRE(nccl_runs({Algorithm::collnet_chain, Protocol::simple}, sharp, topo::gpus(sharp)));
      const sim::CollectiveCost with_sharp = nccl_choice_cost(sharp_net, topo::gpus(sharp), nccl);
      for (double bytes : {1e3, 1e6, 1e9}) REQUIRE_THAT(with_sharp.time_s(bytes), WithinRel(tuned.time_s(bytes), 1e-12));
    }
    std::set<int> servers;
    for (auto v : gpus) servers.insert(t.graph[v].server);
    std::vector<std::tuple<Algorithm, Protocol, sim::CollectiveCost>> each;
    for (Algorithm a : {Algorithm::ring, Algorithm::tree})
      for (Protocol p : {Protocol::ll, Protocol::ll128, Protocol::simple})
        if (p != Protocol::ll128 || ll128_enabled(t, gpus)) each.push_back({a, p, nccl_cost(net, gpus, a, p)});
    const Algorithm sums = servers.size() == 1 ? Algorithm::nvls : Algorithm::nvls_tree;
    // H100's and B200's NVSwitch: NVLink SHARP.
    const bool switch_sums = std::string(spec).rfind("dgx-h100", 0) == 0 || std::string(spec).rfind("dgx-b200", 0) == 0;
    REQUIRE(nccl_runs({sums, Protocol::simple}, t, gpus) == switch_sums);
    if (switch_sums) each.push_back({sums, Protocol::simple, nccl_cost(net, gpus, sums, Protocol::simple)});
    const bool before_ampere = !switch_sums;  // P100 and V100 (SXM2 and PCIe)
    bool ranked_otherwise = false;  // somewhere NCCL's correction picks other than basin's fastest line
    for (double bytes = 8; bytes <= 8e9; bytes *= 2) {
      double ranked = std::numeric_limits<double>::infinity(), picked = 0;
      double least = std::numeric_limits<double>::infinity();
      for (const auto& [a, p, c] : each) {
        const double r = nccl_ranked_s(c, a, p, bytes, static_cast<int>(servers.size()),
                                       static_cast<int>(gpus.size()), before_ampere,
                                       std::string(spec) == "dgx-b200:2");  // Xeon CPUs
        if (r < ranked) ranked = r, picked = c.time_s(bytes);
        least = std::min(least, c.time_s(bytes));
      }
      CAPTURE(spec, bytes);
      REQUIRE_THAT(tuned.time_s(bytes), WithinRel(picked, 1e-12));
      if (picked > least * (1 + 1e-9)) {
        ranked_otherwise = true;
        WARN(spec << ": NCCL's corrected ranking picks a line " << picked / least << "x basin's fastest at " << bytes << " bytes");
      }
    }
    if (std::string(spec) == "dgx-h100:2") REQUIRE(ranked_otherwise);
  }
}
