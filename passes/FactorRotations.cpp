//===- FactorRotations.cpp - halo-factor-rotations ------------------------===//
//
// A rotation is linear, so a sum of rotated tensors is rotated once:
// H^T a + H^T b = H^T (a + b). q/k/v and gate/up read one input, so at
// HALO-1/2 their input gradients, each un-rotated on the GEMM output (twice at
// HALO-2: over features and over tokens), are summed before the un-rotation:
// 7 un-rotations of input gradients per LLaMA layer become 4.
//
// The Frobenius norm is rotation-invariant (H is orthonormal), so
// halo.global_norm reads a weight gradient before its un-rotation; the
// un-rotation then feeds only AdamW, and halo-fuse moves it into the
// optimizer kernel, where AdamW un-rotates each row in registers (no kernel
// that reads and writes the whole gradient once more).
//
// Exact in real arithmetic; in floating point the sum is rounded before the
// rotation instead of after it (the norm sums other squares), so results
// change by rounding (which is why this is not part of halo-simplify, which
// changes no bit).
//
//===----------------------------------------------------------------------===//
#include "passes/Passes.h"

#include "mlir/IR/PatternMatch.h"

namespace halo {
#define GEN_PASS_DEF_HALOFACTORROTATIONS
#include "passes/Passes.h.inc"
} // namespace halo

using namespace mlir;
using namespace halo;

namespace {

/// add(hadamard(a), hadamard(b)) -> hadamard(add(a, b)) for one rotation (side
/// and direction) whose results feed only this sum.
struct SumBeforeRotation : OpRewritePattern<AddOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(AddOp add, PatternRewriter &rewriter) const override {
    auto lhs = add.getLhs().getDefiningOp<HadamardOp>();
    auto rhs = add.getRhs().getDefiningOp<HadamardOp>();
    if (!lhs || !rhs || lhs == rhs || !lhs->hasOneUse() || !rhs->hasOneUse() ||
        lhs.getSide() != rhs.getSide() || lhs.getTransposed() != rhs.getTransposed() ||
        lhs.getX().getType() != rhs.getX().getType())
      return failure();
    Value sum = rewriter.create<AddOp>(add.getLoc(), lhs.getX(), rhs.getX());
    rewriter.replaceOpWithNewOp<HadamardOp>(add, add.getType(), sum, lhs.getSideAttr(),
                                            lhs.getTransposedAttr());
    return success();
  }
};

/// global_norm(..., hadamard(x){right}, ...) -> global_norm(..., x, ...) where
/// the rotation's other users are AdamW (as its gradient) or the function's
/// return: only where the rewrite lets halo-fuse drop the rotation's kernel.
struct NormBeforeRotation : OpRewritePattern<GlobalNormOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(GlobalNormOp norm, PatternRewriter &rewriter) const override {
    auto onlyAdamW = [&](HadamardOp h) {
      for (OpOperand &use : h->getUses()) {
        Operation *user = use.getOwner();
        auto adam = dyn_cast<AdamWOp>(user);
        if (user != norm && !isa<func::ReturnOp>(user) &&
            !(adam && use.getOperandNumber() == 1))
          return false;
      }
      return true;
    };
    bool changed = false;
    for (OpOperand &t : norm->getOpOperands())
      if (auto h = t.get().getDefiningOp<HadamardOp>();
          h && h.getSide() == HadamardSide::right && onlyAdamW(h)) {
        rewriter.modifyOpInPlace(norm, [&] { t.set(h.getX()); });
        changed = true;
      }
    return success(changed);
  }
};

struct FactorRotationsPass : halo::impl::HaloFactorRotationsBase<FactorRotationsPass> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    patterns.add<SumBeforeRotation, NormBeforeRotation>(&getContext());
    if (failed(applyGreedily(getOperation(), std::move(patterns))))
      return signalPassFailure();
  }
};

} // namespace
