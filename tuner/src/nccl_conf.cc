// nccl_tuner.conf: the CSV that NCCL's example tuner plugin reads (NCCL 2.28, ext-tuner/example),
// so rules written for NVIDIA's plugin work with basin's and the other way round. Columns:
//   collective_type,min_bytes,max_bytes,algorithm,protocol,channels,nNodes,nRanks[,numPipeOps[,regBuff]]
// with -1 for "NCCL decides" (channels) or "any" (the rest). Where NCCL's parser quietly turns an
// unknown name into a default, this one stops with the line and the field.
#include <basin/tuner.h>

#include <array>
#include <charconv>

namespace basin::tuner {
namespace {

constexpr std::array<const char*, 10> kColumns = {
    "collective_type", "min_bytes", "max_bytes", "algorithm",  "protocol",
    "channels",        "nNodes",    "nRanks",    "numPipeOps", "regBuff"};
constexpr std::size_t kRequiredColumns = 8;

std::string_view trim(std::string_view s) {
  const char* blanks = " \t\r";
  auto b = s.find_first_not_of(blanks);
  if (b == std::string_view::npos) return {};
  return s.substr(b, s.find_last_not_of(blanks) - b + 1);
}

struct LineReader {
  const std::string& origin;
  std::size_t line_number;
  std::vector<std::string_view> fields;

  [[noreturn]] void fail(std::size_t field, const std::string& expected) const {
    throw InputError(origin,
                     "line " + std::to_string(line_number) + ", field " +
                         std::to_string(field + 1) + " (" + kColumns[field] + ")",
                     expected + ", but found '" + std::string(fields[field]) + "'");
  }

  std::uint64_t bytes(std::size_t field) const {
    std::string_view f = fields[field];
    std::uint64_t value = 0;
    auto [end, ec] = std::from_chars(f.data(), f.data() + f.size(), value);
    if (f.empty() || ec != std::errc() || end != f.data() + f.size())
      fail(field, "a whole number of bytes, 0 or more");
    return value;
  }

  // -1, or a whole number in [lowest, kNoLimit].
  int number(std::size_t field, int lowest, const std::string& expected) const {
    std::string_view f = fields[field];
    long long value = 0;
    auto [end, ec] = std::from_chars(f.data(), f.data() + f.size(), value);
    if (f.empty() || ec != std::errc() || end != f.data() + f.size() ||
        (value != -1 && (value < lowest || value > kNoLimit)))
      fail(field, expected);
    return static_cast<int>(value);
  }

  template <typename Enum>
  Enum name(std::size_t field, std::optional<Enum> (*from_string)(std::string_view)) const {
    std::optional<Enum> e = from_string(fields[field]);
    if (!e) fail(field, "one of " + known_names(Enum{}));
    return *e;
  }
};

Rule read_line(LineReader& r) {
  Rule rule;
  rule.collective = r.name<Collective>(0, collective_from_string);
  rule.min_bytes = r.bytes(1);
  rule.max_bytes = r.bytes(2);
  if (rule.max_bytes < rule.min_bytes)
    r.fail(2, "at least min_bytes (" + std::to_string(rule.min_bytes) + ")");
  rule.algorithm = r.name<Algorithm>(3, algorithm_from_string);
  rule.protocol = r.name<Protocol>(4, protocol_from_string);
  rule.channels = r.number(5, 1, "-1 (NCCL's choice) or a channel count, 1 or more");
  if (int nodes = r.number(6, 1, "-1 (any) or a node count, 1 or more"); nodes != kAny)
    rule.min_nodes = rule.max_nodes = nodes;
  if (int ranks = r.number(7, 1, "-1 (any) or a rank count, 1 or more"); ranks != kAny)
    rule.min_ranks = rule.max_ranks = ranks;
  if (r.fields.size() > 8)
    rule.pipe_ops = r.number(8, 1, "-1 (any) or an operation count, 1 or more");
  if (r.fields.size() > 9) rule.reg_buff = r.number(9, 0, "-1 (any), 0 or 1");
  if (rule.reg_buff > 1) r.fail(9, "-1 (any), 0 or 1");
  return rule;
}

// The CSV's counts for a range: -1 for any, else every count in it.
std::vector<int> counts(int lo, int hi, const char* what, const Rule& rule, std::size_t index) {
  if (lo == 1 && hi == kNoLimit) return {kAny};
  constexpr int kMostRows = 4096;
  if (hi == kNoLimit || hi - lo >= kMostRows)
    throw InputError("", "rule " + std::to_string(index) + " (" + to_string(rule.collective) + ")",
                     std::string("a ") + what + " range that nccl_tuner.conf can hold (exact " +
                         what + " counts or any), but found " + std::to_string(lo) + " to " +
                         (hi == kNoLimit ? std::string("no limit") : std::to_string(hi)));
  std::vector<int> out;
  for (int n = lo; n <= hi; ++n) out.push_back(n);
  return out;
}

}  // namespace

std::vector<Rule> parse_nccl_conf(std::string_view text, const std::string& origin) {
  std::vector<Rule> rules;
  std::size_t line_number = 0;
  while (!text.empty()) {
    auto newline = text.find('\n');
    std::string_view line = trim(text.substr(0, newline));
    text = newline == std::string_view::npos ? std::string_view{} : text.substr(newline + 1);
    ++line_number;
    if (line.empty() || line.front() == '#') continue;

    LineReader r{origin, line_number, {}};
    for (std::size_t start = 0;;) {
      auto comma = line.find(',', start);
      r.fields.push_back(trim(line.substr(start, comma - start)));
      if (comma == std::string_view::npos) break;
      start = comma + 1;
    }
    // A spreadsheet's header row (NCCL's README suggests one).
    if (r.fields.front() == kColumns[0]) continue;
    if (r.fields.size() < kRequiredColumns || r.fields.size() > kColumns.size())
      throw InputError(origin, "line " + std::to_string(line_number),
                       "8 to 10 comma-separated fields (collective_type,min_bytes,max_bytes,"
                       "algorithm,protocol,channels,nNodes,nRanks[,numPipeOps[,regBuff]]), but "
                       "found " +
                           std::to_string(r.fields.size()));
    rules.push_back(read_line(r));
  }
  return rules;
}

std::string format_nccl_conf(const std::vector<Rule>& rules) {
  std::string out =
      "# nccl_tuner.conf written by basin: the first matching line wins; -1 means NCCL's choice\n"
      "# (channels) or any (nNodes, nRanks, numPipeOps, regBuff).\n#";
  for (std::size_t c = 0; c < kColumns.size(); ++c)
    out += (c ? "," : " ") + std::string(kColumns[c]);
  out += "\n";
  for (std::size_t i = 0; i < rules.size(); ++i) {
    const Rule& r = rules[i];
    std::string head = std::string(to_string(r.collective)) + "," + std::to_string(r.min_bytes) +
                       "," + std::to_string(r.max_bytes) + "," + to_string(r.algorithm) + "," +
                       to_string(r.protocol) + "," + std::to_string(r.channels) + ",";
    std::string tail = "," + std::to_string(r.pipe_ops) + "," + std::to_string(r.reg_buff) + "\n";
    for (int nodes : counts(r.min_nodes, r.max_nodes, "node", r, i))
      for (int ranks : counts(r.min_ranks, r.max_ranks, "rank", r, i))
        out += head + std::to_string(nodes) + "," + std::to_string(ranks) + tail;
  }
  return out;
}

}  // namespace basin::tuner
