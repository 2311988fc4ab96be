// Reading and writing rules files. Writing goes through a temporary file and a rename so that a
// full disk or a crash never leaves NCCL a half-written rules file. (topology/ has the same
// helper; the tuner keeps its own because the plugin must not pull in topology's libraries.)
#include <basin/tuner.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

namespace basin::tuner {
namespace {

std::string read_whole_file(const std::string& path) {
  auto unreadable = [&path](int error) {
    return InputError(path, "", std::string("a readable file: ") + std::strerror(error));
  };
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw unreadable(errno);
  std::string text;
  char buffer[1 << 14];
  for (;;) {
    ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {  // a directory fails here, with EISDIR
      int error = errno;
      ::close(fd);
      throw unreadable(error);
    }
    if (n == 0) break;
    text.append(buffer, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return text;
}

// A character device or a pipe (/dev/null, /dev/stdout) is written through: a rename over it
// would replace the device node itself when run as root.
bool is_stream_target(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && (S_ISCHR(st.st_mode) || S_ISFIFO(st.st_mode));
}

void write_file_atomically(const std::string& path, const std::string& contents) {
  const bool stream = is_stream_target(path);
  std::filesystem::path target(path);
  std::filesystem::path dir = target.parent_path().empty() ? "." : target.parent_path();
  std::string tmp = (dir / ("." + target.filename().string() + ".tmp.XXXXXX")).string();
  int fd = stream ? ::open(path.c_str(), O_WRONLY | O_CLOEXEC) : ::mkstemp(tmp.data());
  if (fd < 0)
    throw InputError(path, "", std::string("a writable location: ") + std::strerror(errno));
  std::size_t done = 0;
  while (done < contents.size()) {
    ssize_t n = ::write(fd, contents.data() + done, contents.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    done += static_cast<std::size_t>(n);
  }
  int saved_errno = errno;
  bool ok = done == contents.size() && (stream || ::fsync(fd) == 0);
  if (!ok) saved_errno = errno;
  ::close(fd);
  if (stream) {
    if (!ok) throw InputError(path, "", std::string("a writable location: ") + std::strerror(saved_errno));
    return;
  }
  if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) {
    if (ok) saved_errno = errno;
    ::unlink(tmp.c_str());
    throw InputError(path, "", std::string("a writable location: ") + std::strerror(saved_errno));
  }
  // mkstemp creates 0600; a rules file is read by every rank's NCCL, maybe as another user.
  ::chmod(path.c_str(), 0644);
}

}  // namespace

Selection load_rules_file(const std::string& path) {
  const std::string text = read_whole_file(path);
  if (detect_format(text) == FileFormat::selection_json) return parse_selection_json(text, path);
  return Selection{.source = "", .rules = parse_nccl_conf(text, path)};
}

void save_selection_json(const Selection& selection, const std::string& path) {
  write_file_atomically(path, format_selection_json(selection));
}

void save_nccl_conf(const std::vector<Rule>& rules, const std::string& path) {
  std::string text;
  try {
    text = format_nccl_conf(rules);
  } catch (const InputError& e) {
    throw InputError(path, e.where, e.expected);
  }
  write_file_atomically(path, text);
}

}  // namespace basin::tuner
