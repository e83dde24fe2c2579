//===- HaloOps.h - Operations of the halo dialect ------------*- C++ -*-===//
#ifndef HALO_DIALECT_HALOOPS_H
#define HALO_DIALECT_HALOOPS_H

#include "dialects/halo/IR/HaloDialect.h"
#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/IR/OpImplementation.h"
#include "mlir/Interfaces/InferTypeOpInterface.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

#include "dialects/halo/IR/HaloEnums.h.inc"
#define GET_ATTRDEF_CLASSES
#include "dialects/halo/IR/HaloAttrs.h.inc"
#define GET_OP_CLASSES
#include "dialects/halo/IR/HaloOps.h.inc"

#endif // HALO_DIALECT_HALOOPS_H
