// Uniform test topologies whose alpha-beta costs are known in closed form: a full mesh (every
// pair its own link, no contention) and a star (one full-duplex port per GPU on one switch, the
// single-ported model). Shared by the simulator's and the planner's tests.
#pragma once

#include <basin/topology.h>

#include <string>
#include <vector>

namespace basin::test {

// p GPUs, every ordered pair joined by its own link: no contention, uniform alpha and beta.
inline topo::Topology full_mesh(int p, double GBps, double latency_us) {
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

// p GPUs on one non-blocking switch, one full-duplex link each: every rank has a single port, the
// model the classic single-ported alpha-beta analyses assume. Route latency = 2 hops.
inline topo::Topology star(int p, double GBps, double hop_latency_us) {
  topo::Topology t;
  t.name = "star";
  auto sw = topo::add_node(t, {.id = "switch", .kind = topo::NodeKind::nvswitch});
  for (int i = 0; i < p; ++i) {
    topo::Node n{.id = "gpu" + std::to_string(i), .kind = topo::NodeKind::gpu};
    n.index = i;
    topo::add_link(t, topo::add_node(t, n), sw,
                   {.kind = topo::LinkKind::nvlink, .bandwidth_GBps = GBps,
                    .latency_us = hop_latency_us});
  }
  return t;
}

}  // namespace basin::test
