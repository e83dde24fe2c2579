//===- NvrtcTest.cpp - NVRTC compilation and the kernel cache -------------===//
//
// Runs without a GPU or driver: compiles an FP8 (e4m3, satfinite) and BF16
// kernel to PTX and cubin for sm_90 and sm_89, checks that compile errors
// carry the kernel name and NVRTC's log, and that the on-disk cache hits,
// misses on any keyed change and recompiles corrupt entries.
//
//===----------------------------------------------------------------------===//
#include "runtime/cuda/Nvrtc.h"
#include "runtime/cuda/KernelCache.h"

#include "tests/unit/cuda/TestUtil.h"

#include <gtest/gtest.h>

#include <elf.h>

#include <cstring>
#include <filesystem>
#include <fstream>

using namespace halo::cuda;
using halo::cuda::testing::ScopedEnv;
using halo::cuda::testing::TempDir;

namespace {

constexpr const char *kConvertSource = R"(
#include <cuda_bf16.h>
#include <cuda_fp8.h>

extern "C" __global__ void halo_convert(const float *in, unsigned char *fp8,
                                        unsigned short *bf16, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) {
    fp8[i] = __nv_fp8_e4m3(in[i]).__x;  // saturating round-to-nearest
    bf16[i] = __bfloat16_as_ushort(__float2bfloat16_rn(in[i]));
  }
}
)";

KernelSource convertKernel() {
  KernelSource kernel;
  kernel.name = "halo_convert";
  kernel.source = kConvertSource;
  return kernel;
}

CompileOptions optionsFor(const std::string &arch, OutputKind output) {
  CompileOptions options;
  options.arch = arch;
  options.output = output;
  return options;
}

bool contains(const std::string &text, const std::string &part) {
  return text.find(part) != std::string::npos;
}

class NvrtcTest : public ::testing::Test {
protected:
  void SetUp() override { KernelCache::resetStats(); }

  std::vector<std::filesystem::path> cacheEntries() const {
    std::vector<std::filesystem::path> entries;
    for (const auto &entry : std::filesystem::directory_iterator(dir.path()))
      entries.push_back(entry.path());
    return entries;
  }

  TempDir dir;
  ScopedEnv cacheDir{"HALO_CACHE_DIR", dir.path()};
};

class NvrtcArchTest : public NvrtcTest,
                      public ::testing::WithParamInterface<std::string> {};

TEST_P(NvrtcArchTest, PtxUsesFp8SatfiniteAndBf16) {
  halo::StatusOr<CompiledKernel> compiled =
      compileKernel(convertKernel(), optionsFor(GetParam(), OutputKind::Ptx));
  ASSERT_TRUE(compiled.ok()) << compiled.status().message();
  const std::string &ptx = compiled->image;
  EXPECT_EQ(compiled->kind, OutputKind::Ptx);
  EXPECT_TRUE(contains(ptx, ".target " + GetParam())) << ptx;
  EXPECT_TRUE(contains(ptx, ".entry halo_convert")) << ptx;
  EXPECT_TRUE(contains(ptx, "cvt.rn.satfinite.e4m3x2.f32")) << ptx;
  EXPECT_TRUE(contains(ptx, "cvt.rn.bf16.f32")) << ptx;
}

TEST_P(NvrtcArchTest, CubinIsACudaElf) {
  halo::StatusOr<CompiledKernel> compiled =
      compileKernel(convertKernel(), optionsFor(GetParam(), OutputKind::Cubin));
  ASSERT_TRUE(compiled.ok()) << compiled.status().message();
  const std::string &cubin = compiled->image;
  ASSERT_GE(cubin.size(), sizeof(Elf64_Ehdr));
  EXPECT_EQ(cubin.compare(0, SELFMAG, ELFMAG), 0);
  Elf64_Ehdr header;
  std::memcpy(&header, cubin.data(), sizeof(header));
  EXPECT_EQ(header.e_machine, EM_CUDA);
}

INSTANTIATE_TEST_SUITE_P(Archs, NvrtcArchTest,
                         ::testing::Values("sm_90", "sm_89"));

TEST_F(NvrtcTest, ArchSpecificFeatureSuffix) {
  halo::StatusOr<CompiledKernel> compiled =
      compileKernel(convertKernel(), optionsFor("sm_90a", OutputKind::Ptx));
  ASSERT_TRUE(compiled.ok()) << compiled.status().message();
  EXPECT_TRUE(contains(compiled->image, ".target sm_90a"));
}

TEST_F(NvrtcTest, SyntaxErrorReportsKernelNameAndLog) {
  KernelSource kernel;
  kernel.name = "halo_broken";
  kernel.source = "extern \"C\" __global__ void halo_broken(int *p) {\n"
                  "  *p = 1 +;\n"
                  "}\n";
  halo::StatusOr<CompiledKernel> compiled =
      compileKernel(kernel, optionsFor("sm_90", OutputKind::Cubin));
  ASSERT_FALSE(compiled.ok());
  const std::string &message = compiled.status().message();
  EXPECT_TRUE(contains(message, "kernel 'halo_broken'")) << message;
  EXPECT_TRUE(contains(message, "NVRTC_ERROR_COMPILATION")) << message;
  // NVRTC's own log: file(line): error: ...
  EXPECT_TRUE(contains(message, "halo_broken.cu(2): error")) << message;
  EXPECT_TRUE(contains(message, "expected an expression")) << message;
  EXPECT_TRUE(cacheEntries().empty());
}

TEST_F(NvrtcTest, InvalidArchIsRejected) {
  for (const char *arch : {"sm90", "compute_90", "sm_9", "sm_90x", "sm_"}) {
    halo::StatusOr<CompiledKernel> compiled =
        compileKernel(convertKernel(), optionsFor(arch, OutputKind::Cubin));
    ASSERT_FALSE(compiled.ok()) << arch;
    EXPECT_TRUE(contains(compiled.status().message(), "invalid arch"))
        << compiled.status().message();
  }
}

TEST_F(NvrtcTest, SecondCompileIsACacheHit) {
  CompileOptions options = optionsFor("sm_90", OutputKind::Cubin);
  halo::StatusOr<CompiledKernel> first =
      compileKernel(convertKernel(), options);
  ASSERT_TRUE(first.ok()) << first.status().message();
  EXPECT_FALSE(first->fromCache);
  EXPECT_EQ(KernelCache::stats().misses, 1u);
  EXPECT_EQ(cacheEntries().size(), 1u);

  halo::StatusOr<CompiledKernel> second =
      compileKernel(convertKernel(), options);
  ASSERT_TRUE(second.ok()) << second.status().message();
  EXPECT_TRUE(second->fromCache);
  EXPECT_EQ(second->image, first->image);
  EXPECT_EQ(KernelCache::stats().hits, 1u);
  EXPECT_EQ(KernelCache::stats().misses, 1u);
}

TEST_F(NvrtcTest, KeyedChangesMiss) {
  CompileOptions base = optionsFor("sm_90", OutputKind::Cubin);
  ASSERT_TRUE(compileKernel(convertKernel(), base).ok());

  CompileOptions otherArch = base;
  otherArch.arch = "sm_89";
  CompileOptions otherFlag = base;
  otherFlag.flags.push_back("-DHALO_UNUSED=1");
  CompileOptions otherOutput = base;
  otherOutput.output = OutputKind::Ptx;
  CompileOptions fastMath = base;
  fastMath.fastMath = true;
  CompileOptions includeDir = base;
  includeDir.includeDirs.push_back(dir.path());
  for (const CompileOptions &options :
       {otherArch, otherFlag, otherOutput, fastMath, includeDir}) {
    halo::StatusOr<CompiledKernel> compiled =
        compileKernel(convertKernel(), options);
    ASSERT_TRUE(compiled.ok()) << compiled.status().message();
    EXPECT_FALSE(compiled->fromCache);
  }
  KernelSource otherSource = convertKernel();
  otherSource.source += "\n// changed\n";
  EXPECT_FALSE(compileKernel(otherSource, base)->fromCache);

  EXPECT_EQ(KernelCache::stats().hits, 0u);
  EXPECT_EQ(KernelCache::stats().misses, 7u);
  EXPECT_TRUE(compileKernel(convertKernel(), base)->fromCache);
  EXPECT_TRUE(compileKernel(convertKernel(), otherFlag)->fromCache);
}

TEST_F(NvrtcTest, InMemoryHeadersAreKeyedByContents) {
  KernelSource kernel;
  kernel.name = "halo_fill";
  kernel.source = "#include \"halo_value.h\"\n"
                  "extern \"C\" __global__ void halo_fill(int *p) {\n"
                  "  *p = HALO_VALUE;\n"
                  "}\n";
  kernel.headers = {{"halo_value.h", "#define HALO_VALUE 1234567\n"}};
  CompileOptions options = optionsFor("sm_90", OutputKind::Ptx);
  halo::StatusOr<CompiledKernel> first = compileKernel(kernel, options);
  ASSERT_TRUE(first.ok()) << first.status().message();
  EXPECT_TRUE(contains(first->image, "1234567"));

  kernel.headers[0].second = "#define HALO_VALUE 7654321\n";
  halo::StatusOr<CompiledKernel> second = compileKernel(kernel, options);
  ASSERT_TRUE(second.ok()) << second.status().message();
  EXPECT_FALSE(second->fromCache);
  EXPECT_TRUE(contains(second->image, "7654321"));
}

TEST_F(NvrtcTest, CorruptEntryIsRecompiled) {
  CompileOptions options = optionsFor("sm_90", OutputKind::Cubin);
  halo::StatusOr<CompiledKernel> first =
      compileKernel(convertKernel(), options);
  ASSERT_TRUE(first.ok()) << first.status().message();
  ASSERT_EQ(cacheEntries().size(), 1u);
  std::filesystem::path entry = cacheEntries()[0];

  // A torn write: the header survived, the payload did not.
  std::filesystem::resize_file(entry, 100);
  halo::StatusOr<CompiledKernel> second =
      compileKernel(convertKernel(), options);
  ASSERT_TRUE(second.ok()) << second.status().message();
  EXPECT_FALSE(second->fromCache);
  EXPECT_EQ(second->image, first->image);
  EXPECT_EQ(KernelCache::stats().corruptEntries, 1u);

  // The recompiled image replaced the bad entry.
  halo::StatusOr<CompiledKernel> third =
      compileKernel(convertKernel(), options);
  ASSERT_TRUE(third.ok());
  EXPECT_TRUE(third->fromCache);
  EXPECT_EQ(third->image, first->image);
  EXPECT_EQ(KernelCache::stats().hits, 1u);
}

TEST_F(NvrtcTest, UnwritableCacheStillCompiles) {
  std::string file = dir.path() + "/file";
  std::ofstream(file) << "x";
  ScopedEnv blocked("HALO_CACHE_DIR", file + "/cache");
  halo::StatusOr<CompiledKernel> compiled =
      compileKernel(convertKernel(), optionsFor("sm_90", OutputKind::Ptx));
  ASSERT_TRUE(compiled.ok()) << compiled.status().message();
  EXPECT_EQ(KernelCache::stats().writeFailures, 1u);
}

TEST_F(NvrtcTest, CacheCanBeBypassed) {
  CompileOptions options = optionsFor("sm_90", OutputKind::Ptx);
  options.useCache = false;
  ASSERT_TRUE(compileKernel(convertKernel(), options).ok());
  EXPECT_FALSE(compileKernel(convertKernel(), options)->fromCache);
  EXPECT_TRUE(cacheEntries().empty());
  EXPECT_EQ(KernelCache::stats().misses, 0u);
}

TEST(Nvrtc, FindsCudaHeaders) {
  halo::StatusOr<std::string> dir = cudaIncludeDir();
  ASSERT_TRUE(dir.ok()) << dir.status().message();
  EXPECT_TRUE(std::filesystem::exists(*dir + "/cuda_fp8.h"));
  EXPECT_TRUE(std::filesystem::exists(*dir + "/cuda_bf16.h"));
}

TEST(Nvrtc, CudaHomeOverridesAndBadOnesAreSkipped) {
  TempDir fake;
  std::filesystem::create_directories(fake.path() + "/include");
  std::ofstream(fake.path() + "/include/cuda_fp8.h") << "";
  {
    ScopedEnv home("CUDA_HOME", fake.path());
    EXPECT_EQ(cudaIncludeDir().value(),
              std::filesystem::canonical(fake.path() + "/include").string());
  }
  ScopedEnv missing("CUDA_HOME", fake.path() + "/nonexistent");
  ASSERT_TRUE(cudaIncludeDir().ok());
  EXPECT_NE(cudaIncludeDir().value().find("include"), std::string::npos);
}

TEST(Nvrtc, VersionIsKnown) {
  std::string version = nvrtcVersionString();
  EXPECT_NE(version, "unknown");
  EXPECT_NE(version.find('.'), std::string::npos);
}

} // namespace
