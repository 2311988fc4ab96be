// A fresh directory under /tmp for one test, removed with everything in it when the test ends:
// unique per call (mkdtemp), so test cases running at once never share one.
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <stdexcept>
#include <string>
#include <system_error>

namespace basin::test {

struct TempDir {
  std::filesystem::path path;
  explicit TempDir(const std::string& name = "test") {
    std::string pattern = "/tmp/basin-" + name + "-XXXXXX";
    if (!mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp " + pattern + " failed");
    path = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string operator/(const std::string& name) const { return (path / name).string(); }
};

}  // namespace basin::test
