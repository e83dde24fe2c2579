//===- Simplify.cpp - halo-simplify ---------------------------------------===//
//
// Cleans up after placement: H H^T pairs cancel, identical rotations and
// quantizations of one value merge (CSE over pure ops), and dead values go
// (the greedy driver erases unused pure ops). Merging is what makes HALO-1/2's
// backward GEMMs read the forward's saved 8-bit rotated operands.
//
//===----------------------------------------------------------------------===//
#include "passes/Passes.h"

#include "mlir/IR/Dominance.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/CSE.h"

namespace halo {
#define GEN_PASS_DEF_HALOSIMPLIFY
#include "passes/Passes.h.inc"
} // namespace halo

using namespace mlir;
using namespace halo;

namespace {

/// hadamard(hadamard(x, side, t), side, !t) -> x, since H^T H = H H^T = I.
struct CancelHadamardPair : OpRewritePattern<HadamardOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(HadamardOp outer, PatternRewriter &rewriter) const override {
    auto inner = outer.getX().getDefiningOp<HadamardOp>();
    if (!inner || inner.getSide() != outer.getSide() ||
        inner.getTransposed() == outer.getTransposed())
      return failure();
    rewriter.replaceOp(outer, inner.getX());
    return success();
  }
};

struct SimplifyPass : halo::impl::HaloSimplifyBase<SimplifyPass> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    patterns.add<CancelHadamardPair>(&getContext());
    FrozenRewritePatternSet frozen(std::move(patterns));
    if (failed(applyGreedily(getOperation(), frozen)))
      return signalPassFailure();
    IRRewriter rewriter(&getContext());
    DominanceInfo dominance(getOperation());
    eliminateCommonSubExpressions(rewriter, dominance, getOperation());
    // CSE can leave the merged duplicates' producers dead; sweep once more.
    (void)applyGreedily(getOperation(), frozen);
  }
};

} // namespace
