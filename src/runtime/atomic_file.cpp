#include "runtime/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <random>
#include <stdexcept>
#include <string>

namespace heinfer::runtime {
namespace {

std::string reason(int err) { return std::strerror(err); }

}  // namespace

void check_output_path(const std::filesystem::path& path) {
  const std::filesystem::path dir = path.has_parent_path() ? path.parent_path() : std::filesystem::path(".");
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) {
    throw std::runtime_error("cannot write '" + path.string() + "': directory '" + dir.string() + "' does not exist");
  }
  if (::access(dir.c_str(), W_OK | X_OK) != 0) {
    throw std::runtime_error("cannot write '" + path.string() + "': directory '" + dir.string() +
                             "': " + reason(errno));
  }
  if (std::filesystem::is_directory(path, ec)) {
    throw std::runtime_error("cannot write '" + path.string() + "': it is a directory");
  }
}

void write_file_atomic(const std::filesystem::path& path, std::string_view bytes, mode_t mode) {
  std::filesystem::path tmp = path;
  tmp += ".tmp." + std::to_string(::getpid()) + "." + std::to_string(std::random_device{}());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
  if (fd < 0) throw std::runtime_error("cannot create '" + tmp.string() + "': " + reason(errno));
  auto fail = [&](const std::string& what) {
    const int err = errno;
    ::close(fd);
    ::unlink(tmp.c_str());
    throw std::runtime_error(what + ": " + reason(err));
  };
  for (std::size_t done = 0; done < bytes.size();) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) fail("error writing '" + tmp.string() + "'");
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0) fail("cannot flush '" + tmp.string() + "' to disk");
  if (::close(fd) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    throw std::runtime_error("cannot close '" + tmp.string() + "': " + reason(err));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;  // before unlink can overwrite it
    ::unlink(tmp.c_str());
    throw std::runtime_error("cannot rename the temporary file to '" + path.string() + "': " + reason(err));
  }
  // The rename itself reaches the disk with the directory.
  const std::filesystem::path dir = path.has_parent_path() ? path.parent_path() : std::filesystem::path(".");
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

}  // namespace heinfer::runtime
