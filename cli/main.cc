// basin: predict, plan and run data-parallel training on GPU clusters.
//
// Exit codes: 0 success, 1 failure while working, 2 bad input (flags, specs, files), 3 training
// diverged (NaN or infinite loss). Errors go to
// stderr with the file, the field and what was expected.
#include "commands.h"
#include "rank_launcher.h"

#include <basin/data.h>
#include <basin/topology.h>

#include <cstdio>
#include <iostream>
#include <regex>
#include <string>

namespace {

// CLI11 says "Could not convert: --batch-per-gpu = 32x"; say what was expected too, from the
// option's declared type.
std::string explain_conversion_error(const CLI::App& app, const CLI::ConversionError& e) {
  static const std::regex shape("Could not convert: (\\S+) = (.*)");
  std::smatch m;
  const std::string what = e.what();
  if (!std::regex_match(what, m, shape)) return what;
  const CLI::Option* option = nullptr;
  for (const CLI::App* sub : app.get_subcommands())
    for (const CLI::App* leaf = sub; leaf && !option;) {
      option = leaf->get_option_no_throw(m[1].str());
      const auto deeper = leaf->get_subcommands();
      leaf = deeper.empty() ? nullptr : deeper.front();
    }
  std::string type = option ? option->get_type_name() : "";
  std::string expected = type;
  if (type == "INT") expected = "a whole number";
  else if (type == "UINT" || type == "UINT:UINT") expected = "a whole number, 0 or more";
  else if (type == "FLOAT") expected = "a number";
  return m[1].str() + ": got \"" + m[2].str() + "\", expected " +
         (expected.empty() ? std::string("a value of the option's type") : expected);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"basin: predict, plan and run data-parallel training on GPU clusters"};
  app.set_version_flag("--version", "basin 0.1.0");
  app.require_subcommand(1);
  std::function<int()> run_topo = basin::cli::add_topo_command(app);
  std::function<int()> run_sim = basin::cli::add_sim_command(app);
  std::function<int()> run_select = basin::cli::add_select_command(app);
  std::function<int()> run_plan = basin::cli::add_plan_command(app);
  std::function<int()> run_data = basin::cli::add_data_command(app);
  std::function<int()> run_train = basin::cli::add_train_command(app, argc, argv);
  std::function<int()> run_plot = basin::cli::add_plot_command(app);
  std::function<int()> run_profile = basin::cli::add_profile_command(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ConversionError& e) {
    std::cerr << "basin: error: " << explain_conversion_error(app, e) << "\n";
    return 2;
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return 2;
  }
  try {
    if (app.got_subcommand("topo")) return run_topo();
    if (app.got_subcommand("sim")) return run_sim();
    if (app.got_subcommand("select")) return run_select();
    if (app.got_subcommand("plan")) return run_plan();
    if (app.got_subcommand("data")) return run_data();
    if (app.got_subcommand("train")) return run_train();
    if (app.got_subcommand("plot")) return run_plot();
    if (app.got_subcommand("profile")) return run_profile();
  } catch (const basin::topo::InputError& e) {
    basin::cli::print_failure(std::string("basin: error: ") + e.what());
    return 2;
  } catch (const basin::data::InputError& e) {
    basin::cli::print_failure(std::string("basin: error: ") + e.what());
    return 2;
  } catch (const std::exception& e) {
    basin::cli::print_failure(std::string("basin: failed: ") + e.what());
    return 1;
  }
  return 0;
}
