//===- CudaEmitTest.cpp - Every kernel of every example model compiles ----===//
//
// For each example model at BF16 and at every HALO level in FP8 and INT8, the
// fused program's kernels are emitted as CUDA C++ and compiled by NVRTC for
// sm_90a (H100, as the executor compiles them there) and sm_89 (Ada). No GPU
// is needed; kernels shared between configurations (same generated program)
// are compiled once per arch.
//
//===----------------------------------------------------------------------===//
#include "compiler/codegen/CudaEmitter.h"
#include "compiler/pipeline/Pipeline.h"
#include "dialects/exec/IR/ExecOps.h"
#include "frontend/builder/LlamaBuilder.h"
#include "frontend/config/ModelConfig.h"
#include "passes/Passes.h"
#include "runtime/cuda/Nvrtc.h"

#include "mlir/Pass/PassManager.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <map>
#include <tuple>

using namespace halo;

namespace {

/// Emits the CUDA kernels of `model` compiled with `level`/`precision`.
std::vector<EmittedKernel> emit(const std::string &model, std::optional<int> level,
                                frontend::Precision precision) {
  StatusOr<frontend::ModelConfig> config =
      frontend::parseModelConfigFile(std::string(HALO_SOURCE_DIR) + "/examples/" + model);
  EXPECT_TRUE(config.ok()) << config.status().message();
  Status overridden = frontend::applyOverrides(*config, level, precision);
  EXPECT_TRUE(overridden.ok()) << overridden.message();
  mlir::MLIRContext context;
  mlir::OwningOpRef<mlir::ModuleOp> module = frontend::buildForwardModule(context, *config);
  mlir::PassManager pm(&context);
  buildPipeline(pm, Stage::Exec);
  EXPECT_TRUE(mlir::succeeded(pm.run(*module))) << model;
  mlir::FailureOr<std::vector<EmittedKernel>> kernels = emitCudaKernels(*module);
  EXPECT_TRUE(mlir::succeeded(kernels)) << model;
  return mlir::succeeded(kernels) ? *kernels : std::vector<EmittedKernel>{};
}

TEST(CudaEmit, EveryKernelOfEveryExampleCompiles) {
  using frontend::Precision;
  std::map<std::string, std::string> sources; // program -> source
  std::map<std::string, size_t> kernelsPerConfig;
  for (const char *model : {"tiny.json", "llama-125m.json", "llama-3-8b.json"}) {
    std::vector<std::pair<std::optional<int>, Precision>> configs = {{std::nullopt, Precision::BF16}};
    for (int level : {0, 1, 2})
      for (Precision p : {Precision::FP8, Precision::INT8})
        configs.push_back({level, p});
    for (auto [level, precision] : configs) {
      std::vector<EmittedKernel> kernels = emit(model, level.value_or(2), precision);
      ASSERT_FALSE(kernels.empty()) << model;
      std::string key = std::string(model) + " " + std::string(frontend::toString(precision)) +
                        (level ? " HALO-" + std::to_string(*level) : "");
      kernelsPerConfig[key] = kernels.size();
      for (const EmittedKernel &k : kernels)
        for (const cuda::kernels::GeneratedKernel &g : k.parts)
          sources.emplace(g.program, g.source);
    }
  }
  for (auto &[config, n] : kernelsPerConfig)
    std::printf("  %-34s %zu distinct kernels\n", config.c_str(), n);

  auto start = std::chrono::steady_clock::now();
  // sm_90a: what the executor compiles for on sm_90 (the wgmma attention).
  for (const char *arch : {"sm_90a", "sm_89"})
    for (auto &[program, source] : sources) {
      cuda::CompileOptions options;
      options.arch = arch;
      options.useCache = false;
      StatusOr<cuda::CompiledKernel> compiled = cuda::compileKernel({program, source, {}}, options);
      EXPECT_TRUE(compiled.ok()) << program << " (" << arch << "): " << compiled.status().message();
    }
  double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("  compiled %zu CUDA programs for sm_90 and sm_89 in %.1f s\n", sources.size(),
              seconds);
}

// Tests that HALO-2's two quantizers of each E (Q(H_T E), plain Q(E)^T) are
// one kernel: one generated part writing both at Llama-3-8B (T = 8192, the
// sm_90 cluster form), the rotated quantizer and then the plain one where
// that form does not apply (the tiny model's T = 512). Both models have 3
// distinct E shapes (q/o/down, k/v, gate/up).
TEST(CudaEmit, LeftAndPlainQuantizersOfOneEShareAKernel) {
  for (auto [model, parts] : {std::pair{"llama-3-8b.json", size_t{1}}, {"tiny.json", size_t{2}}}) {
    size_t pairs = 0;
    for (const EmittedKernel &k : emit(model, 2, frontend::Precision::FP8)) {
      if (k.kind != "hadamard_quantize_plain")
        continue;
      ++pairs;
      ASSERT_EQ(k.parts.size(), parts) << k.name;
      EXPECT_EQ(k.parts[0].program.rfind("halo_hql_", 0), 0u) << k.parts[0].program;
      if (parts == 1)
        EXPECT_NE(k.parts[0].program.find("_plain"), std::string::npos) << k.parts[0].program;
      else
        EXPECT_EQ(k.parts[1].program.rfind("halo_hqp_", 0), 0u) << k.parts[1].program;
    }
    EXPECT_EQ(pairs, 3u) << model;
  }
}

// Tests that at HALO-1/2 the SwiGLU backward un-rotates down_proj's input
// gradient itself: one generated part (hadamardKernel's swigluGrad, one
// _swiglu_bwd launch over rows of FFN), and no plain right rotation of
// [T, FFN] is left; HALO-0 keeps the plain SwiGLU backward. Llama-3-8B's FFN
// is 14336 (K = 28), the tiny model's 192 (K = 12).
TEST(CudaEmit, SwigluBackwardUnrotatesItsGradient) {
  for (auto [model, rows, ffn] : {std::tuple{"tiny.json", 512, 192},
                                  {"llama-3-8b.json", 8192, 14336}})
    for (int level : {0, 1, 2}) {
      const std::string shape = std::to_string(rows) + "x" + std::to_string(ffn);
      size_t fused = 0, plain = 0;
      for (const EmittedKernel &k : emit(model, level, frontend::Precision::FP8)) {
        if (k.kind == "swiglu_grad")
          ++plain;
        if (k.kind == "hadamard") {
          for (const cuda::kernels::GeneratedKernel &g : k.parts)
            EXPECT_NE(g.program.rfind("halo_hr_" + shape, 0), 0u) << model << " " << g.program;
        }
        if (k.kind != "hadamard_swiglu_grad")
          continue;
        ++fused;
        ASSERT_EQ(k.parts.size(), 1u) << k.name;
        EXPECT_EQ(k.parts[0].program, "halo_hr_" + shape + "_ht_swiglubw");
        ASSERT_EQ(k.parts[0].launches.size(), 1u);
        EXPECT_EQ(k.parts[0].launches[0].entry, k.parts[0].program + "_swiglu_bwd");
        EXPECT_EQ(k.parts[0].launches[0].grid.x, unsigned(rows));
      }
      EXPECT_EQ(fused, level > 0 ? 1u : 0u) << model << " HALO-" << level;
      EXPECT_EQ(plain, level > 0 ? 0u : 1u) << model << " HALO-" << level;
    }
}

// Tests that at HALO-1/2 the RMSNorm backwards inside the layers un-rotate
// their dy (the summed q/k/v and gate/up input gradients) themselves: one
// kernel (both norms share it), two parts as the plain backward, the first
// reading dyRot; the final norm's backward (dy from lm_head, not rotated)
// stays plain, and at HALO-0 both are plain.
TEST(CudaEmit, RmsNormBackwardUnrotatesItsGradient) {
  for (auto [model, rows, hidden] : {std::tuple{"tiny.json", 512, 64},
                                     {"llama-3-8b.json", 8192, 4096}})
    for (int level : {0, 1, 2}) {
      size_t fused = 0, plain = 0;
      for (const EmittedKernel &k : emit(model, level, frontend::Precision::FP8)) {
        if (k.kind == "rms_norm_grad")
          ++plain;
        if (k.kind != "hadamard_rms_norm_grad")
          continue;
        ++fused;
        ASSERT_EQ(k.parts.size(), 1u) << k.name;
        EXPECT_EQ(k.parts[0].program, "halo_rmsnormbw_" + std::to_string(rows) + "x" +
                                          std::to_string(hidden) + "_res_rotht");
        ASSERT_EQ(k.parts[0].launches.size(), 2u);
        EXPECT_NE(k.parts[0].launches[0].signature.find("dyRot"), std::string::npos);
      }
      EXPECT_EQ(fused, level > 0 ? 1u : 0u) << model << " HALO-" << level;
      EXPECT_EQ(plain, level > 0 ? 1u : 2u) << model << " HALO-" << level;
    }
}

// Tests that a kernel kind without a generator is a clear error, not a crash.
TEST(CudaEmit, UnsupportedKindNamesTheKernel) {
  mlir::MLIRContext context;
  context.loadDialect<HaloDialect, exec::ExecDialect, mlir::func::FuncDialect>();
  mlir::OpBuilder b(&context);
  auto module = mlir::ModuleOp::create(b.getUnknownLoc());
  b.setInsertionPointToEnd(module.getBody());
  auto t = mlir::RankedTensorType::get({4, 4}, b.getBF16Type());
  auto scale = mlir::RankedTensorType::get({4}, b.getF32Type());
  auto q = mlir::RankedTensorType::get({4, 4}, b.getType<mlir::Float8E4M3FNType>());
  auto func = b.create<mlir::func::FuncOp>(b.getUnknownLoc(), "f", b.getFunctionType({t}, {}));
  b.setInsertionPointToStart(func.addEntryBlock());
  auto kernel = b.create<exec::KernelOp>(b.getUnknownLoc(), mlir::TypeRange{q, scale},
                                         mlir::ValueRange{func.getArgument(0)},
                                         b.getStringAttr("k_colscale"), b.getStringAttr("quantize"));
  mlir::Block *body = new mlir::Block();
  kernel.getBody().push_back(body);
  mlir::Value x = body->addArgument(t, b.getUnknownLoc());
  mlir::OpBuilder kb = mlir::OpBuilder::atBlockEnd(body);
  auto quant = kb.create<QuantizeOp>(b.getUnknownLoc(), q, scale, x,
                                     GranularityAttr::get(&context, Granularity::col));
  kb.create<exec::YieldOp>(b.getUnknownLoc(), quant.getResults());
  b.create<mlir::func::ReturnOp>(b.getUnknownLoc());
  std::string diagnostics;
  mlir::ScopedDiagnosticHandler handler(&context, [&](mlir::Diagnostic &d) {
    diagnostics += d.str();
    return mlir::success();
  });
  EXPECT_TRUE(mlir::failed(emitCudaKernels(module)));
  EXPECT_NE(diagnostics.find("k_colscale: column-wise scales have no generator yet"),
            std::string::npos)
      << diagnostics;
  module->erase();
}

} // namespace
