// basin::comm: data-parallel gradient communication between CPU ranks over Gloo's TCP transport.
//
// The one public header of the comm layer. It names no Gloo type, so code that includes it builds
// whether or not Gloo was found (BASIN_HAVE_GLOO); without Gloo, connect() throws CommError.
// The layer depends on no other basin layer but kernels' CPU precision conversions (the one
// rounding to fp16 and bf16 in basin): exec's trainer hands it (offset, count) buckets of
// its flat gradient array and it sums them across ranks, as Caffe2 did on Gloo (Goyal et al. 2017).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

namespace basin::comm {

// Any failure of the layer: bad configuration, a rendezvous that never completed, a peer that died
// or hung. what() names this rank, the operation and, when Gloo's error tells, the peer.
struct CommError : std::runtime_error {
  CommError(const std::string& message, int rank = -1, int peer = -1, bool timed_out = false)
      : std::runtime_error(message), rank(rank), peer(peer), timed_out(timed_out) {}
  int rank;        // the rank that raised it (-1 before a rank is known)
  int peer;        // the rank that stopped answering, when known, else -1
  bool timed_out;  // Gloo's context timeout (or the rendezvous timeout) expired
};

// ---- rendezvous -------------------------------------------------------------------------------

enum class StoreKind { file, redis, in_process };

// A key-value store shared by the threads of one process (Gloo's HashStore), for tests.
struct InProcessStore;
std::shared_ptr<InProcessStore> make_in_process_store();

struct RendezvousConfig {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  // Ranks per server (torchrun's LOCAL_WORLD_SIZE), read only by the hierarchical allreduce: it
  // takes ranks [s * local_world_size, (s + 1) * local_world_size) as server s, as torchrun numbers
  // them. 1: every rank is a server of its own.
  int local_world_size = 1;
  StoreKind store = StoreKind::file;
  std::string file_dir;                        // StoreKind::file: a directory every rank can see
  std::string redis_host;                      // StoreKind::redis
  int redis_port = 6379;
  std::shared_ptr<InProcessStore> in_process;  // StoreKind::in_process
  // Keys are namespaced by this id, so two runs sharing one Redis (or one directory) cannot mix.
  std::string run_id = "basin";
  // Where this rank listens: a network interface name (eth0) wins over an address or host name.
  std::string interface;
  std::string address = "127.0.0.1";
  // Rendezvous deadline and Gloo's context timeout for every later send and receive.
  std::chrono::milliseconds timeout{30000};
};

// Fills the config from torchrun's variables RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR,
// MASTER_PORT and basin's: BASIN_RENDEZVOUS_DIR (file store) or BASIN_REDIS (host:port, or
// "master" for MASTER_ADDR:MASTER_PORT), GLOO_SOCKET_IFNAME, BASIN_BIND_ADDR, BASIN_TIMEOUT_S,
// BASIN_RUN_ID. Throws CommError naming the variable and what was expected.
using Getenv = std::function<const char*(const char*)>;
RendezvousConfig rendezvous_from_env();
RendezvousConfig rendezvous_from_env(const Getenv& getenv);

// ---- allreduce --------------------------------------------------------------------------------

// Gloo's own allreduce classes, and Goyal et al.'s three phases built from Gloo's collectives:
// `hierarchical` reduces each server's ranks onto its first (Gloo's ring reduce), allreduces
// among those leaders with the `inter` algorithm, and broadcasts back inside each server (Gloo's
// binomial broadcast). Only the leaders' traffic crosses the network.
enum class Algorithm { ring, ring_chunked, halving_doubling, bcube, hierarchical };
// What travels on the wire and is reduced: fp16 and bf16 halve the bytes and round each partial
// sum to 16 bits: IEEE half (11 significant bits; values beyond 65504 become infinite) or bfloat16
// (8 significant bits, fp32's range), each partial sum formed in fp32 and rounded to nearest even.
enum class WirePrecision { fp32, fp16, bf16 };

struct AllreduceOptions {
  Algorithm algorithm = Algorithm::ring_chunked;
  WirePrecision precision = WirePrecision::fp32;
  float scale = 1.0f;  // the sum is multiplied by this (1/world_size for a mean); fp16/bf16 pre-scale
  int bcube_base = 2;  // bcube's group size: the world size must be a power of it
  // hierarchical's algorithm among the servers' leaders: ring, ring_chunked or halving_doubling.
  Algorithm inter = Algorithm::halving_doubling;
  // hierarchical only: the phase among the leaders alone. The caller has summed each server onto
  // its first rank and broadcasts the result itself (exec's GPU ranks, where NCCL runs both
  // phases inside a server); the other ranks return at once, and only the leaders' mesh is
  // connected, so only the leaders call it.
  bool leaders_only = false;
};

const char* name(Algorithm algorithm);
const char* name(WirePrecision precision);
WirePrecision parse_wire_precision(const std::string& text);  // "fp32", "fp16", "bf16"; throws CommError
// "ring", "ring_chunked", ... (or "ring-chunked"); throws CommError saying what was expected:
// "ring, ring_chunked, ..., got \"x\"".
Algorithm parse_algorithm(const std::string& text);

// Empty when Gloo's `algorithm` can run on `world_size` ranks, else why not and what to use.
// For hierarchical this checks only the world size; hierarchy_reason checks the servers.
std::string unsupported_reason(Algorithm algorithm, int world_size, int bcube_base = 2);
// Empty when the hierarchical allreduce can run on this rank's layout: local_world_size dividing
// the world, rank = server * local_world_size + local_rank, and `inter` one of the flat
// algorithms that runs on world_size / local_world_size leaders. Else why not and what to set.
std::string hierarchy_reason(const RendezvousConfig& config, Algorithm inter);
// Whether the hierarchical allreduce runs `inter` among the servers' leaders: ring, ring_chunked
// or halving_doubling (Gloo's bcube, refused on more than 2 ranks, and hierarchical itself not).
bool runs_between_servers(Algorithm inter);

// The fp32 reduction every allreduce runs between network steps (x[i] += y[i]; x and y do not
// overlap): AVX2 where the CPU has it. Exposed so that the emulated-cluster probe and benchmarks
// measure the rate the collectives actually reduce at.
void add_into(float* x, const float* y, std::size_t n);

// A connected full mesh of world_size ranks. Not thread-safe: one thread at a time (the
// BucketReducer's thread while it has work) may run collectives on it.
class Communicator {
 public:
  // On a clean exit, waits at a last barrier until every rank has finished its collectives;
  // not while an exception unwinds, nor after leave_on_failure(): this rank failed, its peers
  // may be inside a collective it will never join, and waiting out the timeout would only
  // delay the failure's report.
  ~Communicator();
  // This rank is failing: its destructor goes without the barrier.
  void leave_on_failure();
  int rank() const;
  int world_size() const;
  int local_rank() const;
  int local_world_size() const;
  std::chrono::milliseconds timeout() const;

  // Sums `data` across all ranks in place (every rank passes the same count and options). The
  // first hierarchical allreduce connects two more meshes through the same store: one among the
  // ranks of this rank's server and one among the servers' leaders.
  // Gloo's algorithm objects are built once per (buffer, count, options) and reused, so every
  // rank must pass buffers with the same history: a long-lived buffer per purpose. A fresh
  // vector whose address happens to repeat an earlier one on some ranks only would have them
  // run different collectives and hang.
  void allreduce(std::span<float> data, const AllreduceOptions& options = {});
  // Every rank waits for all others (a tiny allreduce; used by tests and benchmarks).
  void barrier();
  // How many Gloo algorithm objects are cached (tests check that repeated buckets reuse them).
  std::size_t cached_algorithms() const;
  // Rank 0's `bytes` on every rank, through the rendezvous store the mesh was built from (key
  // "<run_id>/shared/<key>"): how a second library's bootstrap (NCCL's unique id) reaches the
  // ranks without a transport of its own. Every rank calls it with the same key, once per key
  // (stores cannot delete); ranks other than 0 pass nothing and wait up to the timeout, then get
  // a CommError naming the store and the key. A world of one returns `bytes` untouched.
  std::vector<char> share(const std::string& key, std::vector<char> bytes = {});
  // After a failure outside Gloo (an NCCL collective that never finished): the roll call a Gloo
  // failure starts (roll_call.cc), through the same store, so another library's error can name
  // the rank at fault. Every rank that fails calls it; the ranks that never answer within
  // roll_call_window(timeout()) are the hung or dead ones. Returns the sentence saying so ("; rank
  // 3 did not answer ..."), empty in a world of one or when a roll call already ran (its keys are
  // written once per run), and leaves the mesh unusable, as after a Gloo failure. `silent`, when
  // given, receives the ranks that never answered.
  std::string roll_call(const std::string& operation, std::vector<int>* silent = nullptr);

  struct Impl;
  explicit Communicator(std::unique_ptr<Impl> impl);

 private:
  std::unique_ptr<Impl> impl_;
};

// Rendezvous and connect the full mesh over Gloo's TCP transport. A rank that cannot complete the
// rendezvous within config.timeout gets a CommError naming the store (directory or host:port) and
// the ranks that never appeared.
std::unique_ptr<Communicator> connect(const RendezvousConfig& config);

// How long a roll call waits for the other ranks: a fifth of the communication timeout, 0.1 s to
// 5 s. A collective's own wait is the rest, so a silent rank stops the others within the timeout
// the user chose.
std::chrono::milliseconds roll_call_window(std::chrono::milliseconds timeout);

// ---- bucketed, overlapped gradient reduction ---------------------------------------------------

struct BucketTiming {
  long long offset = 0, count = 0;
  std::chrono::steady_clock::time_point submitted, start, end;  // steady clock
};

// Allreduces (offset, count) buckets of one flat gradient array on its own thread, in the order
// submitted, while the caller goes on computing. wait() blocks until every submitted bucket is
// reduced and returns their timings; an error on the thread is rethrown there as a CommError
// naming the rank, the bucket and the operation. After an error the reducer accepts no more work.
class BucketReducer {
 public:
  BucketReducer(Communicator& comm, std::span<float> gradients, AllreduceOptions options = {});
  ~BucketReducer();
  BucketReducer(const BucketReducer&) = delete;
  BucketReducer& operator=(const BucketReducer&) = delete;

  // `before`, when given, runs on the reducer's thread just before this bucket's allreduce: a
  // wait for the bucket's data to arrive (exec's device-to-host copy). Its exception fails the
  // bucket like a failed allreduce. `after` runs there once the bucket is summed (not after a
  // failure): a signal for whoever takes the sum on (exec's copy back to the GPU).
  void submit(long long offset, long long count, std::function<void()> before = {},
              std::function<void()> after = {});
  std::vector<BucketTiming> wait();

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace basin::comm
