// The verbs of the `basin` command line. Each verb registers its flags on a CLI11 subcommand
// and runs from a typed options struct; main.cc maps errors to exit codes.
#pragma once

#include <basin/topology.h>

#include <CLI/CLI.hpp>

#include <filesystem>
#include <string>
#include <vector>

namespace basin::cli {

// For flags bound to unsigned integers (seeds): CLI11 would wrap "-1" to 2^64 - 1 silently, and
// its own range check prints the range of a double.
inline CLI::Validator whole_number() {
  return CLI::Validator(
      [](std::string& text) {
        const bool digits = !text.empty() && text.find_first_not_of("0123456789") == std::string::npos;
        return digits ? std::string() : "expected a whole number, 0 or more, got '" + text + "'";
      },
      "UINT");
}

// Registers `basin topo` and returns the function that runs it once flags are parsed.
std::function<int()> add_topo_command(CLI::App& app);
// Registers `basin sim`.
std::function<int()> add_sim_command(CLI::App& app);
// Registers `basin select`.
std::function<int()> add_select_command(CLI::App& app);
// Registers `basin plan`.
std::function<int()> add_plan_command(CLI::App& app);
// Registers `basin data` (synth, load).
std::function<int()> add_data_command(CLI::App& app);
// Registers `basin train`.
std::function<int()> add_train_command(CLI::App& app, int argc, char** argv);  // argv: for --nproc
// The topology's GPUs in rank order, or an InputError naming --cluster that says why a
// topology (a discovered machine without a CUDA driver) has none.
std::vector<topo::Vertex> gpus_of_cluster(const topo::Topology& t);

// Registers `basin plot`.
std::function<int()> add_plot_command(CLI::App& app);
// Registers `basin profile`.
std::function<int()> add_profile_command(CLI::App& app);
// Draws log.jsonl of a run as `dir`/loss.svg and, with validation records, accuracy.svg;
// returns the files written. Throws topo::InputError naming the log, the line and the field.
std::vector<std::string> plot_training_log(const std::filesystem::path& log,
                                           const std::filesystem::path& dir);

}  // namespace basin::cli
