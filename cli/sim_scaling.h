// `basin sim --scaling`: the same training configuration predicted from one server up to the
// requested GPU count (doubling the servers), as a table, JSON or an SVG scaling curve, with
// the user's own measured points beside it.
#pragma once

#include <basin/training.h>

#include <string>
#include <utility>
#include <vector>

namespace basin::cli {

struct ScalingOptions {
  bool json = false;
  std::string plot;      // SVG path; empty: none
  std::string measured;  // "GPUS:EFFICIENCY,..." drawn beside the prediction
  std::string configuration;  // what is swept, said above the table ("resnet50 on bigbasin:32: ...")
};

// GPU counts of a sweep up to `gpus`: one server's share (its GPUs, or --per-server's N; or 1,
// 2, 4, ... inside a server), doubling, and `gpus` itself.
std::vector<int> scaling_counts(int gpus_per_server, int gpus);

// `model` times the allreduces (sim::predict's AllreduceModel).
int run_scaling(const topo::Topology& cluster, const sim::DeviceProfile& profile,
                sim::TrainingConfig config, const ScalingOptions& options,
                const sim::AllreduceModel& model);

}  // namespace basin::cli
