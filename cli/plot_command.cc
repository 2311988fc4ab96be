// `basin plot RUN`: a training run's log.jsonl drawn as loss.svg (training loss per step, the
// validation loss per epoch beside it) and accuracy.svg (validation top-1 and top-5 per epoch).
// `basin train` draws the same two files into its run directory when it ends.
#include "commands.h"

#include <basin/plot.h>
#include <basin/topology.h>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

namespace basin::cli {
namespace fs = std::filesystem;

std::vector<std::string> plot_training_log(const fs::path& log, const fs::path& dir) {
  const std::string text = topo::read_text_file(log.string(), "a readable log.jsonl of basin train");
  std::istringstream in(text);
  // basin train flushes whole lines, so only a run killed mid-write leaves a last line without
  // its newline; that line is dropped with a note (as --resume drops it), any other bad line is
  // an error.
  const bool torn_tail = !text.empty() && text.back() != '\n';
  plot::Series train{"training loss"}, val{"validation loss", {}, {}, plot::Series::Style::line_and_points};
  plot::Series top1{"top-1", {}, {}, plot::Series::Style::line_and_points},
      top5{"top-5", {}, {}, plot::Series::Style::line_and_points};
  std::string line;
  for (long long number = 1; std::getline(in, line); ++number) {
    if (line.empty()) continue;
    const auto record = nlohmann::json::parse(line, nullptr, false);
    const std::string where = "line " + std::to_string(number);
    if (!record.is_object()) {
      if (torn_tail && in.peek() == std::char_traits<char>::eof()) {
        std::cerr << "basin plot: " << log.string() << ": " << where
                  << " is cut off (the run was stopped while writing it); drawn without it\n";
        break;
      }
      throw topo::InputError(log.string(), where, "one JSON object per line");
    }
    // A misspelt or foreign type would otherwise drop the record from the plot without a word.
    if (record.contains("type") && !(record["type"].is_string() &&
                                     (record["type"] == "step" || record["type"] == "val" ||
                                      record["type"] == "epoch" || record["type"] == "diverged")))
      throw topo::InputError(log.string(), where + "/type",
                             "\"val\", \"epoch\", \"diverged\" or none (a step), got " + record["type"].dump());
    const std::string type = record.value("type", "step");
    // A divergence's loss is the string "nan" or "inf"; an epoch record without validation has no
    // point to draw.
    if (type == "diverged" || type == "epoch") continue;
    auto number_at = [&](const char* key) {
      if (!record.contains(key) || !record[key].is_number())
        throw topo::InputError(log.string(), where + "/" + key, "a number");
      return record[key].get<double>();
    };
    if (type == "step") {
      // A step skipped for an overflowed loss ("nan" or "inf", as the trainer writes it) has no point.
      if (record.contains("loss") && (record["loss"] == "nan" || record["loss"] == "inf")) continue;
      train.x.push_back(number_at("step") + 1), train.y.push_back(number_at("loss"));
    } else if (type == "val") {
      const double step = number_at("step"), epoch = number_at("epoch");
      val.x.push_back(step), val.y.push_back(number_at("loss"));
      top1.x.push_back(epoch), top1.y.push_back(100 * number_at("top1"));
      top5.x.push_back(epoch), top5.y.push_back(100 * number_at("top5"));
    }
  }
  if (train.x.empty()) throw topo::InputError(log.string(), "", "at least one step record");
  std::vector<std::string> written;
  plot::Chart loss{.title = "Loss (" + log.parent_path().filename().string() + ")",
                   .x = {"step"}, .y = {"cross-entropy loss"}, .series = {train}};
  if (!val.x.empty()) loss.series.push_back(val);
  // The directory is made if missing (as `basin train --out` is), and both files are checked
  // before either is written, so a bad --out-dir leaves neither.
  std::error_code made;
  if (!fs::exists(dir) && !fs::create_directories(dir, made) && made)
    throw topo::InputError("--out-dir", "", "a directory that can be made, got " + dir.string() + " (" +
                                                made.message() + ")");
  topo::require_writable((dir / "loss.svg").string());
  if (!top1.x.empty()) topo::require_writable((dir / "accuracy.svg").string());
  written.push_back((dir / "loss.svg").string());
  topo::write_file_atomically(written.back(), plot::to_svg(loss));
  if (!top1.x.empty()) {
    plot::Chart acc{.title = "Validation accuracy (" + log.parent_path().filename().string() + ")",
                    .x = {"epoch"}, .y = {"accuracy (%)"}, .series = {top1, top5}};
    written.push_back((dir / "accuracy.svg").string());
    topo::write_file_atomically(written.back(), plot::to_svg(acc));
  } else if (std::filesystem::exists(dir / "accuracy.svg")) {
    // Not ours to delete, but not this log's either: say so rather than let it pass for current.
    std::cerr << "note: " << (dir / "accuracy.svg").string() << " is not from " << log.string()
              << " (it has no validation records yet); left as it was\n";
  }
  return written;
}

std::function<int()> add_plot_command(CLI::App& app) {
  auto run_dir = std::make_shared<std::string>();
  auto out_dir = std::make_shared<std::string>();
  CLI::App* cmd = app.add_subcommand(
      "plot", "Draw a training run's log as loss.svg and accuracy.svg");
  cmd->add_option("run", *run_dir, "run directory of basin train (or its log.jsonl)")->required();
  cmd->add_option("--out-dir", *out_dir, "where the SVG files go (default: beside the log)");
  return [run_dir, out_dir] {
    fs::path log = *run_dir;
    if (fs::is_directory(log)) log /= "log.jsonl";
    const fs::path dir = out_dir->empty() ? log.parent_path() : fs::path(*out_dir);
    for (const std::string& path : plot_training_log(log, dir.empty() ? "." : dir))
      std::cerr << "basin plot: wrote " << path << "\n";
    return 0;
  };
}

}  // namespace basin::cli
