//===- GemmTuneCacheTest.cpp - Persisted GEMM tuning choices --------------===//
//
// Runs without a GPU: key building, the record format, the on-disk cache
// (round trip and rejection of corrupt or foreign entries) and the
// HALO_GEMM_AUTOTUNE setting.
//
//===----------------------------------------------------------------------===//
#include "runtime/cuda/blas/GemmTuneCache.h"
#include "runtime/cuda/KernelCache.h"
#include "runtime/cuda/Sha256.h"

#include "tests/unit/cuda/TestUtil.h"

#include <gtest/gtest.h>

#include <functional>

using namespace halo::cuda;
using halo::cuda::testing::readFile;
using halo::cuda::testing::writeFile;

namespace {

bool contains(const std::string &text, const std::string &part) {
  return text.find(part) != std::string::npos;
}

GemmTuneKey sampleKey() {
  GemmTuneKey k;
  k.deviceName = "NVIDIA H100 80GB HBM3";
  k.ccMajor = 9;
  k.ccMinor = 0;
  k.smCount = 132;
  k.ltVersion = 130100;
  k.desc = GemmDesc::quantized(GemmType::FP8E4M3, 8192, 4096, 14336);
  k.plan = "native scalar";
  k.workspaceBytes = size_t(32) << 20;
  return k;
}

GemmTuneRecord sampleRecord() {
  GemmTuneRecord r;
  r.key = gemmTuneKeyText(sampleKey());
  r.algo = {66, 20, 15, 1, 0, 1, 0, 0, 3};
  r.candidate = 3;
  r.candidates = 12;
  r.ms = 0.712345;
  r.heuristicMs = 0.731;
  return r;
}

TEST(GemmTuneCache, KeyNamesEveryField) {
  GemmTuneKey base = sampleKey();
  std::string text = gemmTuneKeyText(base);
  for (const char *part :
       {"NVIDIA H100 80GB HBM3", "sm_90", "sms=132", "cublasLt=130100",
        "fp8e4m3xfp8e4m3->bf16", "M=8192 N=4096 K=14336", "transB=1",
        "scales=tensor/tensor", "plan=native scalar", "align=256/256/256",
        "workspace=33554432"})
    EXPECT_TRUE(contains(text, part)) << part << " not in " << text;
  EXPECT_EQ(text.find('\n'), std::string::npos);

  // Every field the candidate list depends on changes the key.
  std::vector<std::function<void(GemmTuneKey &)>> changes = {
      [](GemmTuneKey &k) { k.deviceName = "NVIDIA H200"; },
      [](GemmTuneKey &k) { k.ccMinor = 1; },
      [](GemmTuneKey &k) { k.smCount = 66; },
      [](GemmTuneKey &k) { k.ltVersion = 130200; },
      [](GemmTuneKey &k) { k.desc.M = 4096; },
      [](GemmTuneKey &k) { k.desc.N = 1024; },
      [](GemmTuneKey &k) { k.desc.K = 4096; },
      [](GemmTuneKey &k) { k.desc.transA = true; },
      [](GemmTuneKey &k) { k.desc.transB = false; },
      [](GemmTuneKey &k) { k.desc.aType = k.desc.bType = GemmType::INT8; },
      [](GemmTuneKey &k) { k.desc.outType = GemmType::FP32; },
      [](GemmTuneKey &k) { k.desc.scaleA = ScaleMode::PerRow; },
      [](GemmTuneKey &k) { k.desc.scaleB = ScaleMode::None; },
      [](GemmTuneKey &k) { k.desc.accumulate = true; },
      [](GemmTuneKey &k) { k.desc.fastAccum = true; },
      [](GemmTuneKey &k) { k.plan = "epilogue epilogue"; },
      [](GemmTuneKey &k) { k.alignA = 16; },
      [](GemmTuneKey &k) { k.alignB = 16; },
      [](GemmTuneKey &k) { k.alignC = 16; },
      [](GemmTuneKey &k) { k.workspaceBytes = 0; },
  };
  for (size_t i = 0; i < changes.size(); ++i) {
    GemmTuneKey changed = base;
    changes[i](changed);
    EXPECT_NE(gemmTuneKeyText(changed), text) << "change #" << i;
  }
}

TEST(GemmTuneCache, RecordRoundTrip) {
  GemmTuneRecord r = sampleRecord();
  std::string text = formatGemmTuneRecord(r);
  EXPECT_EQ(text.rfind("halo-gemm-tune 1\nkey ", 0), 0u) << text;
  halo::StatusOr<GemmTuneRecord> parsed = parseGemmTuneRecord(text);
  ASSERT_TRUE(parsed.ok()) << parsed.status().message();
  EXPECT_EQ(parsed->key, r.key);
  EXPECT_EQ(parsed->algo, r.algo);
  EXPECT_EQ(parsed->algo.text(), "algo=66 tile=20 stages=15 splitk=1 "
                                 "reduction=0 swizzle=1 custom=0 inner=0 "
                                 "cluster=3");
  EXPECT_EQ(parsed->candidate, 3);
  EXPECT_EQ(parsed->candidates, 12);
  EXPECT_DOUBLE_EQ(parsed->ms, 0.712345);
  EXPECT_DOUBLE_EQ(parsed->heuristicMs, 0.731);
  EXPECT_EQ(formatGemmTuneRecord(*parsed), text);
}

TEST(GemmTuneCache, RejectsMalformedRecords) {
  std::string good = formatGemmTuneRecord(sampleRecord());
  auto replaced = [&](const std::string &from, const std::string &to) {
    std::string text = good;
    size_t at = text.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    return text.replace(at, from.size(), to);
  };
  struct Case {
    std::string payload, why;
  };
  std::vector<Case> cases = {
      {"", "not a 'halo-gemm-tune 1' record"},
      {replaced("halo-gemm-tune 1", "halo-gemm-tune 2"), "not a"},
      {replaced("key ", "kee "), "missing 'key' line"},
      {replaced("algo 66", "algo x66"), "malformed 'algo' line"},
      {replaced("algo 66 20", "algo 66"), "malformed 'algo' line"},
      {replaced(" 0 3\n", " 0 3 7\n"), "malformed 'algo' line"},
      {replaced("candidate 3 12", "candidate 3"), "malformed 'candidate'"},
      {replaced("candidate 3 12", "candidate -1 12"), "implausible"},
      {replaced("ms 0.712345", "ms 0.000000"), "implausible"},
      {good.substr(0, good.find("ms ")), "missing 'ms' line"},
      {good + "extra\n", "unexpected line"},
  };
  for (const Case &c : cases) {
    halo::StatusOr<GemmTuneRecord> parsed = parseGemmTuneRecord(c.payload);
    ASSERT_FALSE(parsed.ok()) << c.payload;
    EXPECT_TRUE(contains(parsed.status().message(), c.why))
        << parsed.status().message() << " / expected " << c.why;
  }
}

TEST(GemmTuneCache, StoreLookupAndCorruptEntries) {
  halo::cuda::testing::TempDir dir;
  GemmTuneCache cache(dir.path() + "/nested");
  GemmTuneRecord r = sampleRecord();
  std::string warning = "stale";

  EXPECT_FALSE(cache.lookup(r.key, &warning));
  EXPECT_EQ(warning, ""); // a plain miss is silent

  ASSERT_TRUE(cache.store(r).ok());
  std::optional<GemmTuneRecord> found = cache.lookup(r.key, &warning);
  ASSERT_TRUE(found);
  EXPECT_EQ(warning, "");
  EXPECT_EQ(found->algo, r.algo);
  EXPECT_EQ(found->candidate, r.candidate);
  // The payload after KernelCache's 80-byte header is the readable record.
  std::string path = cache.entryPath(r.key);
  EXPECT_EQ(readFile(path).substr(80), formatGemmTuneRecord(r));

  // Replacing keeps one entry with the new choice.
  r.algo.tileId = 21;
  ASSERT_TRUE(cache.store(r).ok());
  found = cache.lookup(r.key, &warning);
  ASSERT_TRUE(found);
  EXPECT_EQ(found->algo.tileId, 21);

  // A flipped byte fails the checksum.
  std::string bytes = readFile(path);
  bytes[bytes.size() - 3] ^= 1;
  writeFile(path, bytes);
  EXPECT_FALSE(cache.lookup(r.key, &warning));
  EXPECT_TRUE(contains(warning, "corrupt")) << warning;
  EXPECT_TRUE(contains(warning, path)) << warning;

  // Truncated and empty files.
  writeFile(path, bytes.substr(0, 50));
  EXPECT_FALSE(cache.lookup(r.key, &warning));
  EXPECT_TRUE(contains(warning, "corrupt")) << warning;
  writeFile(path, "");
  EXPECT_FALSE(cache.lookup(r.key, &warning));
  EXPECT_TRUE(contains(warning, "corrupt")) << warning;

  // A valid entry whose payload is not a record (e.g. a kernel image).
  KernelCache raw(cache.directory());
  ASSERT_TRUE(raw.store(sha256(r.key), "ELF image").ok());
  EXPECT_FALSE(cache.lookup(r.key, &warning));
  EXPECT_TRUE(contains(warning, "unreadable")) << warning;

  // A record filed under another key's name.
  GemmTuneRecord other = sampleRecord();
  other.key += " (other)";
  ASSERT_TRUE(raw.store(sha256(r.key), formatGemmTuneRecord(other)).ok());
  EXPECT_FALSE(cache.lookup(r.key, &warning));
  EXPECT_TRUE(contains(warning, "another problem")) << warning;

  // Storing again repairs the entry.
  ASSERT_TRUE(cache.store(r).ok());
  EXPECT_TRUE(cache.lookup(r.key, &warning));
  EXPECT_EQ(warning, "");
}

TEST(GemmTuneCache, StoreIntoUnwritableDirectoryFails) {
  halo::cuda::testing::TempDir dir;
  std::string file = dir.path() + "/file";
  writeFile(file, "x");
  GemmTuneCache cache(file + "/cache");
  halo::Status status = cache.store(sampleRecord());
  ASSERT_FALSE(status.ok());
  EXPECT_TRUE(contains(status.message(), "cannot create")) << status.message();
}

TEST(GemmTuneCache, AutotuneSetting) {
  for (GemmAutotune fallback :
       {GemmAutotune::Off, GemmAutotune::Int8, GemmAutotune::All}) {
    EXPECT_EQ(*parseAutotuneSetting(nullptr, fallback), fallback);
    EXPECT_EQ(*parseAutotuneSetting("", fallback), fallback);
  }
  for (const char *off : {"0", "off", "false"})
    EXPECT_EQ(*parseAutotuneSetting(off, GemmAutotune::All), GemmAutotune::Off)
        << off;
  EXPECT_EQ(*parseAutotuneSetting("int8", GemmAutotune::Off),
            GemmAutotune::Int8);
  for (const char *all : {"1", "on", "true", "all"})
    EXPECT_EQ(*parseAutotuneSetting(all, GemmAutotune::Off), GemmAutotune::All)
        << all;
  halo::StatusOr<GemmAutotune> bad =
      parseAutotuneSetting("yes please", GemmAutotune::Int8);
  ASSERT_FALSE(bad.ok());
  EXPECT_TRUE(
      contains(bad.status().message(), "HALO_GEMM_AUTOTUNE='yes please'"))
      << bad.status().message();
}

} // namespace
