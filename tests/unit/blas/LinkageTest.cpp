//===- LinkageTest.cpp - The GEMM layer keeps binaries driver-free --------===//
//
// halo-blas-tests links libcublasLt (through halo_blas). Neither this binary
// nor the libcublasLt it loaded may list libcuda in DT_NEEDED, and the
// binary must reach main() here on machines without a driver (it does, or
// this test would not run). GemmEngine::create reports the missing driver as
// a Status instead of crashing.
//
//===----------------------------------------------------------------------===//
#include "runtime/cuda/CudaDriver.h"
#include "runtime/cuda/blas/GemmEngine.h"
#include "tests/unit/common/ElfNeeded.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

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

TEST(BlasLinkage, TestBinaryNeedsCublasLtButNotLibcuda) {
  std::vector<std::string> needed = neededLibraries("/proc/self/exe");
  bool cublasLt = false;
  for (const std::string &library : needed)
    cublasLt |= library.find("libcublasLt.so") != std::string::npos;
  EXPECT_TRUE(cublasLt) << "halo_blas is expected to link libcublasLt";
  expectNoLibcuda("/proc/self/exe");
}

TEST(BlasLinkage, CublasLtDoesNotNeedLibcuda) {
  std::string library = loadedLibrary("/libcublasLt.so");
  ASSERT_FALSE(library.empty()) << "libcublasLt is not loaded";
  expectNoLibcuda(library);
}

TEST(BlasLinkage, NoDriverIsAStatusNotACrash) {
  halo::StatusOr<const halo::cuda::CudaDriver *> driver =
      halo::cuda::CudaDriver::load();
  if (driver.ok())
    GTEST_SKIP() << "a CUDA driver is present; the device tests cover it";
  EXPECT_NE(driver.status().message().find("CUDA driver"), std::string::npos)
      << driver.status().message();
}

} // namespace
