// Which of Gloo's allreduce algorithms can run on how many ranks, their names and the wire
// precisions' names, and the fp32 sum. Kept apart from the Gloo calls so that a build without Gloo can
// still validate a plan's algorithm choice and tests can check the rules without a network.
#include <basin/comm.h>

#include <algorithm>
#include <cstring>

namespace basin::comm {

const char* name(Algorithm algorithm) {
  switch (algorithm) {
    case Algorithm::ring: return "ring";
    case Algorithm::ring_chunked: return "ring_chunked";
    case Algorithm::halving_doubling: return "halving_doubling";
    case Algorithm::bcube: return "bcube";
    case Algorithm::hierarchical: return "hierarchical";
  }
  return "?";
}

const char* name(WirePrecision precision) {
  switch (precision) {
    case WirePrecision::fp32: return "fp32";
    case WirePrecision::fp16: return "fp16";
    case WirePrecision::bf16: return "bf16";
  }
  return "?";
}

WirePrecision parse_wire_precision(const std::string& text) {
  for (auto p : {WirePrecision::fp32, WirePrecision::fp16, WirePrecision::bf16})
    if (text == name(p)) return p;
  throw CommError("wire precision \"" + text + "\": expected fp32, fp16 or bf16");
}

Algorithm parse_algorithm(const std::string& text) {
  // basin sim and plan spell them with hyphens (halving-doubling): the same names here.
  std::string spelled = text;
  std::replace(spelled.begin(), spelled.end(), '-', '_');
  for (auto a : {Algorithm::ring, Algorithm::ring_chunked, Algorithm::halving_doubling, Algorithm::bcube,
                 Algorithm::hierarchical})
    if (spelled == name(a)) return a;
  // What was expected, as the callers' "--algorithm: expected ..." goes on.
  throw CommError("ring, ring_chunked, halving_doubling, bcube or hierarchical, got \"" + text + "\"");
}

std::string unsupported_reason(Algorithm algorithm, int world_size, int bcube_base) {
  if (world_size < 1) return "world size " + std::to_string(world_size) + ": expected at least 1 rank";
  if (algorithm != Algorithm::bcube) return {};  // ring, chunked ring and halving-doubling (binary blocks): any p
  if (bcube_base < 2) return "bcube_base " + std::to_string(bcube_base) + ": expected at least 2";
  // Debian's Gloo 0.0~git20220518 AllreduceBcube returned wrong sums (threads, 4 ranks, repeated
  // runs) and crashed a rank (processes, 4 ranks, 16 KB and 64 KB) in basin's tests and
  // benchmark; until that is understood it is allowed only where it is a single exchange.
  if (world_size > 2)
    return "bcube on " + std::to_string(world_size) +
           " ranks: refused, Debian's Gloo 0.0~git20220518 AllreduceBcube gave wrong sums and crashed on 4 ranks "
           "in basin's tests (comm/README.md); use halving_doubling or ring_chunked";
  // Gloo's AllreduceBcube groups ranks by `base` at every step, a hypercube of p = base^k. Its
  // comment allows any p divisible by the base, but its constructor checks nothing, so basin
  // allows only the hypercube case rather than risk a silently wrong sum.
  long long power = 1;
  while (power < world_size) power *= bcube_base;
  if (power == world_size) return {};
  return "bcube with base " + std::to_string(bcube_base) + " needs the world size to be a power of " +
         std::to_string(bcube_base) + " (1, " + std::to_string(bcube_base) + ", " +
         std::to_string(bcube_base * bcube_base) + ", ...); world size " + std::to_string(world_size) +
         " is not: use ring_chunked or halving_doubling, or a bcube_base whose power it is";
}

bool runs_between_servers(Algorithm inter) {
  return inter == Algorithm::ring || inter == Algorithm::ring_chunked || inter == Algorithm::halving_doubling;
}

std::string hierarchy_reason(const RendezvousConfig& c, Algorithm inter) {
  const int k = c.local_world_size;
  // Checked on every hierarchical call: the text is made only for a refusal.
  auto layout = [&] {
    return " (world_size " + std::to_string(c.world_size) + ", rank " + std::to_string(c.rank) + ", local_rank " +
           std::to_string(c.local_rank) + ", local_world_size " + std::to_string(k) + ")";
  };
  if (k < 1 || c.world_size % k != 0)
    return "the hierarchical allreduce needs the same number of ranks on every server: local_world_size "
           "(LOCAL_WORLD_SIZE) dividing world_size" + layout();
  if (c.local_rank != c.rank % k)
    return "the hierarchical allreduce needs each server's ranks numbered consecutively, as torchrun does: "
           "local_rank = rank % local_world_size" + layout();
  if (!runs_between_servers(inter))
    return std::string("the hierarchical allreduce's algorithm between servers: expected ring, ring_chunked or "
                       "halving_doubling, got ") + name(inter);
  return {};
}

// Gloo's own sum (gloo/math.h) is a loop over possibly aliasing pointers with an int index, which
// GCC 12 leaves scalar, and Debian builds libgloo without its AVX paths; torch's bundled Gloo
// vectorizes. The buffers Gloo passes never overlap, so `restrict` holds; function
// multiversioning picks AVX2 where the CPU has it without requiring it at build time, and the
// file is compiled at -O3, where GCC vectorizes such loops.
__attribute__((target_clones("avx2", "default"))) void add_into(float* __restrict x, const float* __restrict y,
                                                                 std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) x[i] += y[i];
}

}  // namespace basin::comm
