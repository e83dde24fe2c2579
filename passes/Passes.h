//===- Passes.h - halo passes ---------------------------------*- C++ -*-===//
#ifndef HALO_PASSES_PASSES_H
#define HALO_PASSES_PASSES_H

#include "dialects/exec/IR/ExecOps.h"
#include "dialects/halo/IR/HaloOps.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/Pass/Pass.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"
#include "llvm/Config/llvm-config.h"

namespace halo {

#define GEN_PASS_DECL
#include "passes/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "passes/Passes.h.inc"

/// The greedy pattern driver (renamed in LLVM 20).
inline mlir::LogicalResult applyGreedily(mlir::Operation *op,
                                         const mlir::FrozenRewritePatternSet &patterns) {
#if LLVM_VERSION_MAJOR >= 20
  return mlir::applyPatternsGreedily(op, patterns);
#else
  return mlir::applyPatternsAndFoldGreedily(op, patterns);
#endif
}

} // namespace halo

#endif // HALO_PASSES_PASSES_H
