// Pieces of the hierarchical allreduce shared by its GPU-direct form (hierarchical.cc) and its
// host-staged form (staging.cc), and the names of the terms its time is broken into.
#pragma once

#include <basin/sim.h>

#include <map>
#include <vector>

namespace basin::sim {

// Term names, as they appear in CollectiveCost::terms and the iteration's breakdown.
inline constexpr const char* kTermLocal = "intra-server reduce+broadcast";  // NVLink chains
inline constexpr const char* kTermNetwork = "network";                      // between servers
inline constexpr const char* kTermStaging = "pcie host staging";            // D2H and H2D copies
inline constexpr const char* kTermHost = "host reduction";                  // CPU sums and copies

// Each server's GPUs (in `gpus`) ordered as a chain whose narrowest hop is widest; the head of
// each chain is its server's leader.
std::vector<std::vector<topo::Vertex>> server_chains(Network& net,
                                                     const std::vector<topo::Vertex>& gpus);
// The GPUs of each server, servers in index order, GPUs in the order given.
std::map<int, std::vector<topo::Vertex>> by_server(const topo::Topology& t, const std::vector<topo::Vertex>& gpus);
// Every server's NVLS at once, on links of its own: the slowest, which sets the pace.
CollectiveCost slowest_nvls(Network& net, const std::map<int, std::vector<topo::Vertex>>& servers,
                            const std::string& origin);
// Every chain at once, pipelined: reduce into the heads, or broadcast from them.
CollectiveCost chain_phase(Network& net, const std::vector<std::vector<topo::Vertex>>& chains,
                           bool reduce);

}  // namespace basin::sim
