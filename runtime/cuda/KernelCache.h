//===- KernelCache.h - On-disk cache of compiled kernel images --*- C++ -*-===//
//
// Entries live in HALO_CACHE_DIR, else $XDG_CACHE_HOME/halo, else
// $HOME/.cache/halo, one file per key: <64 hex digits of the key>.entry.
// An entry is a header (magic, the key, payload length, SHA-256 of the
// payload) followed by the payload; a short, truncated or foreign file is
// reported as corrupt and never trusted. Writes go to a temporary file that
// is renamed into place, so concurrent processes see whole entries or none.
// The cache is safe to delete at any time.
//
//===----------------------------------------------------------------------===//
#ifndef HALO_RUNTIME_CUDA_KERNELCACHE_H
#define HALO_RUNTIME_CUDA_KERNELCACHE_H

#include "halo/runtime/Status.h"
#include "runtime/cuda/Sha256.h"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace halo::cuda {

/// Process-wide counters over all KernelCache instances.
struct KernelCacheStats {
  uint64_t hits = 0;
  /// Lookups that found no usable entry, corrupt ones included.
  uint64_t misses = 0;
  uint64_t corruptEntries = 0;
  uint64_t writeFailures = 0;
};

/// The cache directory from the environment (see the file comment); an error
/// only when neither HALO_CACHE_DIR, XDG_CACHE_HOME nor HOME is set.
StatusOr<std::string> defaultKernelCacheDir();

class KernelCache {
public:
  explicit KernelCache(std::string directory);

  const std::string &directory() const { return directory_; }
  std::string entryPath(const Sha256Digest &key) const;

  /// The payload stored under `key`, or nullopt when there is none or the
  /// entry fails validation.
  std::optional<std::string> lookup(const Sha256Digest &key) const;
  /// Atomically writes (or replaces) the entry for `key`, creating the
  /// directory if needed.
  Status store(const Sha256Digest &key, std::string_view payload) const;

  static KernelCacheStats stats();
  static void resetStats();

private:
  std::string directory_;
};

} // namespace halo::cuda

#endif // HALO_RUNTIME_CUDA_KERNELCACHE_H
