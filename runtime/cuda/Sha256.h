//===- Sha256.h - SHA-256 digests for kernel cache keys ---------*- C++ -*-===//
//
// The on-disk kernel cache names entries by a SHA-256 of everything that can
// change the compiled image, and checksums entry payloads with it. A
// self-contained implementation (FIPS 180-4) keeps the runtime free of an
// OpenSSL dependency; it is not constant-time and is not meant for secrets.
//
//===----------------------------------------------------------------------===//
#ifndef HALO_RUNTIME_CUDA_SHA256_H
#define HALO_RUNTIME_CUDA_SHA256_H

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace halo::cuda {

using Sha256Digest = std::array<uint8_t, 32>;

/// Incremental hasher: update() any number of times, then digest() once.
class Sha256 {
public:
  Sha256();
  void update(const void *data, size_t size);
  void update(std::string_view bytes) { update(bytes.data(), bytes.size()); }
  /// Hashes a length prefix before the bytes, so that a sequence of fields
  /// cannot collide with a different split of the same concatenation.
  void updateField(std::string_view bytes);
  Sha256Digest digest();

private:
  void compress(const uint8_t *block);

  std::array<uint32_t, 8> state_;
  std::array<uint8_t, 64> buffer_{};
  size_t buffered_ = 0;
  uint64_t totalBytes_ = 0;
};

Sha256Digest sha256(std::string_view bytes);
/// Lower-case hexadecimal, 64 characters.
std::string toHex(const Sha256Digest &digest);

} // namespace halo::cuda

#endif // HALO_RUNTIME_CUDA_SHA256_H
