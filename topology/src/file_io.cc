// Files the user names: read whole with an error that says what is wrong with the path, and
// written atomically (temporary file, fsync, rename) so that a failed write leaves nothing
// partial, or checked for writability first by commands that write several files.
#include <basin/topology.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace basin::topo {

namespace {

// A character device or a pipe (/dev/null, /dev/stdout, a FIFO) is written through: renaming a
// temporary file over it would replace the device node itself (as root, `--out /dev/null` left
// /dev/null a regular file) or fail for want of write access to /dev.
bool is_stream_target(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && (S_ISCHR(st.st_mode) || S_ISFIFO(st.st_mode));
}

// Writes all of `contents` to `fd` (retrying short writes and EINTR); false with errno set if not.
bool write_all(int fd, const std::string& contents) {
  size_t done = 0;
  while (done < contents.size()) {
    ssize_t n = ::write(fd, contents.data() + done, contents.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

void write_stream(const std::string& path, const std::string& contents) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) throw InputError(path, "", std::string("a writable location: ") + std::strerror(errno));
  const bool ok = write_all(fd, contents);
  const int saved_errno = errno;
  ::close(fd);
  if (!ok) throw InputError(path, "", std::string("a writable location: ") + std::strerror(saved_errno));
}

}  // namespace

void write_file_atomically(const std::string& path, const std::string& contents) {
  if (is_stream_target(path)) return write_stream(path, contents);
  std::filesystem::path target(path);
  std::filesystem::path dir = target.parent_path().empty() ? "." : target.parent_path();
  std::string tmp = (dir / ("." + target.filename().string() + ".tmp.XXXXXX")).string();
  int fd = ::mkstemp(tmp.data());
  if (fd < 0)
    throw InputError(path, "", std::string("a writable location: ") + std::strerror(errno));
  const bool ok = write_all(fd, contents) && ::fsync(fd) == 0;
  int saved_errno = errno;
  ::close(fd);
  if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) {
    if (ok) saved_errno = errno;
    ::unlink(tmp.c_str());
    throw InputError(path, "", std::string("a writable location: ") + std::strerror(saved_errno));
  }
  // mkstemp creates 0600; a saved topology is an ordinary document.
  ::chmod(path.c_str(), 0644);
  // The rename itself survives a crash only once the directory is on disk (checkpoints rely on it).
  if (int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

void require_writable(const std::string& path) {
  if (is_stream_target(path)) {
    if (::access(path.c_str(), W_OK) != 0)
      throw InputError(path, "", std::string("a writable location: ") + std::strerror(errno));
    return;
  }
  std::filesystem::path target(path);
  std::filesystem::path dir = target.parent_path().empty() ? "." : target.parent_path();
  std::error_code ec;
  if (std::filesystem::is_directory(target, ec))
    throw InputError(path, "", "a writable location: " + std::string(std::strerror(EISDIR)));
  if (!std::filesystem::is_directory(dir, ec))
    throw InputError(path, "", "a writable location: " + std::string(std::strerror(ENOENT)) +
                                   " (" + dir.string() + " is not a directory)");
  if (::access(dir.c_str(), W_OK | X_OK) != 0)
    throw InputError(path, "", std::string("a writable location: ") + std::strerror(errno));
}


std::string read_text_file(const std::string& path, const std::string& what) {
  std::error_code ec;
  // An ifstream opens a directory and then reads nothing, which reads back as an empty or
  // malformed file: say what it is instead.
  if (std::filesystem::is_directory(path, ec))
    throw InputError(path, "", what + ", but it is a directory");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(path, "", what + ", but it cannot be read: " + std::strerror(errno));
  std::stringstream buffer;
  buffer << in.rdbuf();
  if (in.bad()) throw InputError(path, "", what + ", but reading it failed: " + std::strerror(errno));
  return buffer.str();
}

}  // namespace basin::topo
