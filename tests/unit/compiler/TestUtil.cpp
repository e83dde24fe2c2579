//===- TestUtil.cpp - Compile to a program and run it on the oracle --------===//
#include "TestUtil.h"

#include "compiler/export/ProgramExport.h"
#include "frontend/builder/LlamaBuilder.h"
#include "frontend/config/ModelConfig.h"
#include "passes/Passes.h"

#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

namespace halo::test {
namespace {

void registerOnce() {
  static bool done = [] {
    registerHaloPasses();
    return true;
  }();
  (void)done;
}

void runPipeline(mlir::ModuleOp module, const std::string &pipeline) {
  registerOnce();
  if (pipeline.empty())
    return;
  mlir::PassManager pm(module.getContext());
  std::string errors;
  llvm::raw_string_ostream os(errors);
  ASSERT_TRUE(mlir::succeeded(mlir::parsePassPipeline(pipeline, pm, os))) << errors;
  ASSERT_TRUE(mlir::succeeded(pm.run(module))) << "pipeline failed: " << pipeline;
}

} // namespace

cpu::Program compileModel(const std::string &configJson, const std::string &pipeline) {
  StatusOr<frontend::ModelConfig> config =
      frontend::parseModelConfigString(configJson, "test.json");
  EXPECT_TRUE(config.ok()) << config.status().message();
  if (!config.ok())
    return {};
  mlir::MLIRContext context;
  context.loadDialect<HaloDialect, mlir::func::FuncDialect, mlir::arith::ArithDialect>();
  mlir::OwningOpRef<mlir::ModuleOp> module = frontend::buildForwardModule(context, *config);
  runPipeline(*module, pipeline);
  mlir::FailureOr<nlohmann::json> manifest = exportProgram(*module);
  EXPECT_TRUE(mlir::succeeded(manifest));
  if (mlir::failed(manifest))
    return {};
  StatusOr<cpu::Program> program = cpu::parseProgramManifest(manifest->dump(), "test");
  EXPECT_TRUE(program.ok()) << program.status().message();
  return program.ok() ? *program : cpu::Program{};
}

cpu::Function compileFunction(const std::string &mlirText, const std::string &pipeline,
                              const std::string &name) {
  mlir::MLIRContext context;
  context.loadDialect<HaloDialect, mlir::func::FuncDialect, mlir::arith::ArithDialect>();
  mlir::OwningOpRef<mlir::ModuleOp> module =
      mlir::parseSourceString<mlir::ModuleOp>(mlirText, &context);
  EXPECT_TRUE(module) << "test IR does not parse";
  if (!module)
    return {};
  runPipeline(*module, pipeline);
  auto func = module->lookupSymbol<mlir::func::FuncOp>(name);
  EXPECT_TRUE(func);
  mlir::FailureOr<nlohmann::json> json = exportFunction(func);
  EXPECT_TRUE(mlir::succeeded(json));
  StatusOr<cpu::Function> f = cpu::parseFunction(json->dump(), name, "test");
  EXPECT_TRUE(f.ok()) << f.status().message();
  return f.ok() ? *f : cpu::Function{};
}

int64_t countOps(const cpu::Function &f, cpu::OpKind kind) {
  return std::count_if(f.ops.begin(), f.ops.end(),
                       [&](const cpu::Op &op) { return op.kind == kind; });
}

template <typename F>
std::vector<cpu::Tensor<F>> makeInputs(const cpu::Function &f, int64_t vocab, uint64_t seed,
                                       double std) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal(0.0, std);
  std::uniform_int_distribution<int32_t> token(0, static_cast<int32_t>(vocab - 1));
  std::vector<cpu::Tensor<F>> inputs;
  for (const cpu::Binding &b : f.inputs) {
    const cpu::ValueInfo &info = f.values[b.value];
    auto t = cpu::Tensor<F>::zeros(info.type, info.shape);
    if (b.name == "tokens" || b.name == "targets")
      for (int32_t &id : t.ints)
        id = token(rng);
    else if (b.name == "step")
      t.ints[0] = 1;
    else if (b.state == "param")
      for (F &x : t.data)
        x = static_cast<F>((b.init == "ones" ? 1.0 : 0.0) + normal(rng));
    inputs.push_back(std::move(t));
  }
  cpu::deriveComputeCopies(f, inputs);
  return inputs;
}

template <typename F>
std::vector<cpu::Tensor<F>> runOk(const cpu::Function &f, const std::vector<cpu::Tensor<F>> &in,
                                  bool exact) {
  cpu::Interpreter<F> interpreter(f, cpu::InterpreterOptions{exact});
  StatusOr<std::vector<cpu::Tensor<F>>> out = interpreter.run(in);
  EXPECT_TRUE(out.ok()) << out.status().message();
  return out.ok() ? *out : std::vector<cpu::Tensor<F>>{};
}

template <typename F> double relDiff(const cpu::Tensor<F> &a, const cpu::Tensor<F> &b) {
  EXPECT_EQ(a.shape, b.shape);
  double diff = 0, scale = 1e-30;
  for (size_t i = 0; i < a.data.size() && i < b.data.size(); ++i) {
    diff = std::max(diff, std::abs(double(a.data[i]) - double(b.data[i])));
    scale = std::max(scale, std::abs(double(b.data[i])));
  }
  return diff / scale;
}

template std::vector<cpu::Tensor<float>> makeInputs(const cpu::Function &, int64_t, uint64_t,
                                                    double);
template std::vector<cpu::Tensor<double>> makeInputs(const cpu::Function &, int64_t, uint64_t,
                                                     double);
template std::vector<cpu::Tensor<float>> runOk(const cpu::Function &,
                                               const std::vector<cpu::Tensor<float>> &, bool);
template std::vector<cpu::Tensor<double>> runOk(const cpu::Function &,
                                                const std::vector<cpu::Tensor<double>> &, bool);
template double relDiff(const cpu::Tensor<float> &, const cpu::Tensor<float> &);
template double relDiff(const cpu::Tensor<double> &, const cpu::Tensor<double> &);

} // namespace halo::test
