// libnccl-tuner-basin.so: an NCCL tuner plugin that makes NCCL use basin's per-size choice of
// algorithm, protocol and channel count. NCCL calls init once per communicator, getCollInfo for
// every collective it schedules, and finalize when the communicator goes away.
//
// Rules come from BASIN_TUNER_FILE (basin.selection/1 JSON or nccl_tuner.conf CSV), else from
// NCCL_TUNER_CONFIG_FILE, else from ./nccl_tuner.conf (the same fallbacks as NCCL's example
// plugin). The plugin never fails NCCL: a missing or malformed file is one log line, after which
// NCCL's own model decides everything. No C++ exception crosses into NCCL, and all state lives
// in the per-communicator context.
#include <basin/tuner.h>
#include <sys/stat.h>

#include <atomic>
#include <cstdlib>
#include <memory>
#include <string>

#include "nccl_tuner_abi.h"

#define BASIN_TUNER_EXPORT extern "C" __attribute__((visibility("default")))

namespace basin::tuner {
namespace {

struct Context {
  std::vector<Rule> rules;
  int nodes = 1, ranks = 1;
  ncclDebugLogger_t log = nullptr;
  // Set once a rule has been reported as unusable, so the report appears once, not per call.
  std::unique_ptr<std::atomic<bool>[]> reported;
};

void log_line(ncclDebugLogger_t log, ncclDebugLogLevel level, int line, const std::string& text) {
  // The text may hold a file name with '%' in it: never pass it as the format.
  if (log) log(level, NCCL_TUNING, __FILE__, line, "%s", text.c_str());
}

int to_int(size_t n) {
  return n > static_cast<size_t>(kNoLimit) ? kNoLimit : static_cast<int>(n);
}

bool exists(const char* path) {
  struct stat st;
  return ::stat(path, &st) == 0;
}

// Where the rules come from, in NCCL's order of precedence plus basin's own variable first.
struct RulesSource {
  std::string path;
  const char* named_by = nullptr;  // the environment variable, or null for the default file
};

std::optional<RulesSource> rules_source() {
  for (const char* var : {"BASIN_TUNER_FILE", "NCCL_TUNER_CONFIG_FILE"})
    if (const char* value = std::getenv(var); value && *value) return RulesSource{value, var};
  if (exists("nccl_tuner.conf")) return RulesSource{"nccl_tuner.conf", nullptr};
  return std::nullopt;
}

// Loads the rules and logs exactly one line saying what happened.
void load_rules(Context& ctx) {
  const std::string defer = "; NCCL's own model chooses every algorithm and protocol";
  std::optional<RulesSource> source = rules_source();
  if (!source) {
    log_line(ctx.log, NCCL_LOG_INFO, __LINE__,
             "basin tuner: no rules (BASIN_TUNER_FILE and NCCL_TUNER_CONFIG_FILE unset, no "
             "./nccl_tuner.conf)" +
                 defer);
    return;
  }
  const std::string named_by =
      source->named_by ? std::string(" (named by ") + source->named_by + ")" : std::string();
  try {
    Selection selection = load_rules_file(source->path);
    ctx.rules = std::move(selection.rules);
    ctx.reported = std::make_unique<std::atomic<bool>[]>(ctx.rules.size());
    log_line(ctx.log, NCCL_LOG_INFO, __LINE__,
             "basin tuner: " + std::to_string(ctx.rules.size()) + " rules from " + source->path +
                 named_by + " for " + std::to_string(ctx.nodes) + " nodes, " +
                 std::to_string(ctx.ranks) + " ranks");
  } catch (const std::exception& e) {
    ctx.rules.clear();
    log_line(ctx.log, NCCL_LOG_WARN, __LINE__,
             "basin tuner: ignoring rules" + named_by + ": " + e.what() + defer);
  }
}

// Makes the rule's cell the cheapest, unless NCCL marked it unusable or the table is too small.
// Returns what stood in the way, or an empty string.
std::string apply(const Rule& rule, float** collCostTable, int numAlgo, int numProto,
                  int* nChannels) {
  const int a = static_cast<int>(rule.algorithm), p = static_cast<int>(rule.protocol);
  if (a >= numAlgo || p >= numProto)
    return "NCCL's cost table has " + std::to_string(numAlgo) + " algorithms and " +
           std::to_string(numProto) + " protocols";
  float* cell = reinterpret_cast<float*>(collCostTable) + a * numProto + p;
  if (*cell == NCCL_ALGO_PROTO_IGNORE) return "NCCL cannot use it on this communicator";
  *cell = 0.0f;  // NCCL picks the smallest non-negative cost
  if (rule.channels != kAny && nChannels) *nChannels = rule.channels;
  return {};
}

ncclResult_t init(void** context, uint64_t /*commId*/, size_t nRanks, size_t nNodes,
                  ncclDebugLogger_t logFunction, ncclNvlDomainInfo_v5_t* /*nvlDomainInfo*/,
                  ncclTunerConstants_v5_t* /*constants*/) {
  if (!context) return ncclSuccess;
  *context = nullptr;
  try {
    auto ctx = std::make_unique<Context>();
    ctx->nodes = to_int(nNodes);
    ctx->ranks = to_int(nRanks);
    ctx->log = logFunction;
    load_rules(*ctx);
    *context = ctx.release();
  } catch (...) {
    // Out of memory, at worst: run without a context, which defers every choice to NCCL.
    log_line(logFunction, NCCL_LOG_WARN, __LINE__,
             "basin tuner: could not set up; NCCL's own model chooses every algorithm and "
             "protocol");
  }
  return ncclSuccess;
}

ncclResult_t get_coll_info(void* context, ncclFunc_t collType, size_t nBytes, int numPipeOps,
                           float** collCostTable, int numAlgo, int numProto, int regBuff,
                           int* nChannels) {
  auto* ctx = static_cast<Context*>(context);
  if (!ctx || ctx->rules.empty() || !collCostTable || numAlgo <= 0 || numProto <= 0)
    return ncclSuccess;
  try {
    const int func = static_cast<int>(collType);
    if (func < 0 || func > static_cast<int>(Collective::allreduce)) return ncclSuccess;
    Query q{.collective = static_cast<Collective>(func),
            .bytes = nBytes,
            .nodes = ctx->nodes,
            .ranks = ctx->ranks,
            .pipe_ops = numPipeOps,
            .reg_buff = regBuff ? 1 : 0};
    int index = find_rule(ctx->rules, q);
    if (index < 0) return ncclSuccess;
    const Rule& rule = ctx->rules[static_cast<size_t>(index)];
    std::string obstacle = apply(rule, collCostTable, numAlgo, numProto, nChannels);
    if (obstacle.empty()) return ncclSuccess;
    if (!ctx->reported[static_cast<size_t>(index)].exchange(true))
      log_line(ctx->log, NCCL_LOG_INFO, __LINE__,
               "basin tuner: rule " + std::to_string(index) + " (" + to_string(rule.collective) +
                   " " + std::to_string(rule.min_bytes) + " to " + std::to_string(rule.max_bytes) +
                   " bytes) asks for " + to_string(rule.algorithm) + "/" +
                   to_string(rule.protocol) + " but " + obstacle +
                   "; NCCL's own model chooses for it");
  } catch (...) {
    // Logging allocates; if even that failed, NCCL's table is untouched and NCCL decides.
  }
  return ncclSuccess;
}

ncclResult_t finalize(void* context) {
  delete static_cast<Context*>(context);
  return ncclSuccess;
}

}  // namespace
}  // namespace basin::tuner

BASIN_TUNER_EXPORT const ncclTuner_v5_t ncclTunerPlugin_v5 = {
    "basin", basin::tuner::init, basin::tuner::get_coll_info, basin::tuner::finalize};

#ifdef BASIN_TUNER_V6
BASIN_TUNER_EXPORT const ncclTuner_v6_t ncclTunerPlugin_v6 = {
    "basin", basin::tuner::init, basin::tuner::get_coll_info, basin::tuner::finalize, nullptr};
#endif
