//===- Safetensors.h - Checkpoint reader/writer (HF format) -----*- C++ -*-===//
//
// Layout: u64 little-endian header length N, N bytes of JSON mapping tensor
// name -> {dtype, shape, data_offsets: [begin, end)} plus an optional
// "__metadata__" string map, then the data section that the offsets index.
// open() maps the file and validates every entry (known dtype, offsets inside
// the data section, no overlap, end - begin == numel * dtype size) before
// handing out anything, so bytes() never points outside the mapping. Tensor
// bytes need not be aligned: read them with memcpy (toFloat does).
// The writer stores tensors sorted by name, contiguously from offset 0, with
// the header space-padded to a multiple of 8 bytes, atomically (temp +
// fsync + rename).
//
//===----------------------------------------------------------------------===//
#ifndef HALO_RUNTIME_IO_SAFETENSORS_H
#define HALO_RUNTIME_IO_SAFETENSORS_H

#include "halo/runtime/Status.h"
#include "runtime/io/MappedFile.h"

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace halo::io {

enum class DType : uint8_t { F32, BF16, F16, I32, I64, U8, I8, F8_E4M3 };

/// Bytes per element.
uint64_t dtypeSize(DType dtype);
/// The safetensors spelling: "F32", "BF16", ..., "F8_E4M3".
const char *dtypeName(DType dtype);
/// Inverse of dtypeName; nullopt for any other string.
std::optional<DType> parseDType(std::string_view name);

/// bfloat16 is the high half of a float32, so this is exact.
float bf16ToFloat(uint16_t bits);
/// Exact IEEE binary16 -> binary32, subnormals, infinities and NaN payloads
/// included.
float f16ToFloat(uint16_t bits);

using SafetensorsMetadata = std::map<std::string, std::string>;

struct TensorInfo {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape; ///< [] is a scalar with one element.
  uint64_t numel;
  uint64_t offset; ///< From the start of the data section.
  uint64_t bytes;
};

class SafetensorsFile {
public:
  /// Maps and validates `path`; every error names the file and the tensor.
  static StatusOr<SafetensorsFile> open(const std::string &path);

  const std::string &path() const { return file_->path(); }
  /// All tensors, sorted by name.
  const std::vector<TensorInfo> &tensors() const { return tensors_; }
  /// "__metadata__"; empty when the file has none.
  const SafetensorsMetadata &metadata() const { return metadata_; }

  /// Null if there is no tensor `name`.
  const TensorInfo *find(std::string_view name) const;
  /// Like find(), but a missing tensor is an error naming the file.
  StatusOr<const TensorInfo *> get(std::string_view name) const;
  /// The tensor's t.bytes raw little-endian bytes, possibly unaligned.
  const uint8_t *bytes(const TensorInfo &t) const {
    return dataSection_ + t.offset;
  }
  /// Converts an F32, BF16 or F16 tensor to t.numel floats at `out`.
  Status toFloat(const TensorInfo &t, float *out) const;
  /// get(name) then toFloat into a new vector.
  StatusOr<std::vector<float>> toFloat(std::string_view name) const;

private:
  SafetensorsFile() = default;
  std::shared_ptr<const MappedFile> file_;
  const uint8_t *dataSection_ = nullptr;
  std::vector<TensorInfo> tensors_;
  SafetensorsMetadata metadata_;
};

/// One tensor to write; `data` holds `bytes` little-endian bytes and must
/// stay valid during writeSafetensors.
struct TensorBytes {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  const void *data;
  uint64_t bytes;
};

/// Writes a safetensors file loadable by HF safetensors: "<path>.tmp", fsync,
/// rename. On any error (bad entry, missing directory, full disk) an existing
/// `path` is left untouched.
Status writeSafetensors(const std::string &path,
                        const std::vector<TensorBytes> &tensors,
                        const SafetensorsMetadata &metadata);

} // namespace halo::io

#endif // HALO_RUNTIME_IO_SAFETENSORS_H
