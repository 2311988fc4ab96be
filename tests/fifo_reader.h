// A FIFO in a temporary directory with its read end open, for tests of writers that must write
// through pipes and devices (/dev/null, /dev/stdout) rather than rename a temporary file over them
// (as root that replaced /dev/null itself). Opened non-blocking, so a writer can open the other
// end while the test thread waits in the writer; small contents fit the pipe's buffer.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <stdexcept>
#include <string>

#include "temp_dir.h"

namespace basin::test {

struct FifoReader {
  TempDir dir{"fifo"};
  std::string path = dir / "pipe";
  int fd = -1;
  FifoReader() {
    if (::mkfifo(path.c_str(), 0600) != 0) throw std::runtime_error("mkfifo " + path + " failed");
    fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK);
    if (fd < 0) throw std::runtime_error("open " + path + " failed");
  }
  ~FifoReader() { ::close(fd); }
  FifoReader(const FifoReader&) = delete;
  FifoReader& operator=(const FifoReader&) = delete;
  // What the writer left in the pipe.
  std::string drain() const {
    std::string text;
    char buffer[4096];
    for (ssize_t n; (n = ::read(fd, buffer, sizeof buffer)) > 0;) text.append(buffer, static_cast<size_t>(n));
    return text;
  }
  bool still_a_fifo() const {
    struct stat st {};
    return ::lstat(path.c_str(), &st) == 0 && S_ISFIFO(st.st_mode);
  }
};

}  // namespace basin::test
