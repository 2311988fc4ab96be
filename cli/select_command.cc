// `basin select`: the fastest allreduce per message size (nccl-tests' ladder, 8 B to 8 GB) on a
// cluster, every candidate's time beside it, algbw/busbw as nccl-tests defines them, and the
// sizes where the choice changes; as a table, JSON, or an SVG of busbw against message size with
// the user's own nccl-tests figures beside it.
#include "commands.h"
#include "measured_points.h"

#include <basin/plan.h>
#include <basin/plot.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <limits>

namespace basin::cli {
namespace {

struct SelectCliOptions {
  std::string cluster = "bigbasin:32";
  plan::SelectOptions select;
  bool json = false;
  std::string selection_file;  // basin.selection/1 for the tuner plugin
  std::string nccl_conf_file;  // the same rules as nccl_tuner.conf CSV
  std::string plot;            // SVG of busbw against message size; empty: none
  std::string measured;        // "BYTES:BUSBW,..." drawn beside the prediction
};

// Sizes as nccl-tests steps them, powers of two: in binary units, so "8 GiB" is 8 x 2^30 bytes
// (bandwidths stay decimal GB/s, as nccl-tests prints them).
std::string human_bytes(double b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB"};
  int u = 0;
  while (b >= 1024 && u < 3) b /= 1024, ++u;
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g %s", b, units[u]);
  return buf;
}

// busbw against message size of every candidate that is the fastest at some size (so the
// crossovers show), of NCCL's fastest choice per size when NCCL's are candidates (what NCCL's
// tuner would pick and nccl-tests measures by default), and the user's measured points.
plot::Chart busbw_chart(const plan::Selection& s, const std::vector<std::pair<double, double>>& measured) {
  plot::Chart chart{.title = "allreduce on " + std::to_string(s.ranks) + " GPUs of " + s.cluster,
                    .x = {.label = "message size", .log2 = true, .bytes = true},
                    .y = {.label = "busbw (GB/s, nccl-tests' definition)"}};
  std::vector<bool> wins(s.candidates.size(), false);
  for (const auto& r : s.rows) wins[r.best] = true;
  auto curve = [&](const std::string& label, auto time_of) {
    plot::Series c{label, {}, {}};
    for (const auto& r : s.rows) {
      c.x.push_back(r.bytes);
      c.y.push_back(plan::busbw_GBps(r.bytes, time_of(r), s.ranks));
    }
    return c;
  };
  for (size_t i = 0; i < s.candidates.size(); ++i)
    if (wins[i])
      chart.series.push_back(curve(s.candidates[i].name(), [&](const plan::SizeRow& r) { return r.time_s[i]; }));
  bool nccl = false;
  for (const auto& c : s.candidates) nccl = nccl || c.is_nccl();
  if (nccl)
    chart.series.push_back(curve("NCCL's fastest choice", [&](const plan::SizeRow& r) {
      double t = std::numeric_limits<double>::infinity();
      for (size_t i = 0; i < s.candidates.size(); ++i)
        if (s.candidates[i].is_nccl()) t = std::min(t, r.time_s[i]);
      return t;
    }));
  if (!measured.empty()) {
    plot::Series m{"measured", {}, {}, plot::Series::Style::points};
    for (auto [bytes, busbw] : measured) m.x.push_back(bytes), m.y.push_back(busbw);
    chart.series.push_back(m);
  }
  return chart;
}

int run(SelectCliOptions o) {
  if (!o.measured.empty() && o.plot.empty())
    throw topo::InputError("--measured", "", "--plot FILE too: measured points are drawn beside the prediction");
  const auto measured = o.measured.empty()
                            ? std::vector<std::pair<double, double>>{}
                            : parse_points(o.measured, {.flag = "--measured",
                                                        .form = "BYTES:BUSBW",
                                                        .example = "8589934592:480,1048576:60",
                                                        .limits = "bytes >= 1, busbw in GB/s > 0",
                                                        .min_x = 1});
  if (!o.plot.empty()) topo::require_writable(o.plot);
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
    // NCCL offers CollNet, and NVLS across servers (which runs through CollNet), only when CollNet
    // is enabled; otherwise it marks those cells unusable and the rule changes nothing.
    const bool needs_collnet = std::any_of(rules.rules.begin(), rules.rules.end(), [&](const tuner::Rule& r) {
      return r.algorithm == tuner::Algorithm::collnet_chain ||
             (r.algorithm == tuner::Algorithm::nvls && s.servers > 1);
    });
    if (needs_collnet)
      std::cerr << "basin select: these rules name CollNet or NVLS across servers, which NCCL offers only "
                   "with CollNet enabled: set NCCL_COLLNET_ENABLE=1 where they are used\n";
  }
  if (!o.plot.empty()) {
    topo::write_file_atomically(o.plot, plot::to_svg(busbw_chart(s, measured)));
    std::cerr << "basin select: wrote " << o.plot << "\n";
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
    nlohmann::json libraries = nlohmann::json::object();  // what runs each candidate as timed
    for (size_t i = 0; i < s.candidates.size(); ++i) libraries[s.candidates[i].name()] = s.libraries[i];
    nlohmann::json cross = nlohmann::json::array();
    for (const auto& c : s.crossovers) cross.push_back({{"bytes", c.bytes}, {"from", c.from}, {"to", c.to}});
    std::cout << nlohmann::json{{"format", "basin.select_result/1"}, {"cluster", s.cluster},
                                {"ranks", s.ranks}, {"servers", s.servers}, {"libraries", libraries}, {"sizes", rows},
                                {"crossovers", cross}}
                     .dump(1)
              << "\n";
    return 0;
  }
  std::printf("allreduce on %d rank%s over %d server%s of %s\n\n", s.ranks, s.ranks == 1 ? "" : "s", s.servers,
              s.servers == 1 ? "" : "s", s.cluster.c_str());
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
  // Which of them a run can use as timed: the answer to "which should I use" is among these.
  std::map<std::string, std::string> by_library;
  for (size_t i = 0; i < s.candidates.size(); ++i)
    by_library[s.libraries[i]] += " [" + std::to_string(i) + "]";
  std::vector<std::string> groups;
  if (by_library.count("nccl")) groups.push_back("on NCCL" + by_library["nccl"]);
  if (by_library.count("gloo")) groups.push_back("on Gloo, staged through host memory" + by_library["gloo"]);
  if (by_library.count("nccl+gloo"))
    groups.push_back("on NCCL in each server and Gloo between, one host copy per server" + by_library["nccl+gloo"]);
  if (by_library.count("simulated-only"))
    groups.push_back("simulated only (no library basin trains with runs them as timed)" + by_library["simulated-only"]);
  if (by_library.count("none")) groups.push_back("one rank: nothing to reduce");
  std::printf("\nruns as timed:");
  for (size_t i = 0; i < groups.size(); ++i) std::printf("%s %s", i ? ";" : "", groups[i].c_str());
  std::printf("\ncrossovers:%s\n", s.crossovers.empty() ? " none (one algorithm is fastest at every size)" : "");
  for (const auto& c : s.crossovers)
    std::printf("  from %s: %s -> %s\n", human_bytes(c.bytes).c_str(), c.from.c_str(), c.to.c_str());
  return 0;
}

}  // namespace

std::function<int()> add_select_command(CLI::App& app) {
  auto o = std::make_shared<SelectCliOptions>();
  CLI::App* cmd = app.add_subcommand("select", "Best allreduce algorithm for every message size");
  cmd->add_option("--cluster", o->cluster, "Cluster spec or topology/cluster JSON")->capture_default_str();
  cmd->add_option("--ranks", o->select.ranks, "Ranks (default or 0: every GPU)");
  cmd->add_option("--per-server", o->select.per_server,
                  "Ranks per server, e.g. 1 for one leader per server (default or 0: all its GPUs)");
  cmd->add_flag("--nccl", o->select.nccl,
                "Add NCCL's ring and tree under LL, LL128 (where NCCL enables it) and Simple, NVLS where the NVSwitch sums, "
                "NVLS-tree across servers whose NVSwitches sum, and on a fabric that sums (sharp=on) NVLS across "
                "servers and CollNet's chain");
  cmd->add_option("--overhead-us", o->select.network.per_message_overhead_us,
                  "Per-message software overhead (us)")
      ->capture_default_str();
  cmd->add_option("--min-bytes", o->select.min_bytes, "Smallest message")->capture_default_str();
  // Whole bytes in the help: CLI11 prints the double as 8.58993e+09, which taken back stops at 4 GiB.
  cmd->add_option("--max-bytes", o->select.max_bytes, "Largest message")
      ->default_str(std::to_string(static_cast<long long>(o->select.max_bytes)));
  cmd->add_flag("--json", o->json, "Print the result as JSON");
  cmd->add_option("--selection", o->selection_file,
                  "Write the NCCL choice per size as basin.selection/1 for the tuner plugin");
  cmd->add_option("--nccl-conf", o->nccl_conf_file, "Write the same rules as nccl_tuner.conf CSV");
  cmd->add_option("--plot", o->plot, "Write busbw against message size as SVG (the winners, NCCL's best choice)");
  cmd->add_option("--measured", o->measured,
                  "With --plot: your nccl-tests figures beside the prediction, BYTES:BUSBW,... (GB/s)");
  return [o] { return run(*o); };
}

}  // namespace basin::cli
