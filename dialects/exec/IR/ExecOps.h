//===- ExecOps.h - The exec dialect ---------------------------*- C++ -*-===//
#ifndef HALO_DIALECT_EXEC_EXECOPS_H
#define HALO_DIALECT_EXEC_EXECOPS_H

#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/Dialect.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/IR/OpImplementation.h"
#include "mlir/Interfaces/ControlFlowInterfaces.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

#include "dialects/exec/IR/ExecOpsDialect.h.inc"
#define GET_OP_CLASSES
#include "dialects/exec/IR/ExecOps.h.inc"

#endif // HALO_DIALECT_EXEC_EXECOPS_H
