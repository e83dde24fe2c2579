//===- AtomicFile.h - Atomic (temp + rename) file writes --------*- C++ -*-===//
//
// Bytes go to "<path>.tmp" in the target's directory; commit() fsyncs it and
// renames it over <path>, which POSIX makes atomic within one file system.
// Until commit() succeeds an existing <path> is never touched, and a writer
// destroyed without commit() (any error path) removes its temp file. A fixed
// temp name means two concurrent writers of one path clash; halo writes each
// path from one process only.
//
//===----------------------------------------------------------------------===//
#ifndef HALO_RUNTIME_IO_ATOMICFILE_H
#define HALO_RUNTIME_IO_ATOMICFILE_H

#include "halo/runtime/Status.h"

#include <cstddef>
#include <string>

namespace halo::io {

class AtomicFileWriter {
public:
  /// Creates "<path>.tmp"; `hint` ends every error message of this writer.
  static StatusOr<AtomicFileWriter> create(std::string path, std::string hint);

  AtomicFileWriter(AtomicFileWriter &&other) noexcept;
  AtomicFileWriter &operator=(AtomicFileWriter &&) = delete;
  AtomicFileWriter(const AtomicFileWriter &) = delete;
  AtomicFileWriter &operator=(const AtomicFileWriter &) = delete;
  ~AtomicFileWriter();

  /// Appends all `size` bytes (retries short writes and EINTR).
  Status write(const void *data, size_t size);
  /// fsync, close, rename over the target, then fsync the directory so the
  /// rename itself survives a crash.
  Status commit();

private:
  AtomicFileWriter(std::string path, std::string tmpPath, std::string hint,
                   int fd)
      : path_(std::move(path)), tmpPath_(std::move(tmpPath)),
        hint_(std::move(hint)), fd_(fd) {}
  Status fail(const char *what, int err);

  std::string path_;
  std::string tmpPath_;
  std::string hint_;
  int fd_; // -1 once closed; the temp file exists while tmpPath_ is non-empty
};

} // namespace halo::io

#endif // HALO_RUNTIME_IO_ATOMICFILE_H
