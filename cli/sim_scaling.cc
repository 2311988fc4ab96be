// The scaling sweep of `basin sim --scaling` (see sim_scaling.h).
#include "sim_scaling.h"

#include "measured_points.h"

#include <basin/plot.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <map>

namespace basin::cli {

std::vector<int> scaling_counts(int gpus_per_server, int gpus) {
  std::vector<int> counts;
  const int first = gpus < gpus_per_server ? 1 : gpus_per_server;
  for (long long n = first; n < gpus; n *= 2) counts.push_back(static_cast<int>(n));
  counts.push_back(gpus);
  return counts;
}

int run_scaling(const topo::Topology& cluster, const sim::DeviceProfile& profile,
                sim::TrainingConfig config, const ScalingOptions& o, const sim::AllreduceModel& model) {
  const auto measured =
      o.measured.empty() ? std::vector<std::pair<double, double>>{}
                         : parse_points(o.measured, {.flag = "--measured",
                                                     .form = "GPUS:EFFICIENCY",
                                                     .example = "256:0.9,352:0.87",
                                                     .limits = "GPUs >= 1, efficiency in (0, 1]",
                                                     .min_x = 1,
                                                     .max_y = 1});
  // The sweep starts at one server's share: its GPUs, or --per-server's N of them.
  const auto all = topo::gpus(cluster);
  int per_server = 0;
  for (topo::Vertex v : all) per_server += cluster.graph[v].server == cluster.graph[all[0]].server;
  if (config.gpus_per_server > 0) per_server = std::min(per_server, config.gpus_per_server);
  // Servers no route joins (fabric=none): the sweep stops at one server's share, and says so.
  const bool unjoined = sim::unjoined_server_gpus(cluster) > 0 && config.gpus > per_server;
  if (unjoined) config.gpus = per_server;
  const std::vector<int> counts = scaling_counts(per_server, config.gpus);
  // Where each count's GPUs are: "4 x 8" (servers x GPUs), or "8+8+4" where they are uneven.
  auto layout_of = [&](int count) {
    std::map<int, int> on_server;
    for (topo::Vertex v : sim::gpus_in_use(cluster, count, config.gpus_per_server)) ++on_server[cluster.graph[v].server];
    std::vector<int> ranks;
    for (const auto& [server, n] : on_server) ranks.push_back(n);
    return ranks;
  };
  auto layout_text = [](const std::vector<int>& ranks) {
    if (std::all_of(ranks.begin(), ranks.end(), [&](int n) { return n == ranks.front(); }))
      return std::to_string(ranks.size()) + " x " + std::to_string(ranks.front());
    std::string text;
    for (int n : ranks) text += (text.empty() ? "" : "+") + std::to_string(n);
    return text;
  };

  nlohmann::json points = nlohmann::json::array();
  plot::Series curve{"basin sim", {}, {}, plot::Series::Style::line_and_points};
  // What is swept, and what its compute rests on (one device, so every count's basis is one).
  const sim::IterationResult first = sim::predict(cluster, profile, [&] {
    sim::TrainingConfig one = config;
    one.gpus = counts.front();
    return one;
  }(), model).result;
  if (!o.json)
    std::printf("%s\ncompute: %s%s\n\n", o.configuration.c_str(), first.compute_estimated ? "ESTIMATE, " : "",
                first.compute_basis.c_str());
  if (!o.json)
    std::printf("%6s %-14s %12s %10s %10s %10s %12s %10s %12s\n", "GPUs", "servers x GPUs", "iteration s",
                "exposed s", "stall s", "images/s", "epoch s", "efficiency", "vs one GPU");
  std::string input_basis;  // the largest count's
  for (size_t i = 0; i < counts.size(); ++i) {
    config.gpus = counts[i];
    const sim::Prediction p = sim::predict(cluster, profile, config, model);
    const sim::IterationResult& r = p.result;
    input_basis = r.input_basis;
    const std::vector<int> ranks = layout_of(counts[i]);
    points.push_back({{"gpus", counts[i]}, {"ranks_per_server", ranks}, {"iteration_s", r.iteration_s},
                      {"exposed_comm_s", r.exposed_comm_s}, {"data_stall_s", r.data_stall_s},
                      {"images_per_s", r.images_per_s},
                      {"epoch_s", r.epoch_s}, {"scaling_efficiency_vs_one_server", p.scaling_efficiency},
                      {"scaling_efficiency_vs_one_gpu", p.scaling_efficiency_vs_one_gpu}});
    curve.x.push_back(counts[i]);
    curve.y.push_back(p.scaling_efficiency);
    if (!o.json)
      std::printf("%6d %-14s %12.4f %10.4f %10.4f %10.0f %12.1f %9.1f%% %11.1f%%\n", counts[i],
                  layout_text(ranks).c_str(), r.iteration_s,
                  r.exposed_comm_s, r.data_stall_s, r.images_per_s, r.epoch_s, 100 * p.scaling_efficiency,
                  100 * p.scaling_efficiency_vs_one_gpu);
    else
      std::cerr << "basin sim: " << i + 1 << "/" << counts.size() << " (" << counts[i]
                << " GPUs)\n";
  }
  if (unjoined && !o.json)
    std::printf("No route joins %s's servers: the sweep stops at one server's %d GPUs (a fabric, fabric=switch, "
                "fat-tree or rail, joins them).\n",
                cluster.name.c_str(), per_server);
  // Efficiency against one server hides a pipeline that starves every GPU alike: say so.
  if (!o.json && !points.empty() && points.back()["data_stall_s"].get<double>() > 1e-3 * points.back()["iteration_s"].get<double>())
    std::printf("The input pipeline stalls every GPU (%s); efficiency vs one server leaves that out, "
                "vs one GPU does not: raise --decode-rate, --cores-per-gpu or --gpu-decode-rate to see the GPUs' own "
                "scaling.\n",
                input_basis.c_str());
  if (o.json)
    std::cout << nlohmann::json{{"format", "basin.sim_scaling/1"},
                                {"cluster", cluster.name},
                                {"configuration", o.configuration},
                                {"compute_estimated", first.compute_estimated},
                                {"compute_basis", first.compute_basis},
                                {"baseline", "one server's GPUs, the same configuration"},
                                {"points", points}}
                     .dump(2)
              << "\n";
  if (!o.plot.empty()) {
    plot::Chart chart{.title = "Scaling efficiency on " + cluster.name + " (vs one server)",
                      .x = {"GPUs", true},
                      .y = {"scaling efficiency"},
                      .series = {curve}};
    if (!measured.empty()) {
      plot::Series m{"measured", {}, {}, plot::Series::Style::points};
      for (auto [g, e] : measured) m.x.push_back(g), m.y.push_back(e);
      chart.series.push_back(m);
    }
    topo::write_file_atomically(o.plot, plot::to_svg(chart));
    std::cerr << "basin sim: wrote " << o.plot << "\n";
  }
  return 0;
}

}  // namespace basin::cli
