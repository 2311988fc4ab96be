// Internal to comm/: the Gloo state behind a Communicator and the wrapper every Gloo call goes
// through. Gloo reports failures as gloo::Exception / gloo::IoException whose text may name a
// peer's address but never its rank; the wrapper turns them into CommError with this rank, the
// operation, file:line of the call, Gloo's own message and the peer's rank when the address in
// the message is one of ours.
#pragma once

#include <basin/comm.h>

#include <gloo/algorithm.h>
#include <gloo/common/error.h>
#include <gloo/rendezvous/context.h>
#include <gloo/transport/device.h>
#include <gloo/types.h>

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

namespace basin::comm {

// One cached Gloo algorithm: built for one (buffer, count, options) and run again for every later
// allreduce of the same bucket, as Caffe2 did (construction registers buffers with the pairs).
struct CachedAllreduce {
  std::vector<gloo::float16> staging;  // the fp16 or bf16 wire's 16-bit values; empty for fp32
  std::unique_ptr<gloo::Algorithm> algorithm;
};

// The rendezvous store, kept after connect for the roll call that follows a failure (roll_call.cc).
struct RendezvousStore {
  std::shared_ptr<gloo::rendezvous::Store> store;
  std::function<bool(const std::string&)> has;  // a non-blocking key check
  std::string where;  // for messages: "file store /shared/rdzv", "redis-server host:port"
};

// Who answered the roll call after a failure, and the sentence saying so.
struct RollCall {
  std::vector<int> silent;    // ranks that never answered: hung, stopped, dead or cut off
  std::vector<int> answered;  // ranks that failed too (the others' failure reached them)
  std::string text;           // "; roll call ...": empty when there was nobody to call
};

using CacheKey = std::tuple<const float*, std::size_t, int /*algorithm*/, int /*precision*/, int /*base*/,
                            int /*inter*/, bool /*leaders_only*/>;

// The hierarchical allreduce's two extra meshes, connected at its first use (hierarchical.cc).
struct Hierarchy {
  std::shared_ptr<gloo::rendezvous::Context> server;   // this server's ranks, by local rank; null
                                                       // while only the leaders' phase has run
  std::shared_ptr<gloo::rendezvous::Context> leaders;  // every server's local rank 0; null elsewhere
  std::uint32_t calls = 0;  // tags each call's reduce and broadcast, in step on every rank
};

// Gloo's flat allreduce `algorithm` over `context` on `count` values at `data`: fp32 with basin's
// vectorized sum, or a 16-bit wire (gloo::float16 holding fp16 or bf16 bits) with its rounding sum
// (allreduce.cc).
std::unique_ptr<gloo::Algorithm> make_allreduce(Algorithm algorithm, const std::shared_ptr<gloo::Context>& context,
                                                float* data, int count);
std::unique_ptr<gloo::Algorithm> make_allreduce(Algorithm algorithm, const std::shared_ptr<gloo::Context>& context,
                                                gloo::float16* data, int count, WirePrecision wire);
// z = x + y for n elements of the wire precision, in the form Gloo's reduce takes (x may be z).
using ElementSum = void (*)(void* z, const void* x, const void* y, std::size_t n);
ElementSum element_sum(WirePrecision wire);

struct Communicator::Impl {
  RendezvousConfig config;
  std::shared_ptr<gloo::transport::Device> device;
  std::shared_ptr<gloo::rendezvous::Context> context;
  std::vector<std::string> peer_addresses;  // by rank, as Gloo prints them ("[127.0.0.1]:41234")
  RendezvousStore store;                    // empty for a world of one
  std::map<CacheKey, CachedAllreduce> cache;
  // The leaders' phase alone (AllreduceOptions::leaders_only) runs on the leaders only, so its
  // algorithms are cached apart: `cache` is cleared on every rank at the same call, which this
  // one's entries (leaders only) would put out of step.
  std::map<CacheKey, CachedAllreduce> leaders_cache;
  std::unique_ptr<Hierarchy> hierarchy;  // after the first hierarchical allreduce
  std::string broken;                      // the first Gloo failure; the mesh is unusable after it
  // Guards `broken` and the roll call: a GPU rank's NCCL failure (main thread) and its Gloo
  // reducer's failure (reducer thread) may both reach for them; the second then finds it done.
  mutable std::mutex failure_mutex;
  std::vector<float> barrier_value = std::vector<float>(1);
  // The destructor's barrier, built at connect before any collective so that its slots are its own:
  // data a peer sent for a collective this rank never ran cannot land in it.
  std::vector<float> farewell_value = std::vector<float>(1);
  std::unique_ptr<gloo::Algorithm> farewell;

  ~Impl();
  // Throws the recorded failure again: after a Gloo error the pairs are closed or out of step.
  void ensure_usable() const;
  // Builds `farewell` (connect calls it right after the mesh is up, on every rank alike).
  void prepare_farewell();
  // After this rank's first failure: closes its connections, so that peers blocked on it fail at
  // once instead of at their timeout, announces itself in the store and waits (roll_call_window)
  // for the other ranks to do the same. The ranks that never answer are the ones that hung,
  // stopped or died; the ones that answer failed because of them.
  RollCall roll_call(const std::string& operation);
  // Connects `hierarchy`: every rank of the world calls it at the same collective (rendezvous.cc),
  // or, for the leaders' phase alone (with_server false), every leader; the server's mesh then
  // waits for the first full call.
  void connect_hierarchy(bool with_server);
  // The three phases on `wire` (data itself for fp32, else the entry's 16-bit staging), with the
  // leaders' allreduce cached in `entry` (hierarchical.cc).
  void hierarchical_allreduce(void* wire, std::size_t count, const AllreduceOptions& options,
                              CachedAllreduce& entry, const std::string& operation);
  // Builds the CommError for a Gloo failure during `operation` (and records it as `broken`).
  CommError failure(const char* file, int line, const std::string& operation, const std::string& gloo_message);
};

// Runs `call`, turning anything Gloo throws into a CommError with context.
template <class Call>
decltype(auto) gloo_call(Communicator::Impl& impl, const char* file, int line, const std::string& operation, Call&& call) {
  try {
    return call();
  } catch (const CommError&) {
    throw;
  } catch (const gloo::IoException& e) {
    throw impl.failure(file, line, operation, std::string("gloo::IoException: ") + e.what());
  } catch (const gloo::Exception& e) {
    throw impl.failure(file, line, operation, std::string("gloo::Exception: ") + e.what());
  } catch (const std::exception& e) {
    throw impl.failure(file, line, operation, e.what());
  }
}

#define BASIN_GLOO_CALL(impl, operation, ...) ::basin::comm::gloo_call(impl, __FILE__, __LINE__, operation, [&] { return __VA_ARGS__; })


// The rank whose address appears in Gloo's message, or -1.
int peer_in_message(const std::vector<std::string>& peer_addresses, const std::string& message);

}  // namespace basin::comm
