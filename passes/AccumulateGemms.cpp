//===- AccumulateGemms.cpp - halo-accumulate-gemms ------------------------===//
//
// Summed gradients (q/k/v and gate/up input gradients, a tied embedding's two
// weight gradients) are GEMM outputs added together. A GEMM can add its
// product to an existing tensor in its epilogue (cuBLASLt's beta = 1), so
// add(x, gemm(a, b)) becomes gemm(a, b, acc = x): the elementwise add kernel,
// the GEMM's separate output and one read and write of the whole sum are
// gone. halo-plan-memory gives the result x's buffer (the GEMM updates it in
// place), which is why x must have no other user.
//
// The sum is rounded once instead of twice for BF16 GEMMs (cuBLASLt rounds
// the scaled FP8 product before adding C, docs/gemm.md), so bits change: a
// pass of its own, not part of halo-simplify.
//
//===----------------------------------------------------------------------===//
#include "passes/Passes.h"

#include "mlir/IR/PatternMatch.h"

namespace halo {
#define GEN_PASS_DEF_HALOACCUMULATEGEMMS
#include "passes/Passes.h.inc"
} // namespace halo

using namespace mlir;
using namespace halo;

namespace {

/// A gradient GEMM with no accumulator whose only user is the sum.
bool isAccumulableGemm(Value v) {
  Operation *def = v.getDefiningOp();
  if (!def || !v.hasOneUse())
    return false;
  auto gradientRole = [](std::optional<MatmulRole> role) {
    return role && (*role == MatmulRole::bwd_input || *role == MatmulRole::bwd_weight);
  };
  if (auto mm = dyn_cast<MatmulOp>(def))
    return !mm.getAcc() && gradientRole(mm.getRole());
  if (auto mm = dyn_cast<QMatmulOp>(def))
    return !mm.getAcc() && gradientRole(mm.getRole());
  return false;
}

/// add(x, gemm) -> gemm(acc = x) where the add is x's only user and x is an
/// op result (an argument is persistent state the GEMM must not overwrite).
struct AddIntoGemm : OpRewritePattern<AddOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(AddOp add, PatternRewriter &rewriter) const override {
    Value gemm, acc;
    // Of two candidate GEMMs, the later one accumulates into the earlier.
    for (auto [g, x] : {std::pair{add.getRhs(), add.getLhs()}, {add.getLhs(), add.getRhs()}}) {
      if (isAccumulableGemm(g) && x.getDefiningOp() && x.hasOneUse() && g != x &&
          (!gemm || gemm.getDefiningOp()->isBeforeInBlock(g.getDefiningOp()))) {
        gemm = g;
        acc = x;
      }
    }
    if (!gemm)
      return failure();
    Operation *def = gemm.getDefiningOp();
    if (def->getBlock() != add->getBlock() || acc.getDefiningOp()->getBlock() != add->getBlock())
      return failure();
    // The accumulating GEMM takes the add's place: all its operands dominate it.
    rewriter.setInsertionPoint(add);
    Value sum;
    if (auto mm = dyn_cast<MatmulOp>(def))
      sum = rewriter.create<MatmulOp>(mm.getLoc(), add.getType(), mm.getA(), mm.getB(), acc,
                                      mm.getTransposeAAttr(), mm.getTransposeBAttr(),
                                      mm.getLayerAttr(), mm.getRoleAttr());
    else {
      auto q = cast<QMatmulOp>(def);
      sum = rewriter.create<QMatmulOp>(q.getLoc(), add.getType(), q.getA(), q.getScaleA(),
                                       q.getB(), q.getScaleB(), acc, q.getTransposeAAttr(),
                                       q.getTransposeBAttr(), q.getLayerAttr(), q.getRoleAttr());
    }
    rewriter.replaceOp(add, sum);
    rewriter.eraseOp(def);
    return success();
  }
};

struct AccumulateGemmsPass : halo::impl::HaloAccumulateGemmsBase<AccumulateGemmsPass> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    patterns.add<AddIntoGemm>(&getContext());
    if (failed(applyGreedily(getOperation(), std::move(patterns))))
      return signalPassFailure();
  }
};

} // namespace
