//===- MappedFile.h - Read-only memory map of a whole file ------*- C++ -*-===//
//
// The token dataset and the safetensors reader map their file instead of
// reading it, so a multi-GB file costs no heap and opens in O(1). Readers hold
// the mapping through a shared_ptr: views handed out (token spans, tensor
// bytes) keep it alive even after the reader object itself is moved or freed.
// An empty file has no mapping (mmap rejects length 0): data() is null.
// Files are expected not to change while mapped: one truncated underneath a
// reader makes the next access to the lost pages raise SIGBUS.
//
//===----------------------------------------------------------------------===//
#ifndef HALO_RUNTIME_IO_MAPPEDFILE_H
#define HALO_RUNTIME_IO_MAPPEDFILE_H

#include "halo/runtime/Status.h"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace halo::io {

class MappedFile {
public:
  /// Maps `path` read-only; `hint` ends the error message if it cannot.
  static StatusOr<std::shared_ptr<const MappedFile>>
  open(const std::string &path, const std::string &hint);

  MappedFile(const MappedFile &) = delete;
  MappedFile &operator=(const MappedFile &) = delete;
  ~MappedFile();

  const std::string &path() const { return path_; }
  const uint8_t *data() const { return data_; }
  uint64_t size() const { return size_; }

private:
  MappedFile(std::string path, const uint8_t *data, uint64_t size)
      : path_(std::move(path)), data_(data), size_(size) {}

  std::string path_;
  const uint8_t *data_;
  uint64_t size_;
};

} // namespace halo::io

#endif // HALO_RUNTIME_IO_MAPPEDFILE_H
