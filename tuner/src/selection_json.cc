// basin.selection/1: basin's own rules file (docs/tuner.md). Strict on purpose: an unknown key or
// name is an error naming its JSON pointer, because a typo that silently falls back to NCCL's
// choice is the hardest tuning mistake to notice.
#include <basin/tuner.h>

#include <nlohmann/json.hpp>
#include <set>

namespace basin::tuner {
namespace {

constexpr const char* kFormat = "basin.selection/1";

using nlohmann::json;

std::string shown(const json& value) {
  std::string s = value.dump();
  return s.size() > 60 ? s.substr(0, 57) + "..." : s;
}

struct RowReader {
  const json& row;
  const std::string& origin;
  std::string base;  // "/rows/3"

  [[noreturn]] void fail(const std::string& key, const std::string& expected) const {
    throw InputError(origin, base + "/" + key, expected);
  }

  const json* find(const char* key) const {
    auto it = row.find(key);
    return it == row.end() ? nullptr : &*it;
  }

  const json& need(const char* key) const {
    const json* v = find(key);
    if (!v) fail(key, "this field (it is required)");
    return *v;
  }

  std::uint64_t bytes(const char* key) const {
    const json& v = need(key);
    if (!v.is_number_unsigned())
      fail(key, "a whole number of bytes, 0 or more, but found " + shown(v));
    return v.get<std::uint64_t>();
  }

  // A positive count, or `fallback` when the key is absent.
  int count(const char* key, int fallback) const {
    const json* v = find(key);
    if (!v) return fallback;
    if (!v->is_number_unsigned() || v->get<std::uint64_t>() < 1 ||
        v->get<std::uint64_t>() > static_cast<std::uint64_t>(kNoLimit))
      fail(key, "a whole number 1 or more (leave the field out for any), but found " + shown(*v));
    return static_cast<int>(v->get<std::uint64_t>());
  }

  template <typename Enum>
  Enum name(const char* key, std::optional<Enum> (*from_string)(std::string_view)) const {
    const json& v = need(key);
    std::optional<Enum> e;
    if (v.is_string()) e = from_string(v.get<std::string>());
    if (!e) fail(key, "one of " + known_names(Enum{}) + ", but found " + shown(v));
    return *e;
  }
};

Rule read_row(const json& row, const std::string& origin, std::size_t index) {
  RowReader r{row, origin, "/rows/" + std::to_string(index)};
  if (!row.is_object()) throw InputError(origin, r.base, "an object, but found " + shown(row));
  static const std::set<std::string> known = {"collective", "min_bytes", "max_bytes", "algorithm",
                                              "protocol",   "channels",  "min_nodes", "max_nodes",
                                              "min_ranks",  "max_ranks", "pipe_ops",  "reg_buff"};
  for (const auto& [key, value] : row.items())
    if (!known.count(key))
      r.fail(key,
             "no such field (a row has collective, min_bytes, max_bytes, algorithm, "
             "protocol, channels, min_nodes, max_nodes, min_ranks, max_ranks, pipe_ops, "
             "reg_buff)");

  Rule rule;
  rule.collective = r.name<Collective>("collective", collective_from_string);
  rule.min_bytes = r.bytes("min_bytes");
  rule.max_bytes = r.bytes("max_bytes");
  if (rule.max_bytes < rule.min_bytes)
    r.fail("max_bytes", "at least min_bytes (" + std::to_string(rule.min_bytes) + "), but found " +
                            std::to_string(rule.max_bytes));
  rule.algorithm = r.name<Algorithm>("algorithm", algorithm_from_string);
  rule.protocol = r.name<Protocol>("protocol", protocol_from_string);
  rule.channels = r.count("channels", kAny);
  rule.min_nodes = r.count("min_nodes", 1);
  rule.max_nodes = r.count("max_nodes", kNoLimit);
  if (rule.max_nodes < rule.min_nodes) r.fail("max_nodes", "at least min_nodes");
  rule.min_ranks = r.count("min_ranks", 1);
  rule.max_ranks = r.count("max_ranks", kNoLimit);
  if (rule.max_ranks < rule.min_ranks) r.fail("max_ranks", "at least min_ranks");
  rule.pipe_ops = r.count("pipe_ops", kAny);
  if (const json* v = r.find("reg_buff")) {
    if (!v->is_number_unsigned() || v->get<std::uint64_t>() > 1)
      r.fail("reg_buff", "0 (unregistered buffers) or 1 (registered), but found " + shown(*v));
    rule.reg_buff = v->get<int>();
  }
  return rule;
}

}  // namespace

Selection parse_selection_json(std::string_view text, const std::string& origin) {
  json doc;
  try {
    doc = json::parse(text);
  } catch (const json::parse_error& e) {
    // nlohmann's message is "[json.exception.parse_error.101] parse error at line 3, ...".
    std::string what = e.what();
    if (auto pos = what.find("] "); pos != std::string::npos) what = what.substr(pos + 2);
    throw InputError(origin, "", "valid JSON (" + what + ")");
  }
  if (!doc.is_object()) throw InputError(origin, "", "a JSON object with \"format\" and \"rows\"");
  auto format = doc.find("format");
  if (format == doc.end() || !format->is_string() || format->get<std::string>() != kFormat)
    throw InputError(origin, "/format",
                     std::string("\"") + kFormat + "\", but found " +
                         (format == doc.end() ? std::string("nothing") : shown(*format)));
  for (const auto& [key, value] : doc.items())
    if (key != "format" && key != "source" && key != "rows")
      throw InputError(origin, "/" + key, "no such field (a selection has format, source, rows)");

  Selection selection;
  if (auto source = doc.find("source"); source != doc.end()) {
    if (!source->is_string()) throw InputError(origin, "/source", "a string");
    selection.source = source->get<std::string>();
  }
  auto rows = doc.find("rows");
  if (rows == doc.end() || !rows->is_array()) throw InputError(origin, "/rows", "an array of rows");
  for (std::size_t i = 0; i < rows->size(); ++i)
    selection.rules.push_back(read_row((*rows)[i], origin, i));
  return selection;
}

std::string format_selection_json(const Selection& selection) {
  // One row per line keeps a long selection readable and diffable; each row is ordered as a
  // reader scans it: what, when, then what to use.
  std::string out = "{\n  \"format\": " + json(kFormat).dump() + ",\n";
  if (!selection.source.empty()) {
    // A source that is not UTF-8 must not make the whole file unwritable.
    const std::string source =
        json(selection.source).dump(-1, ' ', false, json::error_handler_t::replace);
    out += "  \"source\": " + source + ",\n";
  }
  out += "  \"rows\": [";
  for (std::size_t i = 0; i < selection.rules.size(); ++i) {
    const Rule& r = selection.rules[i];
    nlohmann::ordered_json row;
    row["collective"] = to_string(r.collective);
    row["min_bytes"] = r.min_bytes;
    row["max_bytes"] = r.max_bytes;
    if (r.min_nodes != 1) row["min_nodes"] = r.min_nodes;
    if (r.max_nodes != kNoLimit) row["max_nodes"] = r.max_nodes;
    if (r.min_ranks != 1) row["min_ranks"] = r.min_ranks;
    if (r.max_ranks != kNoLimit) row["max_ranks"] = r.max_ranks;
    if (r.pipe_ops != kAny) row["pipe_ops"] = r.pipe_ops;
    if (r.reg_buff != kAny) row["reg_buff"] = r.reg_buff;
    row["algorithm"] = to_string(r.algorithm);
    row["protocol"] = to_string(r.protocol);
    if (r.channels != kAny) row["channels"] = r.channels;
    out += std::string(i ? "," : "") + "\n    " + row.dump();
  }
  out += selection.rules.empty() ? "]\n}\n" : "\n  ]\n}\n";
  return out;
}

}  // namespace basin::tuner
