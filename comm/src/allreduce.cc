// Allreduce (sum) over Gloo's own algorithm classes, fp32, fp16 or bf16 on the wire, with the algorithm
// objects cached per (buffer, count, options) as Caffe2 did: constructing one registers send and
// receive buffers with every pair it uses, which costs more than a small bucket's transfer.
//
// Cases Gloo does not handle well are handled here without talking to Gloo: a count of 0 (every
// rank passes the same count, so nobody waits) and a world of 1 rank. Gloo's classes take the
// count as int and its ring the byte count as int, so larger buckets are refused with a message.
#include "gloo_impl.h"

#include <gloo/allreduce_bcube.h>
#include <gloo/allreduce_halving_doubling.h>
#include <gloo/allreduce_ring.h>
#include <gloo/allreduce_ring_chunked.h>

#include <basin/kernels.h>

#include <climits>
#include <exception>
#include <cmath>
#include <cstring>

namespace basin::comm {
namespace {

// The 16-bit wires' reductions: each partial sum is formed in float and rounded once to 16 bits,
// which is what bounds the error (see comm/README.md). Gloo's default float16 sum does the same
// through its own conversions. Gloo has no bfloat16 type; its float16 is only a 16-bit container
// to the algorithms (they copy and call the reduction), so bf16 travels in it too, with its sum.
namespace kn = basin::kernels;
template <std::uint16_t (*narrow)(float), float (*widen)(std::uint16_t)>
void half_element_sum(void* z, const void* x, const void* y, std::size_t n) {
  auto* out = static_cast<std::uint16_t*>(z);
  const auto* a = static_cast<const std::uint16_t*>(x);
  const auto* b = static_cast<const std::uint16_t*>(y);
  for (std::size_t i = 0; i < n; ++i) out[i] = narrow(widen(a[i]) + widen(b[i]));
}
void fp16_sum(gloo::float16* x, const gloo::float16* y, std::size_t n) {
  half_element_sum<kn::float_to_fp16_bits, kn::fp16_bits_to_float>(x, x, y, n);
}
void bf16_sum(gloo::float16* x, const gloo::float16* y, std::size_t n) {
  half_element_sum<kn::float_to_bf16_bits, kn::bf16_bits_to_float>(x, x, y, n);
}
const gloo::ReductionFunction<gloo::float16> fp16_sum_function(gloo::SUM, &fp16_sum);
const gloo::ReductionFunction<gloo::float16> bf16_sum_function(gloo::SUM, &bf16_sum);

// The fp32 sum: basin's vectorized add_into (algorithms.cc) in place of Gloo's scalar loop.
void float_sum(float* x, const float* y, std::size_t n) { add_into(x, y, n); }
const gloo::ReductionFunction<float> float_sum_function(gloo::SUM, &float_sum);

template <class T>
std::unique_ptr<gloo::Algorithm> make_algorithm(Algorithm algorithm, const std::shared_ptr<gloo::Context>& context,
                                                T* data, int count, const gloo::ReductionFunction<T>* fn) {
  const std::vector<T*> ptrs{data};
  switch (algorithm) {
    case Algorithm::ring: return std::make_unique<gloo::AllreduceRing<T>>(context, ptrs, count, fn);
    case Algorithm::ring_chunked: return std::make_unique<gloo::AllreduceRingChunked<T>>(context, ptrs, count, fn);
    case Algorithm::halving_doubling:
      return std::make_unique<gloo::AllreduceHalvingDoubling<T>>(context, ptrs, count, fn);
    case Algorithm::bcube: return std::make_unique<gloo::AllreduceBcube<T>>(context, ptrs, count, fn);
    case Algorithm::hierarchical: break;  // three Gloo collectives, not one class (hierarchical.cc)
  }
  throw CommError(std::string("no single Gloo class runs the allreduce algorithm ") + name(algorithm));
}

// Gloo's reduce and broadcast take the sum as z = x + y over raw bytes.
void float_element_sum(void* z, const void* x, const void* y, std::size_t n) {
  auto* out = static_cast<float*>(z);
  const auto* a = static_cast<const float*>(x);
  const auto* b = static_cast<const float*>(y);
  if (out == a) {
    add_into(out, b, n);
    return;
  }
  for (std::size_t i = 0; i < n; ++i) out[i] = a[i] + b[i];
}

// Cached algorithms past this many are dropped all at once. Every rank sees the same sequence of
// calls, so every rank drops at the same call and the pairs' slot numbers stay in step.
constexpr std::size_t max_cached = 1024;

}  // namespace

std::unique_ptr<gloo::Algorithm> make_allreduce(Algorithm algorithm, const std::shared_ptr<gloo::Context>& context,
                                                float* data, int count) {
  return make_algorithm(algorithm, context, data, count, &float_sum_function);
}
std::unique_ptr<gloo::Algorithm> make_allreduce(Algorithm algorithm, const std::shared_ptr<gloo::Context>& context,
                                                gloo::float16* data, int count, WirePrecision wire) {
  return make_algorithm(algorithm, context, data, count,
                        wire == WirePrecision::fp16 ? &fp16_sum_function : &bf16_sum_function);
}

ElementSum element_sum(WirePrecision wire) {
  switch (wire) {
    case WirePrecision::fp32: return &float_element_sum;
    case WirePrecision::fp16: return &half_element_sum<kn::float_to_fp16_bits, kn::fp16_bits_to_float>;
    case WirePrecision::bf16: return &half_element_sum<kn::float_to_bf16_bits, kn::bf16_bits_to_float>;
  }
  throw CommError("unknown wire precision " + std::to_string(static_cast<int>(wire)));
}

Communicator::Communicator(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
// Gloo's tcp Buffer::waitRecv checks the pair for an exception before it looks at completed
// receives, so a rank that returns from its last collective and closes its pairs while a peer has
// not yet consumed its final message makes that peer fail with "Connection closed by peer" although
// the data arrived (halving-doubling ends on notifications nobody waits to see sent). A barrier on a
// healthy mesh keeps every rank's pairs open until every rank has finished its collectives. Each
// Gloo wait is bounded by the timeout, a dead peer fails it at once, and any failure is swallowed:
// the work is done and a destructor must not throw.
Communicator::~Communicator() {
  if (!impl_ || !impl_->farewell || !impl_->broken.empty() || std::uncaught_exceptions() > 0) return;
  try {
    if (impl_->farewell) impl_->farewell->run();
  } catch (...) {
    // A peer that left first or died: nothing of ours is lost, so teardown goes on.
  }
}
void Communicator::leave_on_failure() {
  if (impl_) impl_->farewell.reset();
}
int Communicator::rank() const { return impl_->config.rank; }
int Communicator::world_size() const { return impl_->config.world_size; }
int Communicator::local_rank() const { return impl_->config.local_rank; }
int Communicator::local_world_size() const { return impl_->config.local_world_size; }
std::chrono::milliseconds Communicator::timeout() const { return impl_->config.timeout; }
std::size_t Communicator::cached_algorithms() const { return impl_->cache.size() + impl_->leaders_cache.size(); }

void Communicator::allreduce(std::span<float> data, const AllreduceOptions& options) {
  Impl& m = *impl_;
  const int rank = m.config.rank, world = m.config.world_size;
  const bool hierarchical = options.algorithm == Algorithm::hierarchical;
  const std::string operation = std::string("allreduce ") + name(options.algorithm) +
                                (hierarchical ? std::string("(") + name(options.inter) + ")" : std::string()) + " " +
                                name(options.precision) + " of " + std::to_string(data.size()) + " floats";
  auto refuse = [&](const std::string& why) {
    throw CommError("rank " + std::to_string(rank) + ": " + operation + ": " + why, rank);
  };
  m.ensure_usable();
  if (const auto why = unsupported_reason(options.algorithm, world, options.bcube_base); !why.empty()) refuse(why);
  if (hierarchical)
    if (const auto why = hierarchy_reason(m.config, options.inter); !why.empty()) refuse(why);
  if (options.leaders_only && !hierarchical) refuse("leaders_only is a phase of the hierarchical allreduce");
  if (!std::isfinite(options.scale)) refuse("scale " + std::to_string(options.scale) + ": expected a finite number");
  // Gloo's AllreduceRing keeps count * sizeof(T) in an int.
  if (data.size() > static_cast<std::size_t>(INT_MAX) / sizeof(float))
    refuse("count exceeds Gloo's limit of " + std::to_string(INT_MAX / sizeof(float)) + " floats: split it into buckets");
  if (data.empty()) return;
  if (!data.data()) refuse("data is null with a non-zero count");

  if (world == 1) {
    if (options.scale != 1.0f)
      for (float& x : data) x *= options.scale;
    return;
  }

  if (hierarchical && options.leaders_only && m.config.local_rank != 0) return;  // the leader sums for us
  if (hierarchical && (!m.hierarchy || (!options.leaders_only && !m.hierarchy->server)))
    BASIN_GLOO_CALL(m, "connecting the meshes of " + operation, m.connect_hierarchy(!options.leaders_only));
  const CacheKey key{data.data(), data.size(), static_cast<int>(options.algorithm), static_cast<int>(options.precision),
                     options.algorithm == Algorithm::bcube ? options.bcube_base : 0,
                     hierarchical ? static_cast<int>(options.inter) : -1, options.leaders_only};
  auto& cache = options.leaders_only ? m.leaders_cache : m.cache;
  auto it = cache.find(key);
  if (it == cache.end()) {
    if (cache.size() >= max_cached) cache.clear();
    CachedAllreduce entry;
    const int count = static_cast<int>(data.size());
    // The flat algorithm's ranks: the whole mesh, or for hierarchical the leaders (none elsewhere).
    const std::shared_ptr<gloo::Context> ranks =
        hierarchical ? std::shared_ptr<gloo::Context>(m.hierarchy->leaders) : std::shared_ptr<gloo::Context>(m.context);
    const Algorithm flat = hierarchical ? options.inter : options.algorithm;
    m.context->base = options.bcube_base;  // AllreduceBcube reads its group size from the context
    if (options.precision != WirePrecision::fp32) entry.staging.resize(data.size());
    if (ranks && ranks->size > 1) {
      entry.algorithm = BASIN_GLOO_CALL(m, "building " + operation,
                                        options.precision == WirePrecision::fp32
                                            ? make_allreduce(flat, ranks, data.data(), count)
                                            : make_allreduce(flat, ranks, entry.staging.data(), count, options.precision));
    }
    it = cache.emplace(key, std::move(entry)).first;
  }

  CachedAllreduce& entry = it->second;
  auto run = [&](void* wire) {
    if (hierarchical) m.hierarchical_allreduce(wire, data.size(), options, entry, operation);
    else BASIN_GLOO_CALL(m, operation, entry.algorithm->run());
  };
  // Gloo's AllreduceBcube is not safe to run twice: a fast peer's next run can write into a
  // receive buffer this rank is still reducing from (intermittently wrong sums in our tests).
  // A fresh object takes fresh slots, so bcube is rebuilt for every call instead of cached.
  struct DropBcube {
    std::map<CacheKey, CachedAllreduce>& cache;
    decltype(it) at;
    bool drop;
    ~DropBcube() {
      if (drop) cache.erase(at);
    }
  } drop_bcube{cache, it, options.algorithm == Algorithm::bcube};
  if (options.precision != WirePrecision::fp32) {
    // Scale before rounding to 16 bits, so a mean (scale 1/p) keeps large sums inside half's range.
    const auto narrow = options.precision == WirePrecision::fp16 ? kn::float_to_fp16_bits : kn::float_to_bf16_bits;
    const auto widen = options.precision == WirePrecision::fp16 ? kn::fp16_bits_to_float : kn::bf16_bits_to_float;
    for (std::size_t i = 0; i < data.size(); ++i) entry.staging[i].x = narrow(data[i] * options.scale);
    run(entry.staging.data());
    for (std::size_t i = 0; i < data.size(); ++i) data[i] = widen(entry.staging[i].x);
  } else {
    run(data.data());
    if (options.scale != 1.0f)
      for (float& x : data) x *= options.scale;
  }
}

void Communicator::barrier() {
  impl_->barrier_value[0] = 0;
  allreduce(impl_->barrier_value, {.algorithm = Algorithm::ring});
}

void Communicator::Impl::prepare_farewell() {
  farewell = BASIN_GLOO_CALL(*this, "building the teardown barrier",
                             std::make_unique<gloo::AllreduceRing<float>>(context, std::vector<float*>{farewell_value.data()}, 1));
}

Communicator::Impl::~Impl() {
  // Algorithms unregister their buffers from the pairs, so they go before the context.
  try {
    farewell.reset();
    cache.clear();
    leaders_cache.clear();
    hierarchy.reset();
  } catch (...) {
    // gloo::Algorithm's destructor is noexcept(false); a failing teardown must not terminate.
  }
}

void Communicator::Impl::ensure_usable() const {
  const std::lock_guard lock(failure_mutex);
  if (!broken.empty())
    throw CommError("rank " + std::to_string(config.rank) +
                        ": the communicator is unusable after an earlier failure: " + broken,
                    config.rank);
}

int peer_in_message(const std::vector<std::string>& peer_addresses, const std::string& message) {
  for (std::size_t r = 0; r < peer_addresses.size(); ++r) {
    const std::string& address = peer_addresses[r];
    if (address.empty()) continue;
    for (auto at = message.find(address); at != std::string::npos; at = message.find(address, at + 1)) {
      const std::size_t after = at + address.size();
      // "[127.0.0.1]:4000" must not match inside "[127.0.0.1]:40001".
      if (after >= message.size() || !std::isdigit(static_cast<unsigned char>(message[after])))
        return static_cast<int>(r);
    }
  }
  return -1;
}

CommError Communicator::Impl::failure(const char* file, int line, const std::string& operation,
                                       const std::string& gloo_message) {
  const std::lock_guard lock(failure_mutex);
  const bool first = broken.empty();
  const RollCall call = first ? roll_call(operation) : RollCall{};
  int peer = call.silent.size() == 1 ? call.silent.front() : -1;
  const int named = peer_in_message(peer_addresses, gloo_message);
  const bool timed_out = gloo_message.find("imed out") != std::string::npos ||
                         gloo_message.find("timeout") != std::string::npos;
  std::string where = file;
  if (const auto at = where.rfind("comm/src/"); at != std::string::npos) where = where.substr(at);
  std::string message = "rank " + std::to_string(config.rank) + ": " + operation + " failed (" + where + ":" +
                        std::to_string(line) + ")";
  if (!call.silent.empty()) {
    message += ":" + call.text.substr(1);  // the roll call is what names the rank at fault
  } else {
    if (named >= 0) {
      peer = named;
      message += ": rank " + std::to_string(named) + " (" + peer_addresses[named] + ") stopped answering";
    } else if (timed_out) {
      const auto waited = config.timeout - roll_call_window(config.timeout);
      message += ": no answer within Gloo's timeout of " + std::to_string(waited.count()) +
                 " ms (Gloo's message does not say which rank is silent)";
    } else {
      // Gloo names the peer of an accepted connection by the port that peer connected from,
      // which no rank published: the peer is known only as an address.
      message += ": a peer closed its connection (Gloo names it by the port it connected from, "
                 "which does not identify the rank)";
    }
    message += call.text;
  }
  message += "; Gloo said: " + gloo_message;
  if (first) broken = message;
  return CommError(message, config.rank, peer, timed_out);
}

}  // namespace basin::comm
