// What a training run writes for people and tools besides its checkpoint: the per-step JSONL log,
// the Chrome trace of one measured step, and the progress line. Internal to exec.
#pragma once

#include <basin/train.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace basin::exec::detail {

using Clock = std::chrono::steady_clock;
double seconds_between(Clock::time_point a, Clock::time_point b);

// One measured interval of a step, on a lane of the trace ("compute", "allreduce", "data").
struct MeasuredSpan {
  std::string name, lane;
  double start_s = 0, end_s = 0;  // from the start of the step
};

// Chrome trace events in the layout basin sim --trace writes (pid 0; tid 0 compute, 1 allreduce,
// plus tid 2 for waiting on data), so a predicted and a measured step open side by side.
std::string measured_trace(const std::vector<MeasuredSpan>& spans, const nlohmann::json& about);

// log.jsonl, one JSON object per line, flushed per line so a killed run keeps what it logged.
class JsonlLog {
 public:
  // Opens `path` for appending. With keep_steps_below >= 0, first rewrites the file without the
  // lines whose "step" is at or after it (the steps a resumed run will redo). An epoch's record
  // ("val", or "epoch" without validation) at that step is kept where `keep_epoch_record_at_step`
  // says that epoch is done: the caller passes false for a checkpoint written before its
  // validation (validated again on resume) and at a partial last epoch's end that the run goes
  // on through (recorded again when whole).
  JsonlLog(const std::filesystem::path& path, long long keep_steps_below, bool keep_epoch_record_at_step = true);
  ~JsonlLog();
  JsonlLog(const JsonlLog&) = delete;
  JsonlLog& operator=(const JsonlLog&) = delete;
  void write(const nlohmann::json& record);
  // The epochs' records ("val" or "epoch") kept from the sessions before this one, in order.
  const std::vector<nlohmann::json>& earlier_epochs() const { return earlier_epochs_; }

 private:
  std::filesystem::path path_;
  std::FILE* file_ = nullptr;
  std::vector<nlohmann::json> earlier_epochs_;
};

// "1:02:03", "4:05", "0:07".
std::string clock_text(double seconds);

// A loss for log.jsonl: JSON has no NaN or Inf, so a non-finite one is written "nan" or "inf".
nlohmann::json loss_for_log(double loss);

// summary.json (basin.train-summary/1): the run's counts, every epoch and the recipe; written
// atomically. read_summary gives it back, or nothing where the file is missing or not one.
void write_summary(const std::filesystem::path& path, const TrainSummary& summary, const nlohmann::json& recipe);
std::optional<TrainSummary> read_summary(const std::filesystem::path& path);

}  // namespace basin::exec::detail
