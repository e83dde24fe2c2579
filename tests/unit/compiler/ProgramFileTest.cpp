//===- ProgramFileTest.cpp - The program file carries kernels and plan -----===//
//
// haloc's program stage (fuse, plan memory, emit CUDA, export) on the tiny
// example: the runtime reader must get a schedule covering every op, kernels
// whose sources are present, and a memory plan inside its arena; and damaged
// versions of that real manifest must be rejected with the cause named.
//
//===----------------------------------------------------------------------===//
#include "compiler/codegen/CudaEmitter.h"
#include "compiler/export/ProgramExport.h"
#include "compiler/pipeline/Pipeline.h"
#include "frontend/builder/LlamaBuilder.h"
#include "passes/Passes.h"
#include "runtime/cpu/Program.h"

#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"

#include <gtest/gtest.h>

using namespace halo;
using json = nlohmann::json;

namespace {

json tinyManifest() {
  StatusOr<frontend::ModelConfig> config =
      frontend::parseModelConfigFile(std::string(HALO_SOURCE_DIR) + "/examples/tiny.json");
  EXPECT_TRUE(config.ok());
  mlir::MLIRContext context;
  mlir::OwningOpRef<mlir::ModuleOp> module = frontend::buildForwardModule(context, *config);
  mlir::PassManager pm(&context);
  buildPipeline(pm, Stage::Program);
  EXPECT_TRUE(mlir::succeeded(pm.run(*module)));
  mlir::FailureOr<std::vector<EmittedKernel>> kernels = emitCudaKernels(*module);
  EXPECT_TRUE(mlir::succeeded(kernels));
  mlir::FailureOr<json> manifest = exportProgram(*module, cudaManifest(*kernels));
  EXPECT_TRUE(mlir::succeeded(manifest));
  return *manifest;
}

std::string errorOf(const json &manifest) {
  StatusOr<cpu::Program> p = cpu::parseProgramManifest(manifest.dump(), "tiny.halo");
  EXPECT_FALSE(p.ok());
  return p.ok() ? "" : p.status().message();
}

TEST(ProgramFile, CarriesScheduleKernelsAndPlan) {
  StatusOr<cpu::Program> p = cpu::parseProgramManifest(tinyManifest().dump(), "tiny.halo");
  ASSERT_TRUE(p.ok()) << p.status().message();
  const cpu::Function &step = *p->find("train_step");
  ASSERT_FALSE(step.schedule.empty());
  int64_t kernels = 0, gemms = 0;
  for (const cpu::ScheduleStep &s : step.schedule) {
    if (s.kernel.empty()) {
      gemms += step.ops[s.firstOp].kind == cpu::OpKind::QMatmul ||
               step.ops[s.firstOp].kind == cpu::OpKind::Matmul;
      continue;
    }
    ++kernels;
    ASSERT_TRUE(p->cudaKernels.count(s.kernel)) << s.kernel;
    for (const cpu::KernelPart &part : p->cudaKernels.at(s.kernel).parts) {
      EXPECT_FALSE(p->cudaSources.at(part.program).empty());
      EXPECT_FALSE(part.launches.empty());
    }
    EXPECT_FALSE(s.outputs.empty()) << s.kernel;
  }
  // 2 layers x 21 GEMMs + lm_head's 3.
  EXPECT_EQ(gemms, 45);
  EXPECT_GT(kernels, gemms);
  EXPECT_GT(step.arenaBytes, 0);
  int64_t planned = 0;
  for (int64_t offset : step.offsets)
    planned += offset >= 0;
  EXPECT_GT(planned, 0);
}

TEST(ProgramFile, DamagedManifestsAreRejected) {
  json good = tinyManifest();
  json gap = good;
  gap["functions"]["train_step"]["schedule"].erase(1);
  EXPECT_NE(errorOf(gap).find("the schedule covers every op once, in order"), std::string::npos);

  json unknown = good;
  unknown["functions"]["train_step"]["schedule"][0]["kernel"] = "halo_nonexistent";
  EXPECT_NE(errorOf(unknown).find("names kernel \"halo_nonexistent\""), std::string::npos);

  json past = good;
  past["functions"]["train_step"]["arena_bytes"] = 16;
  EXPECT_NE(errorOf(past).find("past the 16-byte arena"), std::string::npos);

  // An accumulating GEMM's result placed apart from its accumulator.
  json apart = good;
  json &fn = apart["functions"]["train_step"];
  int64_t result = -1;
  for (const json &op : fn["ops"])
    if ((op["op"] == "matmul" && op["operands"].size() == 3) ||
        (op["op"] == "qmatmul" && op["operands"].size() == 5)) {
      result = op["results"][0];
      break;
    }
  ASSERT_GE(result, 0) << "tiny's train_step has no accumulating GEMM";
  bool moved = false;
  for (json &entry : fn["offsets"])
    if (entry[0] == result) {
      entry[1] = entry[1].get<int64_t>() == 0 ? 256 : 0;
      moved = true;
    }
  ASSERT_TRUE(moved);
  EXPECT_NE(errorOf(apart).find("must share one arena offset"), std::string::npos);

  json noSource = good;
  noSource["cuda"]["sources"].erase(noSource["cuda"]["sources"].begin());
  EXPECT_NE(errorOf(noSource).find("no source for program"), std::string::npos);

  json badTarget = good;
  badTarget["cuda"]["target_sm"] = "hopper";
  EXPECT_NE(errorOf(badTarget).find("cuda.target_sm must be a compute capability"),
            std::string::npos);

  json badAccum = good;
  badAccum["cuda"]["fp8_fast_accum"] = "forward";
  EXPECT_NE(errorOf(badAccum).find("cuda.fp8_fast_accum must be \"none\", \"fwd\" or \"all\""),
            std::string::npos);
}

TEST(ProgramFile, CarriesTheFp8AccumulationChoice) {
  json manifest = tinyManifest();
  EXPECT_EQ(manifest["cuda"]["fp8_fast_accum"], "fwd");
  StatusOr<cpu::Program> p = cpu::parseProgramManifest(manifest.dump(), "tiny.halo");
  ASSERT_TRUE(p.ok()) << p.status().message();
  EXPECT_EQ(p->cudaFp8FastAccum, "fwd");
  // Files written before the key existed keep every FP8 GEMM promoting.
  manifest["cuda"].erase("fp8_fast_accum");
  p = cpu::parseProgramManifest(manifest.dump(), "tiny.halo");
  ASSERT_TRUE(p.ok()) << p.status().message();
  EXPECT_EQ(p->cudaFp8FastAccum, "none");
}

TEST(ProgramFile, CarriesTheTargetGpu) {
  json manifest = tinyManifest();
  EXPECT_EQ(manifest["cuda"]["target_sm"], kDefaultTargetSm);
  StatusOr<cpu::Program> p = cpu::parseProgramManifest(manifest.dump(), "tiny.halo");
  ASSERT_TRUE(p.ok()) << p.status().message();
  EXPECT_EQ(p->cudaTargetSm, kDefaultTargetSm);
  // Files written before target_sm existed load as "any GPU".
  manifest["cuda"].erase("target_sm");
  p = cpu::parseProgramManifest(manifest.dump(), "tiny.halo");
  ASSERT_TRUE(p.ok()) << p.status().message();
  EXPECT_EQ(p->cudaTargetSm, 0);
}

} // namespace

namespace {

/// The diagnostics exportProgram emits for `mlirText` (which must not export).
std::string exportError(const std::string &mlirText) {
  mlir::MLIRContext context;
  context.loadDialect<HaloDialect, mlir::func::FuncDialect, mlir::arith::ArithDialect>();
  mlir::OwningOpRef<mlir::ModuleOp> module =
      mlir::parseSourceString<mlir::ModuleOp>(mlirText, &context);
  EXPECT_TRUE(module);
  std::string diagnostics;
  mlir::ScopedDiagnosticHandler handler(&context, [&](mlir::Diagnostic &d) {
    diagnostics += d.str();
    return mlir::success();
  });
  EXPECT_TRUE(mlir::failed(exportProgram(*module)));
  return diagnostics;
}

// Tests that what the runtime cannot run is refused at export, naming why.
TEST(ProgramFile, ExportRefusesWhatTheRuntimeCannotRun) {
  EXPECT_NE(exportError("func.func @train_step() { return }").find("no halo.model_config"),
            std::string::npos);
  const std::string config = R"(module attributes {halo.model_config = "{}"} {)";
  EXPECT_NE(exportError(config + "func.func @forward() { return } }").find("no @train_step"),
            std::string::npos);
  EXPECT_NE(exportError(config + R"(func.func @train_step() -> tensor<2xf32> {
      %c = arith.constant dense<[1.0, 2.0]> : tensor<2xf32>
      return %c : tensor<2xf32> } })")
                .find("only splat float constants are supported"),
            std::string::npos);
  EXPECT_NE(exportError(config + R"(func.func @train_step(%x: tensor<?x4xf32>) { return } })")
                .find("statically shaped"),
            std::string::npos);
}

} // namespace
