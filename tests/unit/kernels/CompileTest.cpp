//===- CompileTest.cpp - Every template compiles with NVRTC ---------------===//
//
// One test per (model, kernel): the generated source compiles to a cubin for
// sm_90a (what the executor compiles for on an H100) and for sm_89 (the two
// compiled concurrently), with a fresh HALO_CACHE_DIR so that NVRTC really
// runs. Needs no GPU and no driver.
//
//===----------------------------------------------------------------------===//
#include "tests/unit/kernels/KernelCases.h"

#include "runtime/cuda/Nvrtc.h"
#include "tests/unit/cuda/TestUtil.h"

#include <gtest/gtest.h>

#include <future>

namespace halo::cuda::kernels::testing {
namespace {

struct CaseId {
  size_t model;
  size_t index;
};

std::vector<CaseId> allCases() {
  std::vector<CaseId> ids;
  for (size_t m = 0; m < modelShapes().size(); ++m)
    for (size_t i = 0; i < kernelCases(modelShapes()[m]).size(); ++i)
      ids.push_back({m, i});
  return ids;
}

class CompileTest : public ::testing::TestWithParam<CaseId> {};

TEST_P(CompileTest, Sm90aAndSm89) {
  const ModelShape &m = modelShapes()[GetParam().model];
  KernelCase c = kernelCases(m)[GetParam().index];
  StatusOr<GeneratedKernel> k = c.make();
  ASSERT_TRUE(k.ok()) << k.status().message();
  ASSERT_FALSE(k->launches.empty());
  cuda::testing::TempDir cache;
  cuda::testing::ScopedEnv env("HALO_CACHE_DIR", cache.path());
  auto compile = [&](std::string arch) {
    CompileOptions options;
    options.arch = std::move(arch);
    return compileKernel({k->program, k->source, {}}, options);
  };
  auto sm89 = std::async(std::launch::async, compile, "sm_89");
  StatusOr<CompiledKernel> sm90 = compile("sm_90a");
  StatusOr<CompiledKernel> other = sm89.get();
  ASSERT_TRUE(sm90.ok()) << sm90.status().message();
  ASSERT_TRUE(other.ok()) << other.status().message();
  EXPECT_FALSE(sm90->fromCache);
  EXPECT_FALSE(sm90->image.empty());
  EXPECT_FALSE(other->image.empty());
  // Every entry point is in the image (cubins keep symbol names).
  for (const LaunchSpec &l : k->launches)
    EXPECT_NE(sm90->image.find(l.entry), std::string::npos) << l.entry;
}

INSTANTIATE_TEST_SUITE_P(
    Models, CompileTest, ::testing::ValuesIn(allCases()),
    [](const ::testing::TestParamInfo<CaseId> &info) {
      const ModelShape &m = modelShapes()[info.param.model];
      return std::string(m.name) + "_" +
             kernelCases(m)[info.param.index].label;
    });

} // namespace
} // namespace halo::cuda::kernels::testing
