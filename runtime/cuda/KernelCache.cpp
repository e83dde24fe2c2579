//===- KernelCache.cpp - On-disk cache of compiled kernel images ----------===//
//
// Entry layout (integers little-endian):
//   [0, 8)    magic "HALOKC1\n" (bump the digit when the layout changes)
//   [8, 40)   the key, so a renamed or copied file is not served for another
//   [40, 48)  payload length
//   [48, 80)  SHA-256 of the payload
//   [80, ...) payload
// No fsync: an entry torn by a crash fails validation and is recompiled.
//
//===----------------------------------------------------------------------===//
#include "runtime/cuda/KernelCache.h"

#include <fmt/format.h>

#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

namespace halo::cuda {
namespace {

constexpr std::string_view kMagic = "HALOKC1\n";
constexpr size_t kKeyOffset = 8;
constexpr size_t kLengthOffset = kKeyOffset + 32;
constexpr size_t kChecksumOffset = kLengthOffset + 8;
constexpr size_t kHeaderSize = kChecksumOffset + 32;

struct Counters {
  std::atomic<uint64_t> hits{0};
  std::atomic<uint64_t> misses{0};
  std::atomic<uint64_t> corruptEntries{0};
  std::atomic<uint64_t> writeFailures{0};
};

Counters &counters() {
  static Counters instance;
  return instance;
}

const char *nonEmptyEnv(const char *name) {
  const char *value = std::getenv(name);
  return value && *value ? value : nullptr;
}

bool isValidEntry(const std::string &file, const Sha256Digest &key) {
  if (file.size() < kHeaderSize || file.compare(0, kMagic.size(), kMagic) != 0)
    return false;
  if (std::memcmp(file.data() + kKeyOffset, key.data(), key.size()) != 0)
    return false;
  uint64_t length = 0;
  for (int i = 0; i < 8; ++i)
    length |= uint64_t(uint8_t(file[kLengthOffset + i])) << (8 * i);
  if (length != file.size() - kHeaderSize)
    return false;
  Sha256Digest checksum = sha256(std::string_view(file).substr(kHeaderSize));
  return std::memcmp(file.data() + kChecksumOffset, checksum.data(),
                     checksum.size()) == 0;
}

} // namespace

StatusOr<std::string> defaultKernelCacheDir() {
  if (const char *dir = nonEmptyEnv("HALO_CACHE_DIR"))
    return std::string(dir);
  if (const char *dir = nonEmptyEnv("XDG_CACHE_HOME"))
    return std::string(dir) + "/halo";
  if (const char *home = nonEmptyEnv("HOME"))
    return std::string(home) + "/.cache/halo";
  return Status::error("no kernel cache directory: HALO_CACHE_DIR, "
                       "XDG_CACHE_HOME and HOME are all unset; hint: set "
                       "HALO_CACHE_DIR");
}

KernelCache::KernelCache(std::string directory)
    : directory_(std::move(directory)) {}

std::string KernelCache::entryPath(const Sha256Digest &key) const {
  return fmt::format("{}/{}.entry", directory_, toHex(key));
}

std::optional<std::string> KernelCache::lookup(const Sha256Digest &key) const {
  std::ifstream in(entryPath(key), std::ios::binary);
  if (!in) {
    ++counters().misses;
    return std::nullopt;
  }
  std::string file((std::istreambuf_iterator<char>(in)),
                   std::istreambuf_iterator<char>());
  if (in.bad() || !isValidEntry(file, key)) {
    ++counters().corruptEntries;
    ++counters().misses;
    return std::nullopt;
  }
  ++counters().hits;
  return file.substr(kHeaderSize);
}

Status KernelCache::store(const Sha256Digest &key,
                          std::string_view payload) const {
  auto fail = [](std::string message) {
    ++counters().writeFailures;
    return Status::error(std::move(message));
  };
  std::error_code error;
  std::filesystem::create_directories(directory_, error);
  if (error)
    return fail(fmt::format("cannot create kernel cache directory {}: {}",
                            directory_, error.message()));

  std::string header(kMagic);
  header.append(reinterpret_cast<const char *>(key.data()), key.size());
  for (int i = 0; i < 8; ++i)
    header.push_back(char(uint64_t(payload.size()) >> (8 * i)));
  Sha256Digest checksum = sha256(payload);
  header.append(reinterpret_cast<const char *>(checksum.data()),
                checksum.size());

  // Unique per process and call, so concurrent writers never share a file.
  static std::atomic<uint64_t> sequence{0};
  std::string path = entryPath(key);
  std::string temporary =
      fmt::format("{}.tmp.{}.{}", path, getpid(), sequence++);
  std::FILE *out = std::fopen(temporary.c_str(), "wb");
  if (!out)
    return fail(fmt::format("cannot write kernel cache entry {}: {}", temporary,
                            std::strerror(errno)));
  bool written =
      std::fwrite(header.data(), 1, header.size(), out) == header.size() &&
      std::fwrite(payload.data(), 1, payload.size(), out) == payload.size();
  int savedErrno = errno;
  if (std::fclose(out) != 0 && written) {
    written = false;
    savedErrno = errno;
  }
  if (!written || std::rename(temporary.c_str(), path.c_str()) != 0) {
    if (written)
      savedErrno = errno;
    std::remove(temporary.c_str());
    return fail(fmt::format("cannot write kernel cache entry {}: {}", path,
                            std::strerror(savedErrno)));
  }
  return Status::success();
}

KernelCacheStats KernelCache::stats() {
  KernelCacheStats stats;
  stats.hits = counters().hits;
  stats.misses = counters().misses;
  stats.corruptEntries = counters().corruptEntries;
  stats.writeFailures = counters().writeFailures;
  return stats;
}

void KernelCache::resetStats() {
  counters().hits = 0;
  counters().misses = 0;
  counters().corruptEntries = 0;
  counters().writeFailures = 0;
}

} // namespace halo::cuda
