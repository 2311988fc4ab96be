// Starts local ranks of `basin train` (--nproc) and reports how they ended (rank_launcher.cc).
#pragma once

#include <string>

namespace basin::cli {

// Runs this program again `nproc` times (argv without --nproc and --servers) as ranks 0..nproc-1
// meeting in a file store under `out`, numbered as torchrun numbers `servers` machines of
// nproc / servers ranks each (LOCAL_RANK, LOCAL_WORLD_SIZE); returns 0, or the exit code of the
// first rank that failed.
int launch_ranks(int nproc, int servers, const std::string& out, int argc, char** argv);

// Prints a failure's one line to stderr, or, in a rank that launch_ranks started, hands it to the
// launcher, which prints each distinct line once: every rank finds the same bad flag or diverged
// loss, and N copies of it bury the one line that differs.
void print_failure(const std::string& line);

// In a rank launch_ranks started: this process gets SIGTERM when the launcher dies, so a
// launcher killed by SIGKILL, which it cannot pass on, leaves no ranks training on by themselves
// (into the directory a later --resume would write too). Does nothing in other processes.
void follow_launcher();

}  // namespace basin::cli
