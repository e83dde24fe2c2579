//===- Passes.h - halo passes ---------------------------------*- C++ -*-===//
#ifndef HALO_PASSES_PASSES_H
#define HALO_PASSES_PASSES_H

#include "dialects/exec/IR/ExecOps.h"
#include "dialects/halo/IR/HaloOps.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/Pass/Pass.h"

namespace halo {

#define GEN_PASS_DECL
#include "passes/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "passes/Passes.h.inc"

} // namespace halo

#endif // HALO_PASSES_PASSES_H
