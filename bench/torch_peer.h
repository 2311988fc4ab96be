// Runs a PyTorch peer script for a benchmark and reads its one-line JSON answer
// ({"seconds": [...], "images_per_s": x, ...}), so each benchmark's PyTorch line replays the
// peer's own step times as manual iteration times beside basin's line.
#pragma once

#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace basin::bench {

// The number after "key": in the peer's output, or 0 when absent.
inline double peer_number(const std::string& out, const std::string& key) {
  const size_t at = out.find("\"" + key + "\": ");
  return at == std::string::npos ? 0.0 : std::strtod(out.c_str() + at + key.size() + 4, nullptr);
}

// The string after "key": in the peer's output, or "" when absent.
inline std::string peer_string(const std::string& out, const std::string& key) {
  const size_t at = out.find("\"" + key + "\": \"");
  if (at == std::string::npos) return "";
  const size_t from = at + key.size() + 5;
  return out.substr(from, out.find('"', from) - from);
}

// Runs `command` (stderr merged); on success replays its "seconds" as the iterations' times
// and returns its output, else marks the benchmark skipped with `why` and the output's start and
// returns "".
inline std::string run_torch_peer(benchmark::State& state, const std::string& command, const std::string& why) {
  std::string out;
  if (FILE* p = popen((command + " 2>&1").c_str(), "r")) {
    char buf[4096];
    while (fgets(buf, sizeof buf, p) != nullptr) out += buf;
    if (pclose(p) != 0) out = "failed: " + out;
  }
  const size_t open = out.find("\"seconds\": [");
  if (out.rfind("failed", 0) == 0 || open == std::string::npos || peer_number(out, "images_per_s") <= 0) {
    state.SkipWithError((why + out.substr(0, 300)).c_str());
    for (auto _ : state) {
    }
    return "";
  }
  const char* s = out.c_str() + open + 12;
  for (auto _ : state) {
    char* end = nullptr;
    state.SetIterationTime(std::strtod(s, &end));
    s = end + 1;
  }
  return out;
}

}  // namespace basin::bench
