// The allreduce in which the switch does the sums: NVLink SHARP on a third-generation NVSwitch
// (DGX/HGX H100 and later), what NCCL calls NVLS and takes by default for large allreduces on
// such servers. Its own file because no schedule between ranks describes it: the data's other
// end is the switch, which the engine treats as one more endpoint.
//
// The data movement modelled is the scheme's own: each GPU owns 1/p of the vector; a multimem
// load-reduce has the switch read that piece from all p GPUs and return the sum (over all pieces a
// GPU's NVLinks carry n to the switch, n/p back), and a multimem store sends the sum once for the
// switch to write it to all p GPUs (n/p up, n down). Pipelined chunk by chunk, each direction of
// a GPU's NVLinks carries (1 + 1/p) n at once: 1.125 n on 8 GPUs against a ring's 2 (p-1)/p n =
// 1.75 n. Timed, like basin's other schedules, at the rate GPUs drive NVLink (achievable_share);
// what NCCL's implementation loses besides (its copies through NVLS buffers, protocol) is NCCL's
// own efficiency factor, applied where NCCL's algorithms are timed (plan/src/select.cc).
#include <basin/sim.h>

#include <string>

namespace basin::sim {

CollectiveCost nvls_cost(Network& net, const std::vector<topo::Vertex>& gpus,
                         const std::string& origin) {
  const int p = static_cast<int>(gpus.size());
  if (p < 2) return {};
  const std::optional<topo::Vertex> sw = topo::nvlink_sharp_switch(net.topology(), gpus);
  if (!sw)
    throw topo::InputError(origin, "",
                           "for nvls, every rank's GPU on one NVSwitch that sums in the switch (NVLink 4 "
                           "or later, as in dgx-h100; so one server), but the " + std::to_string(p) +
                               " GPUs of " + net.topology().name + " are not");
  // The switch is rank p of a one-step schedule: every GPU sends (1 + 1/p) of the message up and
  // receives as much back, both at once. The sums happen in the switch, so no rank's reduction
  // rate applies (reduce = false). Two hops of latency: the load-reduce's round trip, then the
  // store's.
  Schedule s{"nvls", p + 1, {}};
  Step both_ways;
  both_ways.latency_hops = 2;
  for (int r = 0; r < p; ++r) {
    both_ways.transfers.push_back({r, p, 1.0 + 1.0 / p, false});
    both_ways.transfers.push_back({p, r, 1.0 + 1.0 / p, false});
  }
  s.steps.push_back(both_ways);
  std::vector<topo::Vertex> ends = gpus;
  ends.push_back(*sw);
  return net.cost(s, ends);
}

}  // namespace basin::sim
