//===- HaloDialect.h - The halo dialect ----------------------*- C++ -*-===//
#ifndef HALO_DIALECT_HALODIALECT_H
#define HALO_DIALECT_HALODIALECT_H

#include "mlir/IR/Dialect.h"

#include "dialects/halo/IR/HaloOpsDialect.h.inc"

#endif // HALO_DIALECT_HALODIALECT_H
