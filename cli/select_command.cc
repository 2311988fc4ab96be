// `basin select`: the fastest allreduce per message size (nccl-tests' ladder, 8 B to 8 GB) on a
// cluster, every candidate's time beside it, algbw/busbw as nccl-tests defines them, and the
// sizes where the choice changes.
#include "commands.h"

#include <basin/plan.h>

#include <nlohmann/json.hpp>

#include <cstdio>
#include <iostream>

namespace basin::cli {
namespace {

struct SelectCliOptions {
  std::string cluster = "bigbasin:32";
  plan::SelectOptions select;
  bool json = false;
  std::string selection_file;  // basin.selection/1 for the tuner plugin
  std::string nccl_conf_file;  // the same rules as nccl_tuner.conf CSV
};

std::string human_bytes(double b) {
  const char* units[] = {"B", "KB", "MB", "GB"};
  int u = 0;
  while (b >= 1024 && u < 3) b /= 1024, ++u;
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g %s", b, units[u]);
  return buf;
}

int run(SelectCliOptions o) {
  topo::Topology t = topo::load_any(o.cluster);
  if (!o.selection_file.empty() || !o.nccl_conf_file.empty()) o.select.nccl = true;
  plan::Selection s = plan::select_allreduce(t, o.select);
  if (!o.selection_file.empty() || !o.nccl_conf_file.empty()) {
    tuner::Selection rules = plan::nccl_rules(s);
    // Both destinations are checked before either is written: one bad path leaves no file.
    if (!o.selection_file.empty()) topo::require_writable(o.selection_file);
    if (!o.nccl_conf_file.empty()) topo::require_writable(o.nccl_conf_file);
    try {
      if (!o.selection_file.empty()) tuner::save_selection_json(rules, o.selection_file);
      if (!o.nccl_conf_file.empty()) tuner::save_nccl_conf(rules.rules, o.nccl_conf_file);
    } catch (const tuner::InputError& e) {
      throw topo::InputError(e.origin, e.where, e.expected);
    }
    std::cerr << "basin select: wrote " << rules.rules.size() << " NCCL rules"
              << (o.selection_file.empty() ? "" : " to " + o.selection_file)
              << (o.nccl_conf_file.empty() ? "" : " and " + o.nccl_conf_file)
              << " (NCCL_TUNER_PLUGIN=libnccl-tuner-basin.so BASIN_TUNER_FILE=...)\n";
  }
  if (o.json) {
    nlohmann::json rows = nlohmann::json::array();
    for (const auto& r : s.rows) {
      nlohmann::json all = nlohmann::json::object();
      for (size_t i = 0; i < s.candidates.size(); ++i)
        all[s.candidates[i].name()] = {
            {"time_s", r.time_s[i]},
            {"algbw_GBps", plan::algbw_GBps(r.bytes, r.time_s[i])},
            {"busbw_GBps", plan::busbw_GBps(r.bytes, r.time_s[i], s.ranks)}};
      rows.push_back({{"bytes", r.bytes}, {"best", s.candidates[r.best].name()}, {"candidates", all}});
    }
    nlohmann::json cross = nlohmann::json::array();
    for (const auto& c : s.crossovers) cross.push_back({{"bytes", c.bytes}, {"from", c.from}, {"to", c.to}});
    std::cout << nlohmann::json{{"format", "basin.select_result/1"}, {"cluster", s.cluster},
                                {"ranks", s.ranks}, {"servers", s.servers}, {"sizes", rows},
                                {"crossovers", cross}}
                     .dump(1)
              << "\n";
    return 0;
  }
  std::printf("allreduce on %d ranks over %d servers of %s\n\n", s.ranks, s.servers, s.cluster.c_str());
  std::printf("%10s  %-32s %11s %9s %9s   time of every candidate (us):", "size", "best", "time (us)",
              "algbw", "busbw");
  std::printf("\n%10s  %-32s %11s %9s %9s  ", "", "", "", "GB/s", "GB/s");
  for (size_t i = 0; i < s.candidates.size(); ++i) std::printf(" [%zu]", i);
  std::printf("\n");
  for (const auto& r : s.rows) {
    double best = r.time_s[r.best];
    std::printf("%10s  %-32s %11.1f %9.2f %9.2f  ", human_bytes(r.bytes).c_str(),
                s.candidates[r.best].name().c_str(), best * 1e6, plan::algbw_GBps(r.bytes, best),
                plan::busbw_GBps(r.bytes, best, s.ranks));
    for (double x : r.time_s) std::printf(" %.4g", x * 1e6);
    std::printf("\n");
  }
  std::printf("\ncandidates:");
  for (size_t i = 0; i < s.candidates.size(); ++i)
    std::printf(" [%zu] %s", i, s.candidates[i].name().c_str());
  std::printf("\ncrossovers:\n");
  for (const auto& c : s.crossovers)
    std::printf("  from %s: %s -> %s\n", human_bytes(c.bytes).c_str(), c.from.c_str(), c.to.c_str());
  return 0;
}

}  // namespace

std::function<int()> add_select_command(CLI::App& app) {
  auto o = std::make_shared<SelectCliOptions>();
  CLI::App* cmd = app.add_subcommand("select", "Best allreduce algorithm for every message size");
  cmd->add_option("--cluster", o->cluster, "Cluster spec or topology/cluster JSON")->capture_default_str();
  cmd->add_option("--ranks", o->select.ranks, "Ranks (default: every GPU)");
  cmd->add_option("--per-server", o->select.per_server,
                  "Ranks per server, e.g. 1 for one leader per server (default: all its GPUs)");
  cmd->add_flag("--nccl", o->select.nccl, "Add NCCL's ring and tree under LL, LL128 and Simple");
  cmd->add_option("--overhead-us", o->select.network.per_message_overhead_us,
                  "Per-message software overhead (us)")
      ->capture_default_str();
  cmd->add_option("--min-bytes", o->select.min_bytes, "Smallest message")->capture_default_str();
  cmd->add_option("--max-bytes", o->select.max_bytes, "Largest message")->capture_default_str();
  cmd->add_flag("--json", o->json, "Print the result as JSON");
  cmd->add_option("--selection", o->selection_file,
                  "Write the NCCL choice per size as basin.selection/1 for the tuner plugin");
  cmd->add_option("--nccl-conf", o->nccl_conf_file, "Write the same rules as nccl_tuner.conf CSV");
  return [o] { return run(*o); };
}

}  // namespace basin::cli
