//===- halo-opt.cpp - Parse, verify and transform halo IR -----------------===//
//
// The MLIR `*-opt` driver for halo: round-trips any halo IR, runs the halo
// passes alone or as a pipeline, and accepts every pass-manager flag
// (--mlir-print-ir-after-all, --pass-pipeline, --verify-diagnostics, ...).
//
//===----------------------------------------------------------------------===//
#include "passes/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Tools/mlir-opt/MlirOptMain.h"
#include "mlir/Transforms/Passes.h"

int main(int argc, char **argv) {
  halo::registerHaloPasses();
  mlir::registerCanonicalizerPass();
  mlir::registerCSEPass();
  mlir::registerSymbolDCEPass();
  mlir::DialectRegistry registry;
  registry.insert<halo::HaloDialect, halo::exec::ExecDialect, mlir::func::FuncDialect,
                  mlir::arith::ArithDialect>();
  return mlir::asMainReturnCode(
      mlir::MlirOptMain(argc, argv, "halo-opt: parse, verify and transform halo IR\n", registry));
}
