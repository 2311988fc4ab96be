// The scaling sweep of `basin sim --scaling` (see sim_scaling.h).
#include "sim_scaling.h"

#include <basin/plot.h>

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdio>
#include <iostream>

namespace basin::cli {

std::vector<int> scaling_counts(int gpus_per_server, int gpus) {
  std::vector<int> counts;
  const int first = gpus < gpus_per_server ? 1 : gpus_per_server;
  for (long long n = first; n < gpus; n *= 2) counts.push_back(static_cast<int>(n));
  counts.push_back(gpus);
  return counts;
}

std::vector<std::pair<double, double>> parse_measured(const std::string& text) {
  std::vector<std::pair<double, double>> points;
  for (size_t start = 0; start <= text.size();) {  // every piece, empty ones too ("1:1,")
    size_t end = text.find(',', start);
    if (end == std::string::npos) end = text.size();
    const std::string item = text.substr(start, end - start);
    start = end + 1;
    const size_t colon = item.find(':');
    size_t used_gpus = 0, used_eff = 0;
    double gpus = 0, efficiency = 0;
    try {
      if (colon == std::string::npos) throw std::invalid_argument("no colon");
      gpus = std::stod(item.substr(0, colon), &used_gpus);
      efficiency = std::stod(item.substr(colon + 1), &used_eff);
    } catch (const std::exception&) {
      used_gpus = 0;
    }
    if (used_gpus == 0 || used_gpus != colon || used_eff != item.size() - colon - 1 ||
        !(gpus >= 1) || !(efficiency > 0) || !std::isfinite(efficiency))
      throw topo::InputError("--measured", "",
                             "GPUS:EFFICIENCY pairs separated by commas, such as 256:0.9,352:0.87 "
                             "(GPUs >= 1, efficiency > 0), got '" + item + "'");
    points.emplace_back(gpus, efficiency);
  }
  if (points.empty())
    throw topo::InputError("--measured", "", "at least one GPUS:EFFICIENCY pair, got nothing");
  return points;
}

int run_scaling(const topo::Topology& cluster, const sim::DeviceProfile& profile,
                sim::TrainingConfig config, const ScalingOptions& o) {
  const auto measured = o.measured.empty() ? std::vector<std::pair<double, double>>{}
                                           : parse_measured(o.measured);
  const auto all = topo::gpus(cluster);
  int per_server = 0;
  for (topo::Vertex v : all) per_server += cluster.graph[v].server == cluster.graph[all[0]].server;
  const std::vector<int> counts = scaling_counts(per_server, config.gpus);

  nlohmann::json points = nlohmann::json::array();
  plot::Series curve{"basin sim", {}, {}, plot::Series::Style::line_and_points};
  if (!o.json)
    std::printf("%6s %12s %10s %10s %12s %10s\n", "GPUs", "iteration s", "exposed s", "images/s",
                "epoch s", "efficiency");
  for (size_t i = 0; i < counts.size(); ++i) {
    config.gpus = counts[i];
    const sim::Prediction p = sim::predict(cluster, profile, config);
    const sim::IterationResult& r = p.result;
    points.push_back({{"gpus", counts[i]}, {"iteration_s", r.iteration_s},
                      {"exposed_comm_s", r.exposed_comm_s}, {"images_per_s", r.images_per_s},
                      {"epoch_s", r.epoch_s}, {"scaling_efficiency", p.scaling_efficiency}});
    curve.x.push_back(counts[i]);
    curve.y.push_back(p.scaling_efficiency);
    if (!o.json)
      std::printf("%6d %12.4f %10.4f %10.0f %12.1f %9.1f%%\n", counts[i], r.iteration_s,
                  r.exposed_comm_s, r.images_per_s, r.epoch_s, 100 * p.scaling_efficiency);
    else
      std::cerr << "basin sim: " << i + 1 << "/" << counts.size() << " (" << counts[i]
                << " GPUs)\n";
  }
  if (o.json)
    std::cout << nlohmann::json{{"format", "basin.sim_scaling/1"},
                                {"cluster", cluster.name},
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
