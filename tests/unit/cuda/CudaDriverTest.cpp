//===- CudaDriverTest.cpp - Loading libcuda at run time -------------------===//
//
// Must pass both on GPU-less machines (load() returns the clean "no driver"
// error, never crashes) and on GPU machines (load() finds devices). The
// toolkit's stub libcuda exercises the cuInit failure path on either.
//
//===----------------------------------------------------------------------===//
#include "runtime/cuda/CudaDriver.h"
#include "runtime/cuda/CudaContext.h"

#include <gtest/gtest.h>

#include <filesystem>

using namespace halo::cuda;

namespace {

bool contains(const std::string &text, const std::string &part) {
  return text.find(part) != std::string::npos;
}

TEST(CudaDriver, LoadFailsCleanlyOrFindsDevices) {
  halo::StatusOr<const CudaDriver *> driver = CudaDriver::load();
  if (!driver.ok()) {
    const std::string &message = driver.status().message();
    EXPECT_TRUE(contains(message, "libcuda")) << message;
    EXPECT_TRUE(contains(message, "--device cpu")) << message;
    return;
  }
  EXPECT_GE((*driver)->version(), 12000);
  halo::StatusOr<int> count = deviceCount(**driver);
  ASSERT_TRUE(count.ok()) << count.status().message();
  EXPECT_GT(*count, 0);
}

TEST(CudaDriver, LoadIsOncePerProcess) {
  halo::StatusOr<const CudaDriver *> first = CudaDriver::load();
  halo::StatusOr<const CudaDriver *> second = CudaDriver::load();
  ASSERT_EQ(first.ok(), second.ok());
  if (first.ok())
    EXPECT_EQ(*first, *second);
  else
    EXPECT_EQ(first.status().message(), second.status().message());
}

TEST(CudaDriver, MissingLibraryNamesItAndHints) {
  halo::StatusOr<std::unique_ptr<CudaDriver>> driver =
      CudaDriver::loadLibrary("/nonexistent/libcuda.so.1");
  ASSERT_FALSE(driver.ok());
  const std::string &message = driver.status().message();
  EXPECT_TRUE(contains(message, "no CUDA driver found (/nonexistent/libcuda"))
      << message;
  EXPECT_TRUE(contains(message, "hint: run with --device cpu")) << message;
}

TEST(CudaDriver, StubLibraryFailsInCuInitWithNamedError) {
  // The build machine's toolkit layout may differ from this machine's.
  std::string stub;
  for (std::string candidate :
       {std::string(HALO_CUDA_STUB_LIBRARY),
        std::string("/usr/local/cuda/lib64/stubs/libcuda.so")})
    if (stub.empty() && !candidate.empty() &&
        std::filesystem::exists(candidate))
      stub = candidate;
  if (stub.empty())
    GTEST_SKIP() << "no CUDA stub library in this toolkit";
  halo::StatusOr<std::unique_ptr<CudaDriver>> driver =
      CudaDriver::loadLibrary(stub);
  ASSERT_FALSE(driver.ok());
  const std::string &message = driver.status().message();
  EXPECT_TRUE(contains(message, "cuInit(0) failed")) << message;
  EXPECT_TRUE(contains(message, "CUDA_ERROR_STUB_LIBRARY (34)")) << message;
  EXPECT_TRUE(contains(message, "CudaDriver.cpp:")) << message;
  EXPECT_TRUE(contains(message, "hint:")) << message;
}

} // namespace
