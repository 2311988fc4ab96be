// Runs the built `basin` executable (BASIN_EXE) with arguments, for the command-line tests of
// every layer: exit code and merged stdout/stderr.
#pragma once

#include "catch.h"

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>

namespace basin::test {

struct Result {
  int exit_code;
  std::string out;  // stdout and stderr merged
};

inline Result run(const std::string& args) {
  std::string cmd = std::string(BASIN_EXE) + " " + args + " 2>&1";
  FILE* pipe = popen(cmd.c_str(), "r");
  REQUIRE(pipe != nullptr);
  std::string out;
  std::array<char, 4096> buf;
  while (size_t n = fread(buf.data(), 1, buf.size(), pipe)) out.append(buf.data(), n);
  int status = pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

// A whole file as text: what a command wrote ("" when there is no such file).
inline std::string read_file(const std::string& path) {
  std::ifstream in(path);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

}  // namespace basin::test
