// basin tuner: the rules that tell NCCL which algorithm, protocol and channel count to use for
// each collective and message size. One set of rules, two file formats: basin's own
// `basin.selection/1` JSON (what `basin select` writes) and NCCL's `nccl_tuner.conf` CSV (what
// NVIDIA's example tuner reads). The NCCL tuner plugin (libnccl-tuner-basin.so) loads them with
// the same parser. docs/tuner.md describes both formats.
#pragma once

#include <climits>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace basin::tuner {

// Bad input: names the file, where in it (JSON pointer "/rows/3/algorithm", or "line 7, field 4
// (algorithm)") and what was expected. Writing a file that cannot be written throws it too, with
// an empty `where`.
struct InputError : std::runtime_error {
  InputError(std::string origin, std::string where, std::string expected);
  std::string origin;  // file name, or whatever the caller named the text
  std::string where;
  std::string expected;  // what was expected, and what was found
};

// Values are NCCL's own numbering (ncclFunc_t, NCCL_ALGO_*, NCCL_PROTO_*), so a rule indexes
// NCCL's cost table directly. Names are the ones NCCL's example tuner reads.
enum class Collective {
  broadcast = 0,
  reduce = 1,
  allgather = 2,
  reducescatter = 3,
  allreduce = 4
};
enum class Algorithm { tree = 0, ring, collnet_direct, collnet_chain, nvls, nvls_tree, pat };
enum class Protocol { ll = 0, ll128 = 1, simple = 2 };

const char* to_string(Collective c);
const char* to_string(Algorithm a);
const char* to_string(Protocol p);
// Case-insensitive; nullopt for an unknown name.
std::optional<Collective> collective_from_string(std::string_view name);
std::optional<Algorithm> algorithm_from_string(std::string_view name);
std::optional<Protocol> protocol_from_string(std::string_view name);
std::string known_names(Collective);  // "broadcast, reduce, ..." for error messages
std::string known_names(Algorithm);
std::string known_names(Protocol);

inline constexpr int kAny = -1;           // channels, pipe_ops, reg_buff: NCCL decides / any
inline constexpr int kNoLimit = INT_MAX;  // max_nodes, max_ranks: no upper bound

// One row: for `collective` with min_bytes <= bytes <= max_bytes on a communicator whose node
// and rank counts fall in the ranges, use (algorithm, protocol) and `channels` channels.
struct Rule {
  Collective collective = Collective::allreduce;
  std::uint64_t min_bytes = 0, max_bytes = UINT64_MAX;
  Algorithm algorithm = Algorithm::ring;
  Protocol protocol = Protocol::simple;
  int channels = kAny;  // kAny: NCCL's own count
  int min_nodes = 1, max_nodes = kNoLimit;
  int min_ranks = 1, max_ranks = kNoLimit;
  int pipe_ops = kAny;  // operations grouped together; kAny matches any
  int reg_buff = kAny;  // 0 or 1: only unregistered / registered user buffers; kAny: either
  bool operator==(const Rule&) const = default;
};

struct Selection {
  std::string source;  // free text: what produced the rules (JSON only; CSV has no place for it)
  std::vector<Rule> rules;  // first match wins
  bool operator==(const Selection&) const = default;
};

// What NCCL asks about: one collective call on one communicator.
struct Query {
  Collective collective = Collective::allreduce;
  std::uint64_t bytes = 0;
  int nodes = 1, ranks = 1;
  int pipe_ops = 1, reg_buff = 0;
};

bool matches(const Rule& rule, const Query& query);
// Index of the first rule that matches, or -1.
int find_rule(const std::vector<Rule>& rules, const Query& query);

// basin.selection/1 JSON. `origin` names the text in errors.
Selection parse_selection_json(std::string_view text, const std::string& origin);
std::string format_selection_json(const Selection& selection);

// nccl_tuner.conf CSV: collective_type,min_bytes,max_bytes,algorithm,protocol,channels,nNodes,
// nRanks[,numPipeOps[,regBuff]]; '#' comments, blank lines and a header row are skipped.
std::vector<Rule> parse_nccl_conf(std::string_view text, const std::string& origin);
// The CSV has exact counts or -1 (any), so a node or rank range becomes one row per count in it;
// a range with a bound on one side only cannot be written and throws InputError (origin "").
std::string format_nccl_conf(const std::vector<Rule>& rules);

enum class FileFormat { selection_json, nccl_conf };
// JSON when the first character that is not white space is '{', else CSV.
FileFormat detect_format(std::string_view text);

// Reads a file in either format (detected from its contents). Throws InputError naming the path
// when it cannot be read or is malformed.
Selection load_rules_file(const std::string& path);
// Writes through a temporary file in the same directory and renames it, so a failure never leaves
// a partial file. Throws InputError naming the path.
void save_selection_json(const Selection& selection, const std::string& path);
void save_nccl_conf(const std::vector<Rule>& rules, const std::string& path);

}  // namespace basin::tuner
