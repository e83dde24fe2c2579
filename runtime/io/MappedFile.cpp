//===- MappedFile.cpp - Read-only memory map of a whole file --------------===//
//
// open + fstat + mmap(PROT_READ, MAP_PRIVATE); the descriptor is closed right
// away because the mapping stays valid without it. Errors carry strerror.
//
//===----------------------------------------------------------------------===//
#include "runtime/io/MappedFile.h"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace halo::io {

StatusOr<std::shared_ptr<const MappedFile>>
MappedFile::open(const std::string &path, const std::string &hint) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return Status::error(fmt::format("{}: cannot open: {}; hint: {}", path,
                                     std::strerror(errno), hint));
  struct stat st;
  bool statOk = ::fstat(fd, &st) == 0;
  if (!statOk || !S_ISREG(st.st_mode)) {
    std::string why = statOk ? "not a regular file" : std::strerror(errno);
    ::close(fd);
    return Status::error(
        fmt::format("{}: cannot read: {}; hint: {}", path, why, hint));
  }
  uint64_t size = static_cast<uint64_t>(st.st_size);
  const uint8_t *data = nullptr;
  if (size > 0) {
    void *p = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      int err = errno;
      ::close(fd);
      return Status::error(fmt::format("{}: cannot mmap {} bytes: {}; hint: {}",
                                       path, size, std::strerror(err), hint));
    }
    data = static_cast<const uint8_t *>(p);
  }
  ::close(fd);
  return std::shared_ptr<const MappedFile>(new MappedFile(path, data, size));
}

MappedFile::~MappedFile() {
  if (data_)
    ::munmap(const_cast<uint8_t *>(data_), size_);
}

} // namespace halo::io
