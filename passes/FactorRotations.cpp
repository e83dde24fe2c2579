//===- FactorRotations.cpp - halo-factor-rotations ------------------------===//
//
// A rotation is linear, so a sum of rotated tensors is rotated once:
// H^T a + H^T b = H^T (a + b). q/k/v and gate/up read one input, so at
// HALO-1/2 their input gradients, each un-rotated on the GEMM output (twice at
// HALO-2: over features and over tokens), are summed before the un-rotation:
// 7 un-rotations of input gradients per LLaMA layer become 4.
//
// Exact in real arithmetic; in floating point the sum is rounded before the
// rotation instead of after it, so results change by rounding (which is why
// this is not part of halo-simplify, which changes no bit).
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

struct FactorRotationsPass : halo::impl::HaloFactorRotationsBase<FactorRotationsPass> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    patterns.add<SumBeforeRotation>(&getContext());
    if (failed(applyGreedily(getOperation(), std::move(patterns))))
      return signalPassFailure();
  }
};

} // namespace
