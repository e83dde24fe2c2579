//===- LegalizeGemmLayouts.cpp - halo-legalize-gemm-layouts ---------------===//
//
// The 8-bit GEMMs of Hopper want both operands K-major. Rather than teach
// every producer about layouts, this pass states the requirement in the IR
// with halo.transpose ops; halo-fuse then folds each into the quantize kernel
// that produces its operand when the untransposed codes have no other reader.
//
//===----------------------------------------------------------------------===//
#include "passes/Passes.h"

namespace halo {
#define GEN_PASS_DEF_HALOLEGALIZEGEMMLAYOUTS
#include "passes/Passes.h.inc"
} // namespace halo

using namespace mlir;
using namespace halo;

namespace {

Value transposed(OpBuilder &b, Location loc, Value v) {
  auto type = cast<RankedTensorType>(v.getType());
  auto t = RankedTensorType::get({type.getDimSize(1), type.getDimSize(0)}, type.getElementType());
  return b.create<TransposeOp>(loc, t, v);
}

struct LegalizeGemmLayoutsPass
    : halo::impl::HaloLegalizeGemmLayoutsBase<LegalizeGemmLayoutsPass> {
  void runOnOperation() override {
    getOperation().walk([](QMatmulOp mm) {
      OpBuilder b(mm);
      if (mm.getTransposeA()) {
        mm.getAMutable().assign(transposed(b, mm.getLoc(), mm.getA()));
        mm.setTransposeA(false);
      }
      if (!mm.getTransposeB()) {
        mm.getBMutable().assign(transposed(b, mm.getLoc(), mm.getB()));
        mm.setTransposeB(true);
      }
    });
  }
};

} // namespace
