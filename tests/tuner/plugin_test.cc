// libnccl-tuner-basin.so as NCCL uses it: dlopen, look up ncclTunerPlugin_v5, init with a logger,
// getCollInfo on a cost table laid out as NCCL lays it out (one contiguous float[7][3] passed as
// float**, unusable cells at -1), finalize. Which cell NCCL would then pick is worked out the way
// NCCL 2.28 does it (enqueue.cc, topoGetAlgoInfo: the smallest non-negative cost, first in
// algorithm-major order on ties), independently of the plugin.
#include <dlfcn.h>
#include <unistd.h>

#include <cstdarg>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "../catch.h"
#include "nccl_tuner_abi.h"

namespace fs = std::filesystem;

// The layout NCCL's loader relies on, from NCCL 2.28's tuner_v5.h counted by hand: the constants
// are 7x3 + 3x7x3 + 5 tables of 4x3 doubles = 144 doubles; the plugin structs are a name and
// three (v5) or four (v6) function pointers.
static_assert(sizeof(ncclTunerConstants_v5_t) == 144 * sizeof(double));
static_assert(sizeof(ncclNvlDomainInfo_v5_t) == 3 * sizeof(int));
static_assert(sizeof(ncclTuner_v5_t) == 4 * sizeof(void*));
static_assert(offsetof(ncclTuner_v5_t, getCollInfo) == 2 * sizeof(void*));
static_assert(sizeof(ncclTuner_v6_t) == 5 * sizeof(void*));
static_assert(offsetof(ncclTuner_v6_t, getChunkSize) == 4 * sizeof(void*));
static_assert(sizeof(ncclFunc_t) == sizeof(int));

namespace {

constexpr int kAlgos = 7, kProtos = 3;
constexpr int TREE = 0, RING = 1, COLLNET_DIRECT = 2, COLLNET_CHAIN = 3, NVLS = 4, NVLS_TREE = 5,
              PAT = 6;
constexpr int LL = 0, LL128 = 1, SIMPLE = 2;

// What NCCL's logger received.
struct LogLine {
  ncclDebugLogLevel level;
  std::string text;
};
std::vector<LogLine> g_log;
std::mutex g_log_mutex;  // NCCL may log from several threads

void fake_logger(ncclDebugLogLevel level, unsigned long /*flags*/, const char* /*file*/,
                 int /*line*/, const char* fmt, ...) {
  char buffer[2048];
  va_list args;
  va_start(args, fmt);
  std::vsnprintf(buffer, sizeof buffer, fmt, args);
  va_end(args);
  std::lock_guard<std::mutex> lock(g_log_mutex);
  g_log.push_back({level, buffer});
}

struct Plugin {
  void* handle = nullptr;
  const ncclTuner_v5_t* v5 = nullptr;
  Plugin() {
    handle = ::dlopen(BASIN_TUNER_PLUGIN, RTLD_NOW | RTLD_LOCAL);
    INFO("dlopen: " << (handle ? "" : ::dlerror()));
    REQUIRE(handle != nullptr);
    v5 = static_cast<const ncclTuner_v5_t*>(::dlsym(handle, "ncclTunerPlugin_v5"));
    REQUIRE(v5 != nullptr);
  }
  ~Plugin() { ::dlclose(handle); }
};

// A communicator's tuner context, with the rules-file variables set only while init runs.
struct Comm {
  const ncclTuner_v5_t* tuner;
  void* context = nullptr;
  Comm(const Plugin& p, size_t ranks, size_t nodes, const char* basin_file = nullptr,
       const char* nccl_file = nullptr)
      : tuner(p.v5) {
    set_or_unset("BASIN_TUNER_FILE", basin_file);
    set_or_unset("NCCL_TUNER_CONFIG_FILE", nccl_file);
    ncclNvlDomainInfo_v5_t domains{1, static_cast<int>(ranks), static_cast<int>(ranks)};
    ncclTunerConstants_v5_t constants{};
    constants.baseLatencies[RING][SIMPLE] = 8.4;
    REQUIRE(tuner->init(&context, 42, ranks, nodes, fake_logger, &domains, &constants) ==
            ncclSuccess);
    CHECK(constants.baseLatencies[RING][SIMPLE] == 8.4);  // basin leaves NCCL's model alone
    ::unsetenv("BASIN_TUNER_FILE");
    ::unsetenv("NCCL_TUNER_CONFIG_FILE");
  }
  ~Comm() { CHECK(tuner->finalize(context) == ncclSuccess); }
  static void set_or_unset(const char* var, const char* value) {
    if (value)
      ::setenv(var, value, 1);
    else
      ::unsetenv(var);
  }
};

// NCCL's cost table for one call: distinct positive costs, some cells unusable.
struct CostTable {
  float cell[kAlgos][kProtos];
  CostTable() {
    for (int a = 0; a < kAlgos; ++a)
      for (int p = 0; p < kProtos; ++p) cell[a][p] = 100.0f + 10.0f * a + p;
    // No CollNet and no NVLS on this communicator, and tree cannot run LL128.
    for (int p = 0; p < kProtos; ++p)
      cell[COLLNET_DIRECT][p] = cell[COLLNET_CHAIN][p] = cell[NVLS][p] = cell[NVLS_TREE][p] = -1;
    cell[TREE][LL128] = -1;
  }
  float** as_nccl_passes_it() { return reinterpret_cast<float**>(cell); }
  bool operator==(const CostTable& o) const {
    for (int a = 0; a < kAlgos; ++a)
      for (int p = 0; p < kProtos; ++p)
        if (cell[a][p] != o.cell[a][p]) return false;
    return true;
  }
};

struct Pick {
  int algorithm, protocol;
  bool operator==(const Pick&) const = default;
};

// NCCL 2.28's choice from a cost table (topoGetAlgoInfo).
Pick nccl_pick(const CostTable& t) {
  float best = 3600000000.0f;
  Pick pick{-1, -1};
  for (int a = 0; a < kAlgos; ++a)
    for (int p = 0; p < kProtos; ++p)
      if (t.cell[a][p] != -1.0f && t.cell[a][p] >= 0 && t.cell[a][p] < best) {
        best = t.cell[a][p];
        pick = {a, p};
      }
  return pick;
}

// One getCollInfo call as NCCL makes it; returns the table afterwards and nChannels.
struct Outcome {
  CostTable table;
  int channels = 0;
  Pick pick() const { return nccl_pick(table); }
};
Outcome call(const Comm& comm, ncclFunc_t coll, size_t bytes, int pipe_ops = 1, int reg_buff = 0) {
  Outcome out;
  REQUIRE(comm.tuner->getCollInfo(comm.context, coll, bytes, pipe_ops,
                                  out.table.as_nccl_passes_it(), kAlgos, kProtos, reg_buff,
                                  &out.channels) == ncclSuccess);
  return out;
}

struct TempDir {
  fs::path path;
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "basin-tuner-XXXXXX").string();
    path = ::mkdtemp(pattern.data());
  }
  ~TempDir() { fs::remove_all(path); }
  std::string write(const std::string& name, const std::string& text) const {
    std::ofstream(path / name) << text;
    return (path / name).string();
  }
};

bool logged(const std::string& part) {
  for (const auto& l : g_log)
    if (l.text.find(part) != std::string::npos) return true;
  return false;
}

const std::string kSelection = R"({"format": "basin.selection/1", "rows": [
  {"collective": "allreduce", "min_bytes": 0, "max_bytes": 65535, "algorithm": "tree",
   "protocol": "ll", "channels": 2},
  {"collective": "allreduce", "min_bytes": 65536, "max_bytes": 18446744073709551615,
   "algorithm": "ring", "protocol": "simple"},
  {"collective": "allgather", "min_bytes": 1024, "max_bytes": 1048576, "algorithm": "pat",
   "protocol": "ll128", "channels": 8},
  {"collective": "broadcast", "min_bytes": 0, "max_bytes": 1048576, "min_nodes": 2,
   "algorithm": "tree", "protocol": "simple"},
  {"collective": "reduce", "min_bytes": 0, "max_bytes": 1048576, "algorithm": "nvls",
   "protocol": "simple"},
  {"collective": "reduce", "min_bytes": 0, "max_bytes": 1048576, "algorithm": "ring",
   "protocol": "ll"}
]})";

}  // namespace

TEST_CASE("Without rules NCCL's cheapest cell is tree LL", "[plugin]") {
  // The fake table's own minimum, so that every later check of a rule's cell means something.
  CHECK(nccl_pick(CostTable{}) == Pick{TREE, LL});
}

TEST_CASE("The plugin makes NCCL pick the selected cell for each size and collective", "[plugin]") {
  Plugin plugin;
  TempDir dir;
  g_log.clear();
  Comm comm(plugin, 8, 1, dir.write("selection.json", kSelection).c_str());
  REQUIRE(g_log.size() == 1);
  CHECK(g_log[0].level == NCCL_LOG_INFO);
  CHECK(logged("6 rules from " + (dir.path / "selection.json").string()));
  CHECK(logged("(named by BASIN_TUNER_FILE) for 1 nodes, 8 ranks"));

  // Small allreduce: tree/LL with 2 channels; only that cell changed, to 0.
  Outcome small = call(comm, ncclFuncAllReduce, 4096);
  CHECK(small.pick() == Pick{TREE, LL});
  CHECK(small.channels == 2);
  CHECK(small.table.cell[TREE][LL] == 0.0f);
  CostTable expected;
  expected.cell[TREE][LL] = 0;
  CHECK(small.table == expected);

  // Both ends of a row's byte range belong to it.
  CHECK(call(comm, ncclFuncAllReduce, 65535).pick() == Pick{TREE, LL});
  Outcome large = call(comm, ncclFuncAllReduce, 65536);
  CHECK(large.pick() == Pick{RING, SIMPLE});
  CHECK(large.channels == 0);  // no channels in the row: NCCL's own count
  CHECK(call(comm, ncclFuncAllReduce, size_t{8} << 30).pick() == Pick{RING, SIMPLE});

  Outcome gather = call(comm, ncclFuncAllGather, 4096);
  CHECK(gather.pick() == Pick{PAT, LL128});
  CHECK(gather.channels == 8);

  // Sizes outside every allgather row, a collective with no rows, and a row for 2+ nodes on a
  // one-node communicator: table and channels untouched.
  for (size_t bytes : {size_t{0}, size_t{1023}, size_t{1048577}}) {
    CAPTURE(bytes);
    Outcome outside = call(comm, ncclFuncAllGather, bytes);
    CHECK(outside.table == CostTable{});
    CHECK(outside.channels == 0);
  }
  CHECK(call(comm, ncclFuncReduceScatter, 4096).table == CostTable{});
  CHECK(call(comm, ncclFuncBroadcast, 4096).table == CostTable{});
  CHECK(g_log.size() == 1);  // decisions are not logged above INFO
}

TEST_CASE("A rule whose cell NCCL marked unusable leaves the table alone and says so once",
          "[plugin]") {
  Plugin plugin;
  TempDir dir;
  g_log.clear();
  Comm comm(plugin, 8, 1, dir.write("selection.json", kSelection).c_str());
  // The first reduce row asks for NVLS, which this communicator cannot run; the first matching
  // row decides, so the ring/LL row after it is not consulted.
  for (int i = 0; i < 3; ++i) {
    Outcome reduce = call(comm, ncclFuncReduce, 4096);
    CHECK(reduce.table == CostTable{});
    CHECK(reduce.channels == 0);
  }
  REQUIRE(g_log.size() == 2);
  CHECK(g_log[1].level == NCCL_LOG_INFO);
  CHECK(logged("rule 4 (reduce 0 to 1048576 bytes) asks for nvls/simple but NCCL cannot use it"));
}

TEST_CASE(
    "NCCL's example CSV named by NCCL_TUNER_CONFIG_FILE is applied with its node rank "
    "pipe and buffer columns",
    "[plugin]") {
  Plugin plugin;
  TempDir dir;
  const std::string conf = dir.write("tuner.conf",
                                     "# collective_type,min_bytes,max_bytes,algorithm,protocol,"
                                     "channels,nNodes,nRanks,numPipeOps,regBuff\n"
                                     "allreduce,0,65536,tree,simple,2,1,-1,-1,1\n"
                                     "allreduce,65537,1048576,ring,simple,4,4,32,1,0\n"
                                     "allreduce,0,4294967295,ring,ll128,-1,-1,-1,4,-1\n"
                                     "broadcast,0,4294967295,ring,ll,-1,-1,-1\n");
  g_log.clear();
  {
    Comm one_node(plugin, 8, 1, nullptr, conf.c_str());
    CHECK(logged("4 rules from " + conf + " (named by NCCL_TUNER_CONFIG_FILE)"));
    Outcome registered = call(one_node, ncclFuncAllReduce, 1024, 1, 1);
    CHECK(registered.pick() == Pick{TREE, SIMPLE});
    CHECK(registered.channels == 2);
    // Unregistered buffers skip the first line; one operation skips the third.
    CHECK(call(one_node, ncclFuncAllReduce, 1024, 1, 0).table == CostTable{});
    CHECK(call(one_node, ncclFuncAllReduce, 1024, 4, 0).pick() == Pick{RING, LL128});
    CHECK(call(one_node, ncclFuncBroadcast, 1 << 20).pick() == Pick{RING, LL});
  }
  {
    Comm four_nodes(plugin, 32, 4, nullptr, conf.c_str());
    Outcome mid = call(four_nodes, ncclFuncAllReduce, 1 << 20, 1, 0);
    CHECK(mid.pick() == Pick{RING, SIMPLE});
    CHECK(mid.channels == 4);
  }
}

TEST_CASE("BASIN_TUNER_FILE wins over NCCL_TUNER_CONFIG_FILE and contexts keep their own rules",
          "[plugin]") {
  Plugin plugin;
  TempDir dir;
  const std::string json = dir.write("selection.json", kSelection);
  const std::string conf = dir.write("tuner.conf", "allreduce,0,65535,ring,ll,-1,-1,-1\n");
  Comm both(plugin, 8, 1, json.c_str(), conf.c_str());
  Comm csv_only(plugin, 8, 1, nullptr, conf.c_str());
  // Interleaved calls on two communicators: each keeps the rules it was created with.
  CHECK(call(both, ncclFuncAllReduce, 4096).pick() == Pick{TREE, LL});
  CHECK(call(csv_only, ncclFuncAllReduce, 4096).pick() == Pick{RING, LL});
  CHECK(call(both, ncclFuncAllReduce, 4096).pick() == Pick{TREE, LL});
  CHECK(call(csv_only, ncclFuncAllGather, 4096).table == CostTable{});
}

TEST_CASE("Bad rules files log one line naming the file and place and leave NCCL to choose",
          "[plugin]") {
  Plugin plugin;
  TempDir dir;
  struct Case {
    std::string name, text, expected_in_log;
  };
  const Case cases[] = {
      {"malformed.json", "{\"format\": \"basin.selection/1\", \"rows\": [\n  {\"collective\": }",
       "malformed.json: expected valid JSON (parse error at line 2"},
      {"unknown.json",
       R"({"format": "basin.selection/1", "rows": [{"collective": "allreduce", "min_bytes": 0,
           "max_bytes": 10, "algorithm": "ring", "protocol": "simple"}, {"collective":
           "allreduce", "min_bytes": 0, "max_bytes": 10, "algorithm": "rnig", "protocol":
           "simple"}]})",
       "unknown.json: /rows/1/algorithm: expected one of tree, ring"},
      {"bad.conf", "# ok\nallreduce,0,100,ring,simple,-1,-1,-1\nallreduce,0,x,ring,simple\n",
       "bad.conf: line 3"},
      {"field.conf", "allreduce,0,100,ring,simple,-1,-1,-1\nallreduce,0,100,ring,simpel,-1,-1,-1\n",
       "field.conf: line 2, field 5 (protocol): expected one of ll, ll128, simple, but found "
       "'simpel'"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.name);
    g_log.clear();
    const std::string path = dir.write(c.name, c.text);
    Comm comm(plugin, 8, 1, path.c_str());
    REQUIRE(g_log.size() == 1);
    CAPTURE(g_log[0].text);
    CHECK(g_log[0].level == NCCL_LOG_WARN);
    CHECK(logged(c.expected_in_log));
    CHECK(logged("(named by BASIN_TUNER_FILE)"));
    // No rule from the file is used, not even the good ones before the bad line.
    Outcome o = call(comm, ncclFuncAllReduce, 8);
    CHECK(o.table == CostTable{});
    CHECK(o.channels == 0);
    CHECK(g_log.size() == 1);
  }
}

TEST_CASE("A missing rules file logs one warning and no file at all logs one note", "[plugin]") {
  Plugin plugin;
  TempDir dir;
  const std::string missing = (dir.path / "not-written-yet.json").string();
  g_log.clear();
  {
    Comm comm(plugin, 8, 1, missing.c_str());
    REQUIRE(g_log.size() == 1);
    CHECK(g_log[0].level == NCCL_LOG_WARN);
    CHECK(logged(missing + ": expected a readable file: No such file or directory"));
    CHECK(call(comm, ncclFuncAllReduce, 8).table == CostTable{});
  }
  // Neither variable set and no ./nccl_tuner.conf: one INFO line.
  const fs::path previous = fs::current_path();
  fs::current_path(dir.path);
  g_log.clear();
  {
    Comm comm(plugin, 8, 1);
    REQUIRE(g_log.size() == 1);
    CHECK(g_log[0].level == NCCL_LOG_INFO);
    CHECK(logged("no rules (BASIN_TUNER_FILE and NCCL_TUNER_CONFIG_FILE unset"));
    CHECK(call(comm, ncclFuncAllReduce, 8).table == CostTable{});
  }
  // ./nccl_tuner.conf is NCCL's default: used when neither variable is set.
  dir.write("nccl_tuner.conf", "allreduce,0,100,ring,ll128,3,-1,-1\n");
  g_log.clear();
  {
    Comm comm(plugin, 8, 1);
    CHECK(logged("1 rules from nccl_tuner.conf for 1 nodes"));
    Outcome o = call(comm, ncclFuncAllReduce, 8);
    CHECK(o.pick() == Pick{RING, LL128});
    CHECK(o.channels == 3);
  }
  fs::current_path(previous);
}

TEST_CASE("Calls without a context or table and a file name with percent signs are safe",
          "[plugin]") {
  Plugin plugin;
  CostTable t;
  int channels = 0;
  CHECK(plugin.v5->getCollInfo(nullptr, ncclFuncAllReduce, 8, 1, t.as_nccl_passes_it(), kAlgos,
                               kProtos, 0, &channels) == ncclSuccess);
  CHECK(t == CostTable{});
  CHECK(plugin.v5->finalize(nullptr) == ncclSuccess);
  CHECK(plugin.v5->init(nullptr, 0, 8, 1, fake_logger, nullptr, nullptr) == ncclSuccess);

  TempDir dir;
  const std::string odd = dir.write("%s%n%d.json", "{ not json");
  g_log.clear();
  Comm comm(plugin, 8, 1, odd.c_str());
  REQUIRE(g_log.size() == 1);
  CHECK(logged(odd + ": expected valid JSON"));
  CHECK(plugin.v5->getCollInfo(comm.context, ncclFuncAllReduce, 8, 1, nullptr, kAlgos, kProtos, 0,
                               &channels) == ncclSuccess);
  // A collective kind this plugin has no name for (NCCL 2.28's gather is 10).
  CHECK(call(comm, static_cast<ncclFunc_t>(10), 8).table == CostTable{});
}

TEST_CASE("A smaller cost table than the rule needs is left alone", "[plugin]") {
  Plugin plugin;
  TempDir dir;
  g_log.clear();
  Comm comm(plugin, 8, 1, dir.write("selection.json", kSelection).c_str());
  // An NCCL with only tree and ring (numAlgo = 2) asked about an allgather that wants PAT.
  float table[2][kProtos] = {{5, 6, 7}, {8, 9, 10}};
  int channels = 0;
  REQUIRE(comm.tuner->getCollInfo(comm.context, ncclFuncAllGather, 4096, 1,
                                  reinterpret_cast<float**>(table), 2, kProtos, 0,
                                  &channels) == ncclSuccess);
  CHECK(table[0][0] == 5);
  CHECK(table[1][2] == 10);
  CHECK(channels == 0);
  CHECK(logged("asks for pat/ll128 but NCCL's cost table has 2 algorithms and 3 protocols"));
}

TEST_CASE("ncclTunerPlugin_v6 is exported exactly when configured for NCCL 2.30 or later",
          "[plugin]") {
  Plugin plugin;
  CHECK(std::string(plugin.v5->name) == "basin");
  const auto* v6 = static_cast<const ncclTuner_v6_t*>(::dlsym(plugin.handle, "ncclTunerPlugin_v6"));
  if (BASIN_TUNER_EXPORTS_V6) {
    REQUIRE(v6 != nullptr);
    CHECK(v6->getCollInfo == plugin.v5->getCollInfo);
    CHECK(v6->init == plugin.v5->init);
    CHECK(v6->finalize == plugin.v5->finalize);
    CHECK(v6->getChunkSize == nullptr);
  } else {
    CHECK(v6 == nullptr);
  }
  // Nothing of the rules library leaks out of the plugin.
  CHECK(::dlsym(plugin.handle,
                "_ZN5basin5tuner9find_ruleERKSt6vectorINS0_4RuleESaIS2_EERKNS0_5QueryE") ==
        nullptr);
}

TEST_CASE("Contexts answer calls from several threads at once and report an unusable rule once",
          "[plugin]") {
  Plugin plugin;
  TempDir dir;
  const std::string json = dir.write("selection.json", kSelection);
  const std::string conf = dir.write("tuner.conf", "allreduce,0,65535,ring,ll,-1,-1,-1\n");
  g_log.clear();
  Comm a(plugin, 8, 1, json.c_str());
  Comm b(plugin, 8, 1, nullptr, conf.c_str());
  constexpr int kThreads = 4, kCalls = 2000;
  std::vector<int> wrong(kThreads, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < kCalls; ++i) {
        const Comm& comm = (i + t) % 2 ? a : b;
        Outcome o;
        comm.tuner->getCollInfo(comm.context, ncclFuncAllReduce, 4096, 1,
                                o.table.as_nccl_passes_it(), kAlgos, kProtos, 0, &o.channels);
        const Pick expected = &comm == &a ? Pick{TREE, LL} : Pick{RING, LL};
        wrong[static_cast<size_t>(t)] += !(o.pick() == expected);
        // The unusable NVLS rule of `a`, hit by every thread.
        CostTable reduce;
        int channels = 0;
        a.tuner->getCollInfo(a.context, ncclFuncReduce, 8, 1, reduce.as_nccl_passes_it(), kAlgos,
                             kProtos, 0, &channels);
        wrong[static_cast<size_t>(t)] += !(reduce == CostTable{});
      }
    });
  for (auto& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) CHECK(wrong[static_cast<size_t>(t)] == 0);
  // Two init lines and one report of the unusable rule, however many threads hit it.
  CHECK(g_log.size() == 3);
}

TEST_CASE("A plugin given no logger still loads and applies rules", "[plugin]") {
  Plugin plugin;
  TempDir dir;
  ::setenv("BASIN_TUNER_FILE", dir.write("selection.json", kSelection).c_str(), 1);
  void* context = nullptr;
  REQUIRE(plugin.v5->init(&context, 7, 8, 1, nullptr, nullptr, nullptr) == ncclSuccess);
  ::unsetenv("BASIN_TUNER_FILE");
  REQUIRE(context != nullptr);
  Outcome o;
  CHECK(plugin.v5->getCollInfo(context, ncclFuncAllGather, 4096, 1, o.table.as_nccl_passes_it(),
                               kAlgos, kProtos, 0, &o.channels) == ncclSuccess);
  CHECK(o.pick() == Pick{PAT, LL128});
  // The unusable-rule report with no logger to send it to.
  CHECK(plugin.v5->getCollInfo(context, ncclFuncReduce, 8, 1, o.table.as_nccl_passes_it(), kAlgos,
                               kProtos, 0, &o.channels) == ncclSuccess);
  CHECK(plugin.v5->finalize(context) == ncclSuccess);
}
