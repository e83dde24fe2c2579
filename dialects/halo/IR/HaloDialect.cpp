//===- HaloDialect.cpp - The halo dialect --------------------------------===//
#include "dialects/halo/IR/HaloDialect.h"
#include "dialects/halo/IR/HaloOps.h"

#include "mlir/IR/DialectImplementation.h"
#include "llvm/ADT/TypeSwitch.h"

using namespace mlir;
using namespace halo;

#include "dialects/halo/IR/HaloOpsDialect.cpp.inc"
#include "dialects/halo/IR/HaloEnums.cpp.inc"
#define GET_ATTRDEF_CLASSES
#include "dialects/halo/IR/HaloAttrs.cpp.inc"

void HaloDialect::initialize() {
  addAttributes<
#define GET_ATTRDEF_LIST
#include "dialects/halo/IR/HaloAttrs.cpp.inc"
      >();
  addOperations<
#define GET_OP_LIST
#include "dialects/halo/IR/HaloOps.cpp.inc"
      >();
}
