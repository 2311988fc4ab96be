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
