// `basin train --nproc N`: starts N local ranks of this program, the way torchrun does, and
// watches them. Kept apart from the train verb because it is process management, not training:
// environment for each rank, the file-store rendezvous under the run directory, and what to do
// when one rank fails (name it and how it ended, say which others were stopped or stuck, stop
// them, and return the first failure's exit code), printing each distinct failure once.
#include "rank_launcher.h"

#include <spawn.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <vector>

extern "C" char** environ;

namespace basin::cli {
namespace {

// What a rank still running was doing when another failed, from /proc/<pid>/stat's state letter:
// "stopped" or "traced" explains a hang that no error message can; running and sleeping ranks
// say nothing (they are the ones waiting on the others).
std::string process_state(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return "";
  const auto close = line.rfind(')');  // the command name may contain spaces and parentheses
  if (close == std::string::npos || close + 2 >= line.size()) return "";
  switch (line[close + 2]) {
    case 'T': return "stopped (process state T: a SIGSTOP, or a terminal's suspend)";
    case 't': return "stopped by a debugger (process state t)";
    case 'D': return "in an uninterruptible wait (process state D: disk or network file system)";
    case 'Z': return "already dead (process state Z)";
    default: return "";
  }
}

// Where a launched rank leaves its failure line for the launcher (print_failure).
constexpr const char* kFailuresVariable = "BASIN_LAUNCHER_FAILURES";

std::filesystem::path failure_file(const std::string& directory, const std::string& rank) {
  return std::filesystem::path(directory) / ("rank" + rank + ".failure");
}

// `out` absolute and normal, without the trailing separator that would make parent_path() itself.
std::filesystem::path without_trailing_slash(const std::filesystem::path& out) {
  std::filesystem::path p = std::filesystem::absolute(out).lexically_normal();
  return p.has_filename() ? p : p.parent_path();
}

// The outermost directory on the way to `out` that does not exist yet (empty when `out` exists):
// what the launcher creates for the rendezvous, and removes again when no rank wrote anything.
std::filesystem::path first_missing(const std::filesystem::path& out) {
  std::filesystem::path missing;
  for (std::filesystem::path p = without_trailing_slash(out);
       !p.empty() && !std::filesystem::exists(p); p = p.parent_path()) {
    missing = p;
    if (p == p.parent_path()) break;
  }
  return missing;
}

// SIGINT or SIGTERM to the launcher: its ranks are stopped and its rendezvous removed, as when a
// rank fails, rather than left in the run directory by a launcher that died at once.
volatile std::sig_atomic_t stop_signal = 0;
extern "C" void note_stop_signal(int signal) { stop_signal = signal; }

}  // namespace

void print_failure(const std::string& line) {
  const char* directory = std::getenv(kFailuresVariable);
  const char* rank = std::getenv("RANK");
  if (directory && *directory && rank && *rank) {
    // Whole or not at all: the launcher may read it while this rank is still on its way out.
    const std::filesystem::path path = failure_file(directory, rank), part = path.string() + ".part";
    bool written = false;
    {
      std::ofstream file(part);
      written = static_cast<bool>(file << line << "\n") && static_cast<bool>(file.flush());
    }
    std::error_code ec;
    if (written) std::filesystem::rename(part, path, ec);
    if (written && !ec) return;
    std::filesystem::remove(part, ec);
  }
  std::cerr << line << "\n";  // not launched here, or the launcher's directory is gone
}

void follow_launcher() {
  const char* launcher = std::getenv("BASIN_RUN_ID");  // launch_ranks' pid, as it set it
  if (!launcher || !std::getenv(kFailuresVariable)) return;
  ::prctl(PR_SET_PDEATHSIG, SIGTERM);
  // A launcher that died before the line above left this rank to another parent.
  if (std::to_string(::getppid()) != launcher) ::raise(SIGTERM);
}

// `--nproc N`: this program again, N times, as ranks 0..N-1 meeting in a file store under the run
// directory (as torchrun starts ranks). Waits for all; if one fails, the others are stopped
// (they would otherwise wait out the communication timeout) and the first failure's code is
// returned, with every rank's fate printed.
int launch_ranks(int nproc, int servers, const std::string& out, int argc, char** argv) {
  const int per_server = nproc / servers;
  const std::string rendezvous = out + "/.rendezvous-" + std::to_string(::getpid());
  const std::filesystem::path made = first_missing(out);
  // A launcher of the same pid before (a container's, killed) may have left its store here.
  std::filesystem::remove_all(rendezvous);
  std::filesystem::create_directories(rendezvous);
  std::vector<std::string> args;
  for (int i = 0; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--nproc" || a == "--servers") { ++i; continue; }
    if (a.starts_with("--nproc=") || a.starts_with("--servers=")) continue;
    args.push_back(a);
  }
  std::vector<pid_t> pids;
  for (int r = 0; r < nproc; ++r) {
    std::vector<std::string> env;
    for (char** e = environ; *e; ++e) {
      const std::string kv = *e;
      if (kv.starts_with("RANK=") || kv.starts_with("WORLD_SIZE=") || kv.starts_with("LOCAL_RANK=") ||
          kv.starts_with("LOCAL_WORLD_SIZE=") || kv.starts_with("BASIN_RANKS_HERE=") ||
          kv.starts_with("BASIN_RENDEZVOUS_DIR=") || kv.starts_with("BASIN_RUN_ID=") ||
          kv.starts_with(std::string(kFailuresVariable) + "="))
        continue;
      env.push_back(kv);
    }
    env.push_back("RANK=" + std::to_string(r));
    env.push_back("LOCAL_RANK=" + std::to_string(r % per_server));
    env.push_back("WORLD_SIZE=" + std::to_string(nproc));
    env.push_back("LOCAL_WORLD_SIZE=" + std::to_string(per_server));  // as torchrun says on `servers` machines
    // Every rank is on this machine, whatever --servers numbers: their default compute threads
    // share its cores (train_gpu.cc, make_backend).
    env.push_back("BASIN_RANKS_HERE=" + std::to_string(nproc));
    env.push_back("BASIN_RENDEZVOUS_DIR=" + rendezvous);
    env.push_back("BASIN_RUN_ID=" + std::to_string(::getpid()));
    env.push_back(std::string(kFailuresVariable) + "=" + rendezvous);
    std::vector<char*> cargs, cenv;
    for (auto& a : args) cargs.push_back(a.data());
    cargs.push_back(nullptr);
    for (auto& e : env) cenv.push_back(e.data());
    cenv.push_back(nullptr);
    pid_t pid = 0;
    if (posix_spawn(&pid, "/proc/self/exe", nullptr, nullptr, cargs.data(), cenv.data()) != 0)
      throw std::runtime_error("--nproc: cannot start rank " + std::to_string(r) + ": " +
                               std::strerror(errno));
    pids.push_back(pid);
  }
  struct sigaction on_stop {}, was_int {}, was_term {};
  on_stop.sa_handler = note_stop_signal;
  sigemptyset(&on_stop.sa_mask);
  ::sigaction(SIGINT, &on_stop, &was_int);
  ::sigaction(SIGTERM, &on_stop, &was_term);
  int first_failure = 0;
  bool stopping = false;
  std::vector<int> codes(nproc, -1);
  // Each distinct failure line once: the first failed rank's as it wrote it, any other with its
  // rank. Read when a rank exits, and while ranks run (a rank can hang on its way out, in NCCL's
  // teardown or its loaders', while the others wait on it).
  std::set<std::string> printed;
  auto print_rank_failure = [&](int r, bool as_written) {
    std::ifstream file(failure_file(rendezvous, std::to_string(r)));
    if (!file) return;
    std::stringstream text;
    text << file.rdbuf();
    std::string line = text.str();
    while (!line.empty() && line.back() == '\n') line.pop_back();
    if (line.empty() || !printed.insert(line).second) return;
    if (as_written) std::cerr << line << "\n";
    else std::cerr << "basin: rank " << r << ": " << (line.starts_with("basin: ") ? line.substr(7) : line) << "\n";
  };
  int polls = 0;
  // After the first failure the others get SIGTERM (and SIGCONT, which a stopped rank needs to
  // act on it); whatever is left after the grace period is killed.
  auto kill_at = std::chrono::steady_clock::time_point::max();
  for (int left = nproc; left > 0;) {
    // Checked first: a Ctrl-C reaches the ranks too, whose deaths are then the interrupt's.
    if (stop_signal != 0 && !stopping) {
      stopping = true;
      if (first_failure == 0) first_failure = 128 + stop_signal;  // a rank's failure stays the first
      std::cerr << "basin: " << strsignal(stop_signal) << ": stopping the ranks; the run resumes from its last "
                << "checkpoint with --resume\n";
      for (int q = 0; q < nproc; ++q)
        if (codes[q] < 0) ::kill(pids[q], SIGTERM), ::kill(pids[q], SIGCONT);
      kill_at = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    }
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid < 0) break;
    if (pid == 0) {
      if (++polls % 25 == 0)  // about every half second
        for (int q = 0; q < nproc; ++q)
          if (codes[q] < 0) print_rank_failure(q, false);
      if (std::chrono::steady_clock::now() >= kill_at) {
        for (int q = 0; q < nproc; ++q)
          if (codes[q] < 0) ::kill(pids[q], SIGKILL);
        kill_at = std::chrono::steady_clock::time_point::max();
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      continue;
    }
    const int r = static_cast<int>(std::find(pids.begin(), pids.end(), pid) - pids.begin());
    if (r >= nproc) continue;
    --left;
    const int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    codes[r] = code;
    if (code != 0) print_rank_failure(r, first_failure == 0 && !stopping);
    if (code != 0 && first_failure == 0 && !stopping) {
      first_failure = code;
      std::cerr << "basin: rank " << r << " "
                << (WIFEXITED(status) ? "exited with code " + std::to_string(code)
                                      : std::string("was killed by signal ") + strsignal(WTERMSIG(status)))
                << "; stopping the other ranks\n";
      for (int q = 0; q < nproc; ++q) {
        if (codes[q] >= 0) continue;
        if (const std::string state = process_state(pids[q]); !state.empty())
          std::cerr << "basin: rank " << q << " (pid " << pids[q] << ") was " << state << "\n";
        ::kill(pids[q], SIGTERM);
        ::kill(pids[q], SIGCONT);
      }
      kill_at = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    }
  }
  ::sigaction(SIGINT, &was_int, nullptr);
  ::sigaction(SIGTERM, &was_term, nullptr);
  std::filesystem::remove_all(rendezvous);
  // A run refused by its ranks (a bad batch, no checkpoint to resume) leaves nothing behind: the
  // directories made for it go again, innermost first, each only while empty (remove() takes no
  // directory that holds anything, a file of the run or another run's rendezvous).
  if (!made.empty()) {
    std::error_code kept;
    for (std::filesystem::path p = without_trailing_slash(out);
         std::filesystem::remove(p, kept) && p != made; p = p.parent_path()) {
    }
  }
  return first_failure;
}

}  // namespace basin::cli
