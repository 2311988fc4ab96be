// Rule names and matching: the part of the tuner both file formats and the NCCL plugin share.
#include <basin/tuner.h>

#include <algorithm>
#include <array>
#include <cctype>

namespace basin::tuner {
namespace {

std::string message(const std::string& origin, const std::string& where,
                    const std::string& expected) {
  std::string m = origin.empty() ? std::string("tuner rules") : origin;
  if (!where.empty()) m += ": " + where;
  return m + ": expected " + expected;
}

// NCCL's names, indexed by the enum's value.
constexpr std::array<const char*, 5> kCollectives = {"broadcast", "reduce", "allgather",
                                                     "reducescatter", "allreduce"};
constexpr std::array<const char*, 7> kAlgorithms = {
    "tree", "ring", "collnet_direct", "collnet_chain", "nvls", "nvls_tree", "pat"};
constexpr std::array<const char*, 3> kProtocols = {"ll", "ll128", "simple"};

bool same_ignoring_case(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

template <typename Enum, std::size_t N>
std::optional<Enum> lookup(const std::array<const char*, N>& names, std::string_view name) {
  for (std::size_t i = 0; i < N; ++i)
    if (same_ignoring_case(names[i], name)) return static_cast<Enum>(i);
  return std::nullopt;
}

template <std::size_t N>
std::string join(const std::array<const char*, N>& names) {
  std::string out;
  for (const char* n : names) out += (out.empty() ? "" : ", ") + std::string(n);
  return out;
}

bool in_range(int value, int lo, int hi) {
  return value >= lo && value <= hi;
}

}  // namespace

InputError::InputError(std::string origin_, std::string where_, std::string expected_)
    : std::runtime_error(message(origin_, where_, expected_)),
      origin(std::move(origin_)),
      where(std::move(where_)),
      expected(std::move(expected_)) {}

const char* to_string(Collective c) {
  return kCollectives.at(static_cast<std::size_t>(c));
}
const char* to_string(Algorithm a) {
  return kAlgorithms.at(static_cast<std::size_t>(a));
}
const char* to_string(Protocol p) {
  return kProtocols.at(static_cast<std::size_t>(p));
}

std::optional<Collective> collective_from_string(std::string_view name) {
  return lookup<Collective>(kCollectives, name);
}
std::optional<Algorithm> algorithm_from_string(std::string_view name) {
  return lookup<Algorithm>(kAlgorithms, name);
}
std::optional<Protocol> protocol_from_string(std::string_view name) {
  return lookup<Protocol>(kProtocols, name);
}

std::string known_names(Collective) {
  return join(kCollectives);
}
std::string known_names(Algorithm) {
  return join(kAlgorithms);
}
std::string known_names(Protocol) {
  return join(kProtocols);
}

bool matches(const Rule& rule, const Query& query) {
  return rule.collective == query.collective && query.bytes >= rule.min_bytes &&
         query.bytes <= rule.max_bytes && in_range(query.nodes, rule.min_nodes, rule.max_nodes) &&
         in_range(query.ranks, rule.min_ranks, rule.max_ranks) &&
         (rule.pipe_ops == kAny || rule.pipe_ops == query.pipe_ops) &&
         (rule.reg_buff == kAny || rule.reg_buff == query.reg_buff);
}

int find_rule(const std::vector<Rule>& rules, const Query& query) {
  for (std::size_t i = 0; i < rules.size(); ++i)
    if (matches(rules[i], query)) return static_cast<int>(i);
  return -1;
}

FileFormat detect_format(std::string_view text) {
  for (char c : text) {
    if (std::isspace(static_cast<unsigned char>(c))) continue;
    return c == '{' ? FileFormat::selection_json : FileFormat::nccl_conf;
  }
  return FileFormat::nccl_conf;
}

}  // namespace basin::tuner
