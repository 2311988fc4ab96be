// The hierarchical allreduce of Goyal et al. 2017 (sec. 4) on ranks that sum through Gloo (CPU
// ranks, or GPU ranks' host copies): reduce inside each server onto its first rank, allreduce
// among those leaders across the network, broadcast back inside each server. Only the leaders
// cross the network: 2(n-1)/n of the buffer through each NIC each way for n servers, where
// Gloo's flat chunked ring over n*k ranks moves 2(nk-1)/(nk). (Flat halving-doubling over ranks
// numbered by server already moves the leaders' bytes; there the phases pay off only where a
// server's own links are much faster than its NIC. reports/emulated-hierarchical-*.md.)
//
// Each phase is Gloo's own collective: the reduce is gloo::reduce (a ring reduce-scatter and a
// gather to the root), the leaders' allreduce the cached flat algorithm (allreduce.cc), the
// broadcast gloo::broadcast (a binomial tree). The two extra meshes are connected at the first
// call, through the store the world met in, so runs that never use them pay nothing. With
// leaders_only (exec's GPU ranks, whose server phases are NCCL's) only the leaders' phase runs,
// and only the leaders connect.
#include "gloo_impl.h"

#include <gloo/broadcast.h>
#include <gloo/reduce.h>
#include <gloo/rendezvous/prefix_store.h>

namespace basin::comm {

void Communicator::Impl::hierarchical_allreduce(void* wire, std::size_t count, const AllreduceOptions& options,
                                                CachedAllreduce& entry, const std::string& operation) {
  Hierarchy& h = *hierarchy;
  const bool inside = !options.leaders_only && h.server->size > 1;
  // Every rank of a server runs the same sequence of full calls (the leaders' phase alone is not
  // one), so a per-call tag keeps one call's messages from ever matching another's slots.
  const std::uint32_t tag = inside ? h.calls++ : 0;
  const bool fp32 = options.precision == WirePrecision::fp32;
  auto set_buffer = [&](auto& opts) {
    if (fp32) opts.template setOutput<float>(static_cast<float*>(wire), count);
    else opts.template setOutput<gloo::float16>(static_cast<gloo::float16*>(wire), count);
  };
  if (inside) {
    gloo::ReduceOptions reduce(h.server);
    set_buffer(reduce);
    reduce.setRoot(0);
    reduce.setReduceFunction(element_sum(options.precision));
    reduce.setTag(tag);
    BASIN_GLOO_CALL(*this, operation + ", reducing onto the server's first rank", gloo::reduce(reduce));
  }
  if (entry.algorithm) BASIN_GLOO_CALL(*this, operation + ", among the servers' first ranks", entry.algorithm->run());
  if (inside) {
    gloo::BroadcastOptions broadcast(h.server);
    set_buffer(broadcast);
    broadcast.setRoot(0);
    broadcast.setTag(tag);
    BASIN_GLOO_CALL(*this, operation + ", broadcasting from the server's first rank", gloo::broadcast(broadcast));
  }
}

void Communicator::Impl::connect_hierarchy(bool with_server) {
  const RendezvousConfig& c = config;
  const int k = c.local_world_size, server = c.rank / k, servers = c.world_size / k;
  if (!hierarchy) hierarchy = std::make_unique<Hierarchy>();
  Hierarchy* h = hierarchy.get();
  // A group that is the whole world reuses its mesh: Gloo's reduce and broadcast take slots of
  // their own (gloo/types.h: kReduceSlotPrefix and kBroadcastSlotPrefix in the top byte), apart
  // from the small slot numbers the algorithm classes take with Context::nextSlot.
  auto mesh = [&](const std::string& name, int rank, int size) -> std::shared_ptr<gloo::rendezvous::Context> {
    if (size == c.world_size) return context;
    auto group = std::make_shared<gloo::rendezvous::Context>(rank, size);
    group->setTimeout(context->getTimeout());
    if (size > 1) {
      gloo::rendezvous::PrefixStore prefixed(c.run_id + "/" + name, *store.store);
      group->connectFullMesh(prefixed, device);
    }
    return group;
  };
  if (with_server && !h->server) h->server = mesh("server-" + std::to_string(server), c.local_rank, k);
  if (c.local_rank == 0 && !h->leaders) h->leaders = mesh("leaders", server, servers);
}

}  // namespace basin::comm
