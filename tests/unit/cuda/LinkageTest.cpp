//===- LinkageTest.cpp - No binary depends on libcuda ---------------------===//
//
// halo binaries must start without an NVIDIA driver, so neither they nor
// libnvrtc may list libcuda in their ELF DT_NEEDED entries. The smoke tool
// must also report exactly what CudaDriver::load() reports: the clean
// no-driver error (exit 1) here, a passing smoke test on a GPU machine.
//
//===----------------------------------------------------------------------===//
#include "runtime/cuda/CudaDriver.h"

#include "tests/unit/common/ElfNeeded.h"
#include "tests/unit/cuda/TestUtil.h"

#include <gtest/gtest.h>

#include <elf.h>
#include <link.h>
#include <sys/wait.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>

using halo::cuda::CudaDriver;
using halo::cuda::testing::ScopedEnv;
using halo::cuda::testing::TempDir;
using halo::testing::loadedLibrary;
using halo::testing::neededLibraries;

namespace {


void expectNoLibcuda(const std::string &path) {
  std::vector<std::string> needed = neededLibraries(path);
  EXPECT_FALSE(needed.empty()) << path;
  for (const std::string &library : needed)
    EXPECT_EQ(library.find("libcuda.so"), std::string::npos)
        << path << " needs " << library;
}

TEST(Linkage, TestBinaryDoesNotNeedLibcuda) {
  expectNoLibcuda("/proc/self/exe");
}

TEST(Linkage, ToolDoesNotNeedLibcuda) { expectNoLibcuda(HALO_CUDA_INFO_PATH); }

TEST(Linkage, NvrtcDoesNotNeedLibcuda) {
  std::string nvrtc = loadedLibrary("/libnvrtc.so");
  ASSERT_FALSE(nvrtc.empty()) << "libnvrtc is not loaded";
  expectNoLibcuda(nvrtc);
}

TEST(Linkage, ToolReportsWhatLoadReports) {
  TempDir cacheDir;
  ScopedEnv cacheEnv("HALO_CACHE_DIR", cacheDir.path());
  std::FILE *pipe = popen(HALO_CUDA_INFO_PATH " 2>&1", "r");
  ASSERT_NE(pipe, nullptr);
  std::string output;
  char buffer[4096];
  while (size_t read = std::fread(buffer, 1, sizeof(buffer), pipe))
    output.append(buffer, read);
  int status = pclose(pipe);
  ASSERT_TRUE(WIFEXITED(status)) << output;

  halo::StatusOr<const CudaDriver *> driver = CudaDriver::load();
  if (driver.ok()) {
    EXPECT_EQ(WEXITSTATUS(status), 0) << output;
    EXPECT_NE(output.find("smoke test passed"), std::string::npos) << output;
  } else {
    EXPECT_EQ(WEXITSTATUS(status), 1) << output;
    EXPECT_EQ(output,
              "halo-cuda-info: error: " + driver.status().message() + "\n");
  }
}

} // namespace
