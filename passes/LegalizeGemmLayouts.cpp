//===- LegalizeGemmLayouts.cpp - halo-legalize-gemm-layouts ---------------===//
//
// The 8-bit GEMMs of Hopper want both operands K-major. Rather than teach
// every producer about layouts, this pass states the requirement in the IR
// with halo.transpose ops, one per transposed value (Q(X) feeds several
// weight-gradient GEMMs); halo-fuse then folds each into the quantize kernel
// that produces its operand (see Fuse.cpp).
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
    // The transpose made for an earlier GEMM of the same block dominates the
    // later ones (the walk follows block order).
    DenseMap<Value, Value> made;
    getOperation().walk([&](QMatmulOp mm) {
      OpBuilder b(mm);
      auto transposedOnce = [&](Value v) {
        Value &t = made[v];
        if (!t || t.getParentBlock() != mm->getBlock())
          t = transposed(b, mm.getLoc(), v);
        return t;
      };
      if (mm.getTransposeA()) {
        mm.getAMutable().assign(transposedOnce(mm.getA()));
        mm.setTransposeA(false);
      }
      if (!mm.getTransposeB()) {
        mm.getBMutable().assign(transposedOnce(mm.getB()));
        mm.setTransposeB(true);
      }
    });
  }
};

} // namespace
