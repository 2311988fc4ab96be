// Rendezvous and connection of the full mesh (Gloo's TCP transport).
//
// Before handing the store to Gloo's connectFullMesh every rank announces itself under
// "<run_id>/joined/<rank>" and polls for the others until the deadline. Gloo's own wait only says
// "Wait timeout for key(s): [3]"; our poll knows which ranks never appeared and where we looked,
// which is what someone debugging a stuck launch needs.
#include "gloo_impl.h"

#include <gloo/rendezvous/file_store.h>
#include <gloo/rendezvous/hash_store.h>
#include <gloo/rendezvous/prefix_store.h>
#if BASIN_COMM_HAVE_REDIS
#include <gloo/rendezvous/redis_store.h>
#endif
#include <gloo/transport/tcp/device.h>
#include <gloo/transport/tcp/address.h>

#include <filesystem>
#include <map>
#include <thread>

namespace basin::comm {

// Gloo's HashStore, shared by the threads of one process, with a non-blocking key check.
struct InProcessStore : gloo::rendezvous::HashStore {
  bool has(const std::string& key) {
    std::lock_guard<std::mutex> lock(m_);
    return map_.count(key) != 0;
  }
};

namespace {

// Gloo's FileStore keeps its non-blocking key check protected; this subclass exposes it so the join poll can list the ranks still missing.
struct FileStoreProbe : gloo::rendezvous::FileStore {
  using FileStore::FileStore;
  bool has(const std::string& key) { return check({key}); }
};

// Debian's gloo/transport/tcp/pair.h includes a header the package lacks, so the peers' addresses
// (which Gloo's errors print) are taken from the rendezvous itself: this store records what
// connectFullMesh reads, each rank's key holding the addresses of its pairs, and MeshContext
// exposes Gloo's own extractAddress to pick out the one each peer made for this rank.
struct RecordingStore : gloo::rendezvous::Store {
  explicit RecordingStore(gloo::rendezvous::Store& inner) : inner(inner) {}
  void set(const std::string& key, const std::vector<char>& data) override { inner.set(key, data); }
  std::vector<char> get(const std::string& key) override { return read[key] = inner.get(key); }
  void wait(const std::vector<std::string>& keys) override { inner.wait(keys); }
  void wait(const std::vector<std::string>& keys, const std::chrono::milliseconds& timeout) override {
    inner.wait(keys, timeout);
  }
  gloo::rendezvous::Store& inner;
  std::map<std::string, std::vector<char>> read;
};

struct MeshContext : gloo::rendezvous::Context {
  using Context::Context;
  std::string peer_address(std::vector<char> all_addresses, int peer) {
    return gloo::transport::tcp::Address(extractAddress(all_addresses, peer)).str();
  }
};

std::string rank_prefix(const RendezvousConfig& c) { return "rank " + std::to_string(c.rank) + ": "; }

void validate(const RendezvousConfig& c) {
  auto bad = [&](const std::string& what) { throw CommError("rendezvous config: " + what, c.rank); };
  if (c.world_size < 1) bad("world_size " + std::to_string(c.world_size) + ": expected at least 1");
  if (c.rank < 0 || c.rank >= c.world_size)
    bad("rank " + std::to_string(c.rank) + ": expected [0, " + std::to_string(c.world_size - 1) + "]");
  if (c.local_rank < 0) bad("local_rank " + std::to_string(c.local_rank) + ": expected >= 0");
  if (c.local_world_size < 1)
    bad("local_world_size " + std::to_string(c.local_world_size) + ": expected at least 1 (ranks per server)");
  if (c.timeout.count() <= 0) bad("timeout " + std::to_string(c.timeout.count()) + " ms: expected > 0");
  if (c.run_id.empty()) bad("run_id is empty: expected a name for this run");
  if (c.interface.empty() && c.address.empty()) bad("interface and address are both empty: expected one to bind to");
  if (c.store == StoreKind::file && c.file_dir.empty()) bad("file_dir is empty: expected a directory every rank can see");
  if (c.store == StoreKind::redis && c.redis_host.empty()) bad("redis_host is empty: expected a redis-server's host");
  if (c.store == StoreKind::redis && (c.redis_port < 1 || c.redis_port > 65535))
    bad("redis_port " + std::to_string(c.redis_port) + ": expected [1, 65535]");
  if (c.store == StoreKind::in_process && !c.in_process)
    bad("store is in_process but in_process is null: expected make_in_process_store()'s store");
}

RendezvousStore open_store(const RendezvousConfig& c) {
  RendezvousStore s;
  try {
    if (c.store == StoreKind::file) {
      s.where = "file store " + c.file_dir;
      std::error_code ec;
      std::filesystem::create_directories(c.file_dir, ec);
      if (ec) throw CommError(rank_prefix(c) + "cannot create rendezvous directory " + c.file_dir + ": " + ec.message(), c.rank);
      auto store = std::make_shared<FileStoreProbe>(c.file_dir);
      s.has = [store](const std::string& k) { return store->has(k); };
      s.store = store;
    } else if (c.store == StoreKind::redis) {
      s.where = "redis-server " + c.redis_host + ":" + std::to_string(c.redis_port);
#if BASIN_COMM_HAVE_REDIS
      auto store = std::make_shared<gloo::rendezvous::RedisStore>(c.redis_host, c.redis_port);
      s.has = [store](const std::string& k) { return store->check({k}); };
      s.store = store;
#else
      throw CommError(rank_prefix(c) + "cannot use the " + s.where +
                          ": this Gloo was built without Redis support (GLOO_USE_REDIS=0 or no hiredis headers); "
                          "use a file store (BASIN_RENDEZVOUS_DIR) instead", c.rank);
#endif
    } else {
      s.where = "in-process store";
      auto store = c.in_process;
      s.has = [store](const std::string& k) { return store->has(k); };
      s.store = store;
    }
  } catch (const CommError&) {
    throw;
  } catch (const std::exception& e) {
    throw CommError(rank_prefix(c) + "cannot open the rendezvous " + s.where + " (" + __FILE__ + ":" +
                        std::to_string(__LINE__) + "): " + e.what(),
                    c.rank);
  }
  return s;
}

// Announces this rank and waits until every rank has, or throws naming the absent ones.
void join(const RendezvousConfig& c, RendezvousStore& s) {
  auto key = [&](int r) { return c.run_id + "/joined/" + std::to_string(r); };
  try {
    s.store->set(key(c.rank), std::vector<char>{'1'});
  } catch (const std::exception& e) {
    throw CommError(rank_prefix(c) + "cannot announce itself in the " + s.where + " (" + __FILE__ + ":" +
                        std::to_string(__LINE__) + "): " + e.what() +
                        " (a key left by an earlier run with the same run_id? use a fresh directory or BASIN_RUN_ID)",
                    c.rank);
  }
  std::vector<int> missing;
  for (int r = 0; r < c.world_size; ++r)
    if (r != c.rank) missing.push_back(r);
  const auto deadline = std::chrono::steady_clock::now() + c.timeout;
  while (true) {
    try {
      std::erase_if(missing, [&](int r) { return s.has(key(r)); });
    } catch (const std::exception& e) {
      throw CommError(rank_prefix(c) + "lost the rendezvous " + s.where + " (" + __FILE__ + ":" +
                          std::to_string(__LINE__) + "): " + e.what(), c.rank);
    }
    if (missing.empty()) return;
    if (std::chrono::steady_clock::now() >= deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  std::string list;
  for (int r : missing) list += (list.empty() ? "" : ", ") + std::to_string(r);
  throw CommError(rank_prefix(c) + "rendezvous through the " + s.where + " (run_id " + c.run_id + ") timed out after " +
                      std::to_string(c.timeout.count()) + " ms; ranks that never appeared: " + list + " of world size " +
                      std::to_string(c.world_size),
                  c.rank, missing.size() == 1 ? missing.front() : -1, true);
}

}  // namespace

std::shared_ptr<InProcessStore> make_in_process_store() { return std::make_shared<InProcessStore>(); }

std::unique_ptr<Communicator> connect(const RendezvousConfig& config) {
  validate(config);
  auto impl = std::make_unique<Communicator::Impl>();
  impl->config = config;
  auto& c = impl->config;
  const std::string bind = c.interface.empty() ? "address " + c.address : "interface " + c.interface;
  try {
    gloo::transport::tcp::attr attr;
    if (c.interface.empty()) attr.hostname = c.address;
    else attr.iface = c.interface;
    impl->device = gloo::transport::tcp::CreateDevice(attr);
  } catch (const std::exception& e) {
    throw CommError(rank_prefix(c) + "cannot listen on " + bind + " (" + __FILE__ + ":" + std::to_string(__LINE__) +
                        "): " + e.what(), c.rank);
  }
  if (c.world_size > 1) {
    impl->store = open_store(c);
    RendezvousStore& store = impl->store;
    join(c, store);
    auto context = std::make_shared<MeshContext>(c.rank, c.world_size);
    impl->context = context;
    // Every wait leaves room for the roll call inside the user's timeout. Gloo's pairs copy the
    // timeout when connectFullMesh creates them, so it is set before.
    impl->context->setTimeout(c.timeout - roll_call_window(c.timeout));
    gloo::rendezvous::PrefixStore prefixed(c.run_id, *store.store);
    RecordingStore recording(prefixed);
    BASIN_GLOO_CALL(*impl, "connecting the full mesh through the " + store.where + " from " + bind,
                    impl->context->connectFullMesh(recording, impl->device));
    impl->peer_addresses.assign(c.world_size, "");
    for (int r = 0; r < c.world_size; ++r) {
      const auto it = recording.read.find(std::to_string(r));
      if (r == c.rank || it == recording.read.end()) continue;
      try {
        impl->peer_addresses[r] = context->peer_address(it->second, r);
      } catch (const std::exception&) {
        // Only for naming peers in later errors; a failure here leaves the rank unnamed.
      }
    }
    impl->prepare_farewell();
  } else {
    // One rank talks to nobody; a context still exists so the algorithms see world size 1.
    impl->context = std::make_shared<gloo::rendezvous::Context>(0, 1);
    impl->context->setTimeout(c.timeout);
    impl->peer_addresses.assign(1, "");
  }
  return std::make_unique<Communicator>(std::move(impl));
}

}  // namespace basin::comm

namespace basin::comm {

std::vector<char> Communicator::share(const std::string& key, std::vector<char> bytes) {
  const RendezvousConfig& c = impl_->config;
  if (c.world_size == 1) return bytes;
  RendezvousStore& s = impl_->store;
  const std::string full = c.run_id + "/shared/" + key;
  const std::string where = "the " + s.where + " (key " + full + ")";
  if (c.rank == 0) {
    try {
      s.store->set(full, bytes);
    } catch (const std::exception& e) {
      throw CommError(rank_prefix(c) + "cannot write " + where + " (" + __FILE__ + ":" +
                          std::to_string(__LINE__) + "): " + e.what() +
                          " (a key left by an earlier run with the same run_id?)", c.rank);
    }
    return bytes;
  }
  // Polled like the join, so a rank 0 that never writes gives an error naming the key and rank 0.
  const auto deadline = std::chrono::steady_clock::now() + c.timeout;
  try {
    while (!s.has(full)) {
      if (std::chrono::steady_clock::now() >= deadline)
        throw CommError(rank_prefix(c) + "waited " + std::to_string(c.timeout.count()) +
                            " ms for rank 0 to write " + where + "; it never did",
                        c.rank, 0, true);
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return s.store->get(full);
  } catch (const CommError&) {
    throw;
  } catch (const std::exception& e) {
    throw CommError(rank_prefix(c) + "cannot read " + where + " (" + __FILE__ + ":" +
                        std::to_string(__LINE__) + "): " + e.what(), c.rank);
  }
}

}  // namespace basin::comm
