// The run's log, trace and time formatting (see train_log.h).
#include "train_log.h"

#include <basin/topology.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <stdexcept>

namespace basin::exec::detail {

double seconds_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

std::string measured_trace(const std::vector<MeasuredSpan>& spans, const nlohmann::json& about) {
  nlohmann::json events = nlohmann::json::array();
  const char* lanes[] = {"compute", "allreduce", "data"};
  for (int tid = 0; tid < 3; ++tid)
    events.push_back({{"name", "thread_name"}, {"ph", "M"}, {"pid", 0}, {"tid", tid},
                      {"args", {{"name", lanes[tid]}}}});
  for (const MeasuredSpan& s : spans) {
    const int tid = s.lane == "compute" ? 0 : s.lane == "allreduce" ? 1 : 2;
    events.push_back({{"name", s.name}, {"cat", s.lane}, {"ph", "X"}, {"pid", 0}, {"tid", tid},
                      {"ts", s.start_s * 1e6}, {"dur", (s.end_s - s.start_s) * 1e6}});
  }
  return nlohmann::json{{"traceEvents", events}, {"displayTimeUnit", "ms"}, {"otherData", about}}
             .dump(1) +
         "\n";
}

JsonlLog::JsonlLog(const std::filesystem::path& path, long long keep_steps_below, bool keep_epoch_record_at_step)
    : path_(path) {
  if (keep_steps_below >= 0 && std::filesystem::exists(path)) {
    std::ifstream in(path);
    std::string line, kept;
    while (std::getline(in, line)) {
      if (line.empty()) continue;
      auto record = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
      // A torn last line (the run was killed mid-write) is dropped with the redone steps.
      if (record.is_discarded() || !record.contains("step")) continue;
      const std::string type = record.value("type", "");
      const bool epoch_record = type == "val" || type == "epoch";
      const long long step = record["step"].is_number_integer() ? record["step"].get<long long>() : keep_steps_below + 1;
      if (step > keep_steps_below || (step == keep_steps_below && !(epoch_record && keep_epoch_record_at_step)))
        continue;
      if (epoch_record) earlier_epochs_.push_back(record);
      kept += line + "\n";
    }
    topo::write_file_atomically(path.string(), kept);
  }
  file_ = std::fopen(path.c_str(), keep_steps_below >= 0 ? "a" : "w");
  if (!file_)
    throw std::runtime_error(path.string() + ": cannot open the log: " + std::strerror(errno));
}

JsonlLog::~JsonlLog() {
  if (file_) std::fclose(file_);
}

void JsonlLog::write(const nlohmann::json& record) {
  const std::string line = record.dump() + "\n";
  if (std::fwrite(line.data(), 1, line.size(), file_) != line.size() || std::fflush(file_) != 0)
    throw std::runtime_error(path_.string() + ": cannot write the log: " + std::strerror(errno));
}

nlohmann::json loss_for_log(double loss) {
  if (std::isfinite(loss)) return loss;
  return std::isnan(loss) ? "nan" : "inf";
}

void write_summary(const std::filesystem::path& path, const TrainSummary& summary, const nlohmann::json& recipe) {
  auto number_or_null = [](double x) { return std::isfinite(x) ? nlohmann::json(x) : nlohmann::json(); };
  nlohmann::json epochs = nlohmann::json::array();
  for (const EpochSummary& e : summary.epochs)
    epochs.push_back({{"epoch", e.epoch + 1}, {"train_loss", number_or_null(e.train_loss)},
                      {"val_loss", number_or_null(e.val_loss)}, {"top1", number_or_null(e.top1)},
                      {"top5", number_or_null(e.top5)}, {"images_per_s", number_or_null(e.images_per_s)}});
  topo::write_file_atomically(
      path.string(), nlohmann::json{{"format", "basin.train-summary/1"}, {"steps", summary.steps},
                                    {"total_steps", summary.total_steps}, {"finished", summary.finished},
                                    {"skipped_files", summary.skipped_files},
                                    {"skipped_steps", summary.skipped_steps}, {"seconds", summary.seconds},
                                    {"epochs", epochs}, {"recipe", recipe}}
                         .dump(1) +
                         "\n");
}

std::optional<TrainSummary> read_summary(const std::filesystem::path& path) {
  try {
    const auto done = nlohmann::json::parse(topo::read_text_file(path.string(), "a run's summary.json"));
    TrainSummary s;
    s.steps = done.at("steps").get<long long>();
    s.total_steps = done.at("total_steps").get<long long>();
    s.finished = done.at("finished").get<bool>();
    s.skipped_files = done.at("skipped_files").get<std::int64_t>();
    s.skipped_steps = done.at("skipped_steps").get<long long>();
    s.seconds = done.at("seconds").get<double>();
    for (const auto& e : done.at("epochs")) {
      auto number = [&](const char* key) { return e.at(key).is_number() ? e.at(key).get<double>() : NAN; };
      s.epochs.push_back({.epoch = e.at("epoch").get<long long>() - 1, .train_loss = number("train_loss"),
                          .val_loss = number("val_loss"), .top1 = number("top1"), .top5 = number("top5"),
                          .images_per_s = number("images_per_s")});
    }
    return s;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

std::string clock_text(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const long long s = std::llround(seconds);
  char buf[32];
  if (s >= 3600)
    std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", s / 3600, s / 60 % 60, s % 60);
  else
    std::snprintf(buf, sizeof buf, "%lld:%02lld", s / 60, s % 60);
  return buf;
}

}  // namespace basin::exec::detail
