// The tuner's two rules formats: basin.selection/1 JSON and NCCL's nccl_tuner.conf CSV. Expected
// rules are read off the text by hand (NCCL's column order: collective_type, min_bytes,
// max_bytes, algorithm, protocol, channels, nNodes, nRanks, numPipeOps, regBuff).
#include <basin/tuner.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>

#include "../catch.h"
#include "../fifo_reader.h"

using namespace basin::tuner;
namespace fs = std::filesystem;

namespace {

// Bad input must throw InputError whose message names the origin and the place.
void expect_error(const std::function<void()>& parse, const std::string& where,
                  const std::string& expected_part) {
  try {
    parse();
    FAIL("no error for input that should name " << where);
  } catch (const InputError& e) {
    CAPTURE(e.what());
    CHECK(e.origin == "rules.txt");
    CHECK(e.where == where);
    CHECK(e.expected.find(expected_part) != std::string::npos);
    CHECK(std::string(e.what()).find("rules.txt: " + where) == 0);
  }
}

// The message of the InputError that `f` throws, or "" when it throws none.
std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

struct TempDir {
  fs::path path;
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "basin-tuner-XXXXXX").string();
    path = ::mkdtemp(pattern.data());
  }
  ~TempDir() { fs::remove_all(path); }
};

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Rules that use every field, including its "any" value somewhere.
Selection varied_selection() {
  Selection s;
  s.source = "basin select --cluster dgx-h100:4 (test)";
  s.rules.push_back({.collective = Collective::allreduce,
                     .min_bytes = 0,
                     .max_bytes = 65535,
                     .algorithm = Algorithm::tree,
                     .protocol = Protocol::ll,
                     .channels = 2});
  s.rules.push_back({.collective = Collective::allreduce,
                     .min_bytes = 65536,
                     .max_bytes = UINT64_MAX,
                     .algorithm = Algorithm::ring,
                     .protocol = Protocol::simple,
                     .min_nodes = 4,
                     .max_nodes = 4,
                     .min_ranks = 32,
                     .max_ranks = 32,
                     .pipe_ops = 1,
                     .reg_buff = 0});
  s.rules.push_back({.collective = Collective::allgather,
                     .min_bytes = 1,
                     .max_bytes = 1 << 20,
                     .algorithm = Algorithm::pat,
                     .protocol = Protocol::ll128,
                     .channels = 16,
                     .reg_buff = 1});
  s.rules.push_back({.collective = Collective::reducescatter,
                     .min_bytes = 4096,
                     .max_bytes = 4096,
                     .algorithm = Algorithm::nvls_tree,
                     .protocol = Protocol::simple,
                     .min_ranks = 8,
                     .max_ranks = 8,
                     .pipe_ops = 4});
  s.rules.push_back({.collective = Collective::broadcast,
                     .min_bytes = 0,
                     .max_bytes = 100,
                     .algorithm = Algorithm::collnet_direct,
                     .protocol = Protocol::ll});
  s.rules.push_back({.collective = Collective::reduce,
                     .min_bytes = 7,
                     .max_bytes = 9,
                     .algorithm = Algorithm::collnet_chain,
                     .protocol = Protocol::ll128});
  s.rules.push_back({.collective = Collective::allreduce,
                     .min_bytes = 0,
                     .max_bytes = 1,
                     .algorithm = Algorithm::nvls,
                     .protocol = Protocol::simple,
                     .channels = 32,
                     .min_nodes = 2,
                     .max_nodes = 2});
  return s;
}

}  // namespace

TEST_CASE("A selection survives JSON and CSV round trips through files", "[tuner]") {
  TempDir dir;
  const Selection original = varied_selection();
  const std::string json_path = (dir.path / "selection.json").string();
  const std::string csv_path = (dir.path / "nccl_tuner.conf").string();
  save_selection_json(original, json_path);
  save_nccl_conf(original.rules, csv_path);

  Selection from_json = load_rules_file(json_path);
  CHECK(from_json == original);
  Selection from_csv = load_rules_file(csv_path);
  CHECK(from_csv.source.empty());  // CSV has no place for it
  REQUIRE(from_csv.rules.size() == original.rules.size());
  for (std::size_t i = 0; i < original.rules.size(); ++i) {
    CAPTURE(i);
    CHECK(from_csv.rules[i] == original.rules[i]);
  }
  // Only the two files: the temporary files were renamed, not left behind.
  int files = 0;
  for (const auto& entry : fs::directory_iterator(dir.path)) files += entry.is_regular_file();
  CHECK(files == 2);
  // Either format is recognised by content, whatever the file is called.
  CHECK(detect_format(slurp(json_path)) == FileFormat::selection_json);
  CHECK(detect_format(slurp(csv_path)) == FileFormat::nccl_conf);
}

TEST_CASE("The written CSV has one line per rule in NCCL's column order", "[tuner]") {
  Selection s = varied_selection();
  std::string csv = format_nccl_conf({s.rules[0], s.rules[1]});
  CHECK(csv.find("\nallreduce,0,65535,tree,ll,2,-1,-1,-1,-1\n") != std::string::npos);
  CHECK(csv.find("\nallreduce,65536,18446744073709551615,ring,simple,-1,4,32,1,0\n") !=
        std::string::npos);
}

TEST_CASE("NCCL example style CSV lines with 8 9 and 10 fields parse to the rules they state",
          "[tuner]") {
  const std::string text =
      "# comment\n"
      "collective_type,min_bytes,max_bytes,algorithm,protocol,channels,nNodes,nRanks,numPipeOps,"
      "regBuff\n"
      "\n"
      "allreduce,0,65536,tree,simple,2,1,-1,-1,1\r\n"
      "  allgather , 0 , 4294967295 , ring , simple , 4 , 2 , -1  \n"
      "reducescatter,131073,4294967295,RING,LL128,-1,-1,16,2\n";
  std::vector<Rule> rules = parse_nccl_conf(text, "rules.txt");
  REQUIRE(rules.size() == 3);

  CHECK(rules[0].collective == Collective::allreduce);
  CHECK(rules[0].min_bytes == 0);
  CHECK(rules[0].max_bytes == 65536);
  CHECK(rules[0].algorithm == Algorithm::tree);
  CHECK(rules[0].protocol == Protocol::simple);
  CHECK(rules[0].channels == 2);
  CHECK(rules[0].min_nodes == 1);
  CHECK(rules[0].max_nodes == 1);
  CHECK(rules[0].min_ranks == 1);
  CHECK(rules[0].max_ranks == kNoLimit);
  CHECK(rules[0].pipe_ops == kAny);
  CHECK(rules[0].reg_buff == 1);

  CHECK(rules[1].collective == Collective::allgather);
  CHECK(rules[1].max_bytes == 4294967295u);
  CHECK(rules[1].channels == 4);
  CHECK(rules[1].min_nodes == 2);
  CHECK(rules[1].max_nodes == 2);
  CHECK(rules[1].pipe_ops == kAny);  // 8 fields: any
  CHECK(rules[1].reg_buff == kAny);

  CHECK(rules[2].collective == Collective::reducescatter);
  CHECK(rules[2].min_bytes == 131073);
  CHECK(rules[2].protocol == Protocol::ll128);  // names are case-insensitive
  CHECK(rules[2].channels == kAny);
  CHECK(rules[2].min_ranks == 16);
  CHECK(rules[2].max_ranks == 16);
  CHECK(rules[2].pipe_ops == 2);  // 9 fields: regBuff any
  CHECK(rules[2].reg_buff == kAny);
}

TEST_CASE("A bad CSV line names the file the line and the field", "[tuner]") {
  auto csv = [](std::string line) {
    return [line] { parse_nccl_conf("# header comment\n\n" + line + "\n", "rules.txt"); };
  };
  expect_error(csv("allreduce,0,100,rnig,simple,-1,-1,-1"), "line 3, field 4 (algorithm)",
               "one of tree, ring, collnet_direct");
  expect_error(csv("allreduc,0,100,ring,simple,-1,-1,-1"), "line 3, field 1 (collective_type)",
               "found 'allreduc'");
  expect_error(csv("allreduce,0,100,ring,fast,-1,-1,-1"), "line 3, field 5 (protocol)",
               "one of ll, ll128, simple");
  expect_error(csv("allreduce,-1,100,ring,simple,-1,-1,-1"), "line 3, field 2 (min_bytes)",
               "0 or more");
  expect_error(csv("allreduce,0,1e6,ring,simple,-1,-1,-1"), "line 3, field 3 (max_bytes)",
               "found '1e6'");
  expect_error(csv("allreduce,200,100,ring,simple,-1,-1,-1"), "line 3, field 3 (max_bytes)",
               "at least min_bytes (200)");
  expect_error(csv("allreduce,0,100,ring,simple,0,-1,-1"), "line 3, field 6 (channels)",
               "1 or more");
  expect_error(csv("allreduce,0,100,ring,simple,-1,0,-1"), "line 3, field 7 (nNodes)",
               "node count");
  expect_error(csv("allreduce,0,100,ring,simple,-1,-1,-1,-1,2"), "line 3, field 10 (regBuff)",
               "-1 (any), 0 or 1");
  expect_error(csv("allreduce,0,100,ring,simple,-1,-1,"), "line 3, field 8 (nRanks)", "found ''");
  expect_error(csv("allreduce,0,100,ring,simple,-1,-1"), "line 3", "8 to 10 comma-separated");
  expect_error(csv("allreduce,0,100,ring,simple,-1,-1,-1,-1,-1,-1"), "line 3", "found 11");
}

TEST_CASE("The JSON format reads optional fields as documented", "[tuner]") {
  const std::string text = R"({
    "format": "basin.selection/1",
    "source": "hand-written",
    "rows": [
      {"collective": "allreduce", "min_bytes": 0, "max_bytes": 262143,
       "algorithm": "tree", "protocol": "LL", "channels": 4, "min_nodes": 2},
      {"collective": "allreduce", "min_bytes": 262144, "max_bytes": 18446744073709551615,
       "min_ranks": 16, "max_ranks": 64, "algorithm": "ring", "protocol": "simple",
       "pipe_ops": 1, "reg_buff": 0}
    ]})";
  Selection s = parse_selection_json(text, "rules.txt");
  CHECK(s.source == "hand-written");
  REQUIRE(s.rules.size() == 2);
  CHECK(s.rules[0].protocol == Protocol::ll);
  CHECK(s.rules[0].channels == 4);
  CHECK(s.rules[0].min_nodes == 2);
  CHECK(s.rules[0].max_nodes == kNoLimit);
  CHECK(s.rules[0].min_ranks == 1);
  CHECK(s.rules[0].pipe_ops == kAny);
  CHECK(s.rules[1].max_bytes == UINT64_MAX);
  CHECK(s.rules[1].channels == kAny);
  CHECK(s.rules[1].min_ranks == 16);
  CHECK(s.rules[1].max_ranks == 64);
  CHECK(s.rules[1].pipe_ops == 1);
  CHECK(s.rules[1].reg_buff == 0);
}

TEST_CASE("A bad JSON selection names the file and the JSON pointer of the field", "[tuner]") {
  auto doc = [](std::string rows) {
    return [rows] {
      parse_selection_json(R"({"format": "basin.selection/1", "rows": [)" + rows + "]}",
                           "rules.txt");
    };
  };
  const std::string ok = R"({"collective": "allreduce", "min_bytes": 0, "max_bytes": 10,
                             "algorithm": "ring", "protocol": "simple"})";
  expect_error(doc(ok + R"(, {"collective": "allreduce", "min_bytes": 0, "max_bytes": 10,
                             "algorithm": "rnig", "protocol": "simple"})"),
               "/rows/1/algorithm", "one of tree, ring");
  expect_error(doc(R"({"collective": "allreduce", "min_bytes": 0, "max_bytes": 10,
                       "algorithm": "ring"})"),
               "/rows/0/protocol", "required");
  expect_error(doc(R"({"collective": "allreduce", "min_bytes": 0, "max_bytes": 1e3,
                       "algorithm": "ring", "protocol": "simple"})"),
               "/rows/0/max_bytes", "whole number of bytes");
  expect_error(doc(R"({"collective": "allreduce", "min_bytes": -5, "max_bytes": 10,
                       "algorithm": "ring", "protocol": "simple"})"),
               "/rows/0/min_bytes", "found -5");
  expect_error(doc(R"({"collective": "allreduce", "min_bytes": 0, "max_bytes": 10,
                       "algorithm": "ring", "protocol": "simple", "protcol": "ll"})"),
               "/rows/0/protcol", "no such field");
  expect_error(doc(R"({"collective": "allreduce", "min_bytes": 0, "max_bytes": 10,
                       "algorithm": "ring", "protocol": "simple", "channels": 0})"),
               "/rows/0/channels", "1 or more");
  expect_error(doc(R"({"collective": "allreduce", "min_bytes": 0, "max_bytes": 10,
                       "algorithm": "ring", "protocol": "simple", "min_nodes": 4,
                       "max_nodes": 2})"),
               "/rows/0/max_nodes", "at least min_nodes");
  expect_error(doc(R"({"collective": "allreduce", "min_bytes": 0, "max_bytes": 10,
                       "algorithm": "ring", "protocol": "simple", "reg_buff": 2})"),
               "/rows/0/reg_buff", "0 (unregistered buffers) or 1");
  expect_error(doc("[1]"), "/rows/0", "an object");
  expect_error(
      [] { parse_selection_json(R"({"format": "basin.selection/2", "rows": []})", "rules.txt"); },
      "/format", "\"basin.selection/1\", but found \"basin.selection/2\"");
  expect_error([] { parse_selection_json(R"({"format": "basin.selection/1"})", "rules.txt"); },
               "/rows", "an array");
  expect_error(
      [] {
        parse_selection_json("{\"format\": \"basin.selection/1\",\n \"rows\": [}", "rules.txt");
      },
      "", "valid JSON (parse error at line 2");
}

TEST_CASE("The first matching rule wins and byte bounds are inclusive", "[tuner]") {
  std::vector<Rule> rules = {
      {.collective = Collective::allreduce,
       .min_bytes = 100,
       .max_bytes = 200,
       .algorithm = Algorithm::tree},
      {.collective = Collective::allreduce,
       .min_bytes = 0,
       .max_bytes = 1000,
       .algorithm = Algorithm::ring,
       .min_nodes = 2,
       .max_nodes = 3},
      {.collective = Collective::allreduce,
       .min_bytes = 0,
       .max_bytes = 1000,
       .algorithm = Algorithm::pat,
       .pipe_ops = 2,
       .reg_buff = 1},
  };
  auto q = [](std::uint64_t bytes, int nodes, int pipe_ops = 1, int reg_buff = 0) {
    return Query{.collective = Collective::allreduce,
                 .bytes = bytes,
                 .nodes = nodes,
                 .ranks = 8 * nodes,
                 .pipe_ops = pipe_ops,
                 .reg_buff = reg_buff};
  };
  CHECK(find_rule(rules, q(100, 2)) == 0);
  CHECK(find_rule(rules, q(200, 2)) == 0);
  CHECK(find_rule(rules, q(99, 2)) == 1);
  CHECK(find_rule(rules, q(201, 3)) == 1);
  CHECK(find_rule(rules, q(201, 4)) == -1);
  CHECK(find_rule(rules, q(201, 4, 2, 1)) == 2);
  CHECK(find_rule(rules, q(201, 4, 2, 0)) == -1);
  CHECK(find_rule(rules, q(1001, 2)) == -1);
  Query other = q(150, 2);
  other.collective = Collective::allgather;
  CHECK(find_rule(rules, other) == -1);
}

TEST_CASE("A node range becomes one CSV line per count and an open range cannot be written",
          "[tuner]") {
  Rule r{.collective = Collective::allreduce, .max_bytes = 10, .min_nodes = 2, .max_nodes = 4};
  std::vector<Rule> back = parse_nccl_conf(format_nccl_conf({r}), "rules.txt");
  REQUIRE(back.size() == 3);
  for (int i = 0; i < 3; ++i) {
    CHECK(back[static_cast<std::size_t>(i)].min_nodes == 2 + i);
    CHECK(back[static_cast<std::size_t>(i)].max_nodes == 2 + i);
  }
  r.max_nodes = kNoLimit;
  const std::string open_range = error_of([&] { format_nccl_conf({r}); });
  CHECK(contains(open_range, "rule 0 (allreduce)"));
  CHECK(contains(open_range, "found 2 to no limit"));
  TempDir dir;
  const std::string path = (dir.path / "open.conf").string();
  CHECK(error_of([&] { save_nccl_conf({r}, path); }).rfind(path + ": rule 0", 0) == 0);
  CHECK_FALSE(fs::exists(path));
}

TEST_CASE("Unreadable and unwritable rules files are errors naming the path", "[tuner]") {
  TempDir dir;
  const std::string missing = (dir.path / "missing.json").string();
  const std::string not_there = error_of([&] { load_rules_file(missing); });
  CHECK(not_there.rfind(missing + ": expected a readable file", 0) == 0);
  CHECK(contains(not_there, "No such file"));
  CHECK(contains(error_of([&] { load_rules_file(dir.path.string()); }), "Is a directory"));
  const std::string nowhere = (dir.path / "no-such-dir" / "out.json").string();
  CHECK(error_of([&] { save_selection_json(varied_selection(), nowhere); }).rfind(nowhere, 0) == 0);
  CHECK_FALSE(fs::exists(nowhere));
}

TEST_CASE("Rules written to a pipe or device go through it instead of replacing it", "[tuner]") {
  basin::test::FifoReader fifo;
  save_nccl_conf({}, fifo.path);
  REQUIRE(fifo.still_a_fifo());
  REQUIRE(fifo.drain() == format_nccl_conf({}));
}
