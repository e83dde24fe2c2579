//===- GpuCheckTest.cpp - The GPU checks as a GoogleTest ------------------===//
//
// Runs the correctness part of gpu_check.cpp at the tiny shapes when a CUDA
// driver and a GPU are present; skipped otherwise (CI has no GPU).
//
//===----------------------------------------------------------------------===//
#include "tests/unit/kernels/GpuCheck.h"

#include <gtest/gtest.h>

#include <iostream>

namespace halo::cuda::kernels::testing {
namespace {

TEST(GpuCheck, TinyShapesMatchCpu) {
  GpuCheckOptions options;
  options.large = false;
  options.timing = false;
  GpuCheckResult result = runGpuChecks(options, std::cout);
  if (result.skipped)
    GTEST_SKIP() << result.skipReason;
  EXPECT_EQ(result.failures, 0) << "see the log above";
}

} // namespace
} // namespace halo::cuda::kernels::testing
