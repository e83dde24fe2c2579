//===- AtomicFile.cpp - Write a file so readers see all or nothing --------===//
//
// Every failure closes and unlinks the temp file before returning, so a full
// disk or a bad directory leaves the old <path> (if any) exactly as it was.
//
//===----------------------------------------------------------------------===//
#include "runtime/io/AtomicFile.h"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

namespace halo::io {

namespace {
std::string parentDir(const std::string &path) {
  size_t slash = path.find_last_of('/');
  if (slash == std::string::npos)
    return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}
} // namespace

StatusOr<AtomicFileWriter> AtomicFileWriter::create(std::string path,
                                                    std::string hint) {
  std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  if (fd < 0)
    return Status::error(fmt::format(
        "{}: cannot create temp file {}: {}; hint: check that the directory "
        "exists and is writable; {}",
        path, tmp, std::strerror(errno), hint));
  return AtomicFileWriter(std::move(path), std::move(tmp), std::move(hint), fd);
}

AtomicFileWriter::AtomicFileWriter(AtomicFileWriter &&other) noexcept
    : path_(std::move(other.path_)), tmpPath_(std::move(other.tmpPath_)),
      hint_(std::move(other.hint_)), fd_(other.fd_) {
  other.fd_ = -1;
  other.tmpPath_.clear();
}

AtomicFileWriter::~AtomicFileWriter() {
  if (fd_ >= 0)
    ::close(fd_);
  if (!tmpPath_.empty())
    ::unlink(tmpPath_.c_str());
}

Status AtomicFileWriter::fail(const char *what, int err) {
  std::string msg =
      fmt::format("{}: {} {} failed: {}; the existing file (if any) is "
                  "unchanged; hint: check free disk space and permissions; {}",
                  path_, what, tmpPath_, std::strerror(err), hint_);
  if (fd_ >= 0)
    ::close(fd_);
  fd_ = -1;
  ::unlink(tmpPath_.c_str());
  tmpPath_.clear();
  return Status::error(std::move(msg));
}

Status AtomicFileWriter::write(const void *data, size_t size) {
  if (fd_ < 0)
    return Status::error(fmt::format(
        "{}: write after the writer failed or committed; hint: stop writing "
        "after the first error",
        path_));
  const char *p = static_cast<const char *>(data);
  while (size > 0) {
    ssize_t n = ::write(fd_, p, size);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return fail("writing", errno);
    }
    p += n;
    size -= static_cast<size_t>(n);
  }
  return Status::success();
}

Status AtomicFileWriter::commit() {
  if (fd_ < 0)
    return Status::error(fmt::format(
        "{}: commit after the writer failed or committed; hint: commit once, "
        "and only after every write succeeded",
        path_));
  if (::fsync(fd_) != 0)
    return fail("fsync of", errno);
  int fd = fd_;
  fd_ = -1;
  // close can report a deferred write error (e.g. NFS quota): check it.
  if (::close(fd) != 0)
    return fail("closing", errno);
  if (::rename(tmpPath_.c_str(), path_.c_str()) != 0)
    return fail("renaming", errno);
  tmpPath_.clear();
  // Best effort: some file systems refuse fsync on a directory, and the new
  // file is already complete and visible under its final name.
  int dir =
      ::open(parentDir(path_).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir >= 0) {
    ::fsync(dir);
    ::close(dir);
  }
  return Status::success();
}

} // namespace halo::io
