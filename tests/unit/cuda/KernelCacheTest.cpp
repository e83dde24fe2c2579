//===- KernelCacheTest.cpp - On-disk entries, validation, directories -----===//
//
// Entries round-trip; truncated, bit-flipped and foreign (renamed) entries
// are rejected and counted as corrupt; the directory follows HALO_CACHE_DIR,
// then XDG_CACHE_HOME, then HOME.
//
//===----------------------------------------------------------------------===//
#include "runtime/cuda/KernelCache.h"

#include "tests/unit/cuda/TestUtil.h"

#include <gtest/gtest.h>

#include <filesystem>

using namespace halo::cuda;
using halo::cuda::testing::ScopedEnv;
using halo::cuda::testing::TempDir;
using halo::cuda::testing::readFile;
using halo::cuda::testing::writeFile;

namespace {

class KernelCacheTest : public ::testing::Test {
protected:
  void SetUp() override { KernelCache::resetStats(); }

  TempDir dir;
  KernelCache cache{dir.path() + "/nested/cache"};
  Sha256Digest key = sha256("key");
  std::string payload = std::string("\x7f"
                                    "ELF\0payload",
                                    12) +
                        "\xff\x00";
};

TEST_F(KernelCacheTest, StoreThenLookupRoundTrips) {
  EXPECT_FALSE(cache.lookup(key).has_value());
  ASSERT_TRUE(cache.store(key, payload).ok());
  std::optional<std::string> found = cache.lookup(key);
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(*found, payload);
  KernelCacheStats stats = KernelCache::stats();
  EXPECT_EQ(stats.hits, 1u);
  EXPECT_EQ(stats.misses, 1u);
  EXPECT_EQ(stats.corruptEntries, 0u);
  // Only the entry remains: the temporary file was renamed into place.
  int files = 0;
  for (const auto &entry :
       std::filesystem::directory_iterator(cache.directory())) {
    EXPECT_EQ(entry.path().string(), cache.entryPath(key));
    ++files;
  }
  EXPECT_EQ(files, 1);
}

TEST_F(KernelCacheTest, EmptyPayloadRoundTrips) {
  ASSERT_TRUE(cache.store(key, "").ok());
  std::optional<std::string> found = cache.lookup(key);
  ASSERT_TRUE(found.has_value());
  EXPECT_TRUE(found->empty());
}

TEST_F(KernelCacheTest, TruncatedEntryIsCorrupt) {
  ASSERT_TRUE(cache.store(key, payload).ok());
  std::string entry = readFile(cache.entryPath(key));
  for (size_t keep : {size_t(0), size_t(7), size_t(80), entry.size() - 1}) {
    writeFile(cache.entryPath(key), entry.substr(0, keep));
    EXPECT_FALSE(cache.lookup(key).has_value()) << "kept " << keep;
  }
  EXPECT_EQ(KernelCache::stats().corruptEntries, 4u);
  EXPECT_EQ(KernelCache::stats().hits, 0u);
}

TEST_F(KernelCacheTest, FlippedPayloadByteIsCorrupt) {
  ASSERT_TRUE(cache.store(key, payload).ok());
  std::string entry = readFile(cache.entryPath(key));
  entry.back() ^= 1;
  writeFile(cache.entryPath(key), entry);
  EXPECT_FALSE(cache.lookup(key).has_value());
  EXPECT_EQ(KernelCache::stats().corruptEntries, 1u);
}

TEST_F(KernelCacheTest, EntryUnderAnotherKeyIsCorrupt) {
  Sha256Digest other = sha256("other");
  ASSERT_TRUE(cache.store(key, payload).ok());
  std::filesystem::rename(cache.entryPath(key), cache.entryPath(other));
  EXPECT_FALSE(cache.lookup(other).has_value());
  EXPECT_EQ(KernelCache::stats().corruptEntries, 1u);
}

TEST_F(KernelCacheTest, StoreReplacesAnEntry) {
  ASSERT_TRUE(cache.store(key, "old").ok());
  ASSERT_TRUE(cache.store(key, payload).ok());
  EXPECT_EQ(cache.lookup(key).value_or(""), payload);
}

TEST_F(KernelCacheTest, UnwritableDirectoryFailsAndIsCounted) {
  std::string file = dir.path() + "/not-a-directory";
  writeFile(file, "x");
  KernelCache blocked(file + "/cache");
  halo::Status status = blocked.store(key, payload);
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.message().find("kernel cache directory"), std::string::npos)
      << status.message();
  EXPECT_EQ(KernelCache::stats().writeFailures, 1u);
}

TEST(KernelCacheDir, FollowsEnvironmentPrecedence) {
  ScopedEnv halo("HALO_CACHE_DIR", "/tmp/halo-a");
  ScopedEnv xdg("XDG_CACHE_HOME", "/tmp/xdg");
  ScopedEnv home("HOME", "/tmp/home");
  EXPECT_EQ(defaultKernelCacheDir().value(), "/tmp/halo-a");
  {
    ScopedEnv unset("HALO_CACHE_DIR", std::nullopt);
    EXPECT_EQ(defaultKernelCacheDir().value(), "/tmp/xdg/halo");
    ScopedEnv emptyXdg("XDG_CACHE_HOME", "");
    EXPECT_EQ(defaultKernelCacheDir().value(), "/tmp/home/.cache/halo");
    ScopedEnv noHome("HOME", std::nullopt);
    halo::StatusOr<std::string> none = defaultKernelCacheDir();
    ASSERT_FALSE(none.ok());
    EXPECT_NE(none.status().message().find("HALO_CACHE_DIR"),
              std::string::npos);
  }
}

} // namespace
