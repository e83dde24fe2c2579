//===- Fuse.cpp - halo-fuse: memory-bound chains -> exec.kernel -----------===//
//
// Outlining keeps value semantics: a group's ops move into the region of an
// exec.kernel created at the position of the group's last op. That is legal
// when every outside use of a group result comes after that op (operands of
// the group dominate it already), which groupIsOutlinable checks.
//
//===----------------------------------------------------------------------===//
#include "passes/Passes.h"

#include "mlir/IR/IRMapping.h"
#include "llvm/ADT/SetVector.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/raw_ostream.h"

namespace halo {
#define GEN_PASS_DEF_HALOFUSE
#include "passes/Passes.h.inc"
} // namespace halo

using namespace mlir;
using namespace halo;

namespace {

bool isGemm(Operation *op) { return isa<MatmulOp, QMatmulOp, LinearOp>(op); }

/// Ops that stay outside kernels.
bool staysOutside(Operation *op) {
  return isGemm(op) || op->hasTrait<OpTrait::IsTerminator>() || isa<arith::ConstantOp>(op) ||
         isa<exec::KernelOp>(op) || op->getParentOfType<exec::KernelOp>();
}

/// Whether the quantize kernel can write both code layouts: 64 x 64 byte
/// tiles, no left rotation (HadamardQuantizeParams::bothLayouts).
bool bothLayoutsFit(QuantizeOp q, HadamardOp rotation) {
  auto type = cast<RankedTensorType>(q.getX().getType());
  return (!rotation || rotation.getSide() == HadamardSide::right) && type.getRank() == 2 &&
         type.getDimSize(0) % 64 == 0 && type.getDimSize(1) % 64 == 0;
}

/// The group in block order.
using Group = SmallVector<Operation *>;

Operation *lastOf(const Group &g) {
  Operation *last = g.front();
  for (Operation *op : g)
    if (last->isBeforeInBlock(op))
      last = op;
  return last;
}

bool groupIsOutlinable(const Group &g) {
  llvm::SmallPtrSet<Operation *, 8> members(g.begin(), g.end());
  Operation *last = lastOf(g);
  for (Operation *op : g) {
    if (op->getBlock() != last->getBlock() || staysOutside(op))
      return false;
    for (Value r : op->getResults())
      for (Operation *user : r.getUsers())
        if (!members.contains(user) && !last->isBeforeInBlock(user))
          return false;
  }
  return true;
}

std::string shapeSignature(Type t) {
  auto tensor = dyn_cast<RankedTensorType>(t);
  if (!tensor || tensor.getRank() == 0)
    return "scalar";
  std::string s;
  llvm::raw_string_ostream os(s);
  llvm::interleave(tensor.getShape(), os, "x");
  return s;
}

/// Moves `g` into an exec.kernel at the position of its last op.
void outline(Group g, StringRef kind) {
  llvm::sort(g, [](Operation *a, Operation *b) { return a->isBeforeInBlock(b); });
  llvm::SmallPtrSet<Operation *, 8> members(g.begin(), g.end());
  llvm::SetVector<Value> inputs;
  SmallVector<Value> outputs;
  for (Operation *op : g) {
    for (Value v : op->getOperands())
      if (!members.contains(v.getDefiningOp()))
        inputs.insert(v);
    for (Value r : op->getResults())
      if (llvm::any_of(r.getUsers(), [&](Operation *u) { return !members.contains(u); }))
        outputs.push_back(r);
  }

  // The body, built detached so its printed form can name the kernel.
  MLIRContext *ctx = g.front()->getContext();
  auto region = std::make_unique<Region>();
  Block *body = new Block();
  region->push_back(body);
  IRMapping map;
  for (Value in : inputs)
    map.map(in, body->addArgument(in.getType(), in.getLoc()));
  OpBuilder b(ctx);
  b.setInsertionPointToEnd(body);
  for (Operation *op : g)
    b.clone(*op, map);
  SmallVector<Value> yielded;
  for (Value out : outputs)
    yielded.push_back(map.lookup(out));
  b.create<exec::YieldOp>(g.back()->getLoc(), yielded);

  std::string text;
  llvm::raw_string_ostream os(text);
  for (Operation &op : *body)
    op.print(os, OpPrintingFlags().printGenericOpForm().elideLargeElementsAttrs());
  std::string name = llvm::formatv("halo_{0}_{1}_{2:x-8}", kind,
                                   shapeSignature(outputs.front().getType()),
                                   static_cast<uint32_t>(llvm::hash_value(text)))
                         .str();

  Operation *last = g.back();
  b.setInsertionPoint(last);
  SmallVector<Type> resultTypes;
  for (Value out : outputs)
    resultTypes.push_back(out.getType());
  auto kernel = b.create<exec::KernelOp>(last->getLoc(), resultTypes, inputs.getArrayRef(),
                                         b.getStringAttr(name), b.getStringAttr(kind));
  kernel.getBody().takeBody(*region);
  for (auto [out, res] : llvm::zip(outputs, kernel.getResults()))
    out.replaceAllUsesWith(res);
  for (Operation *op : llvm::reverse(g))
    op->erase();
}

/// HALO-2's two quantizers of one E [T, n]: per-tensor Q(H_T E) (the input
/// gradient) and plain per-tensor Q(E) read only transposed (the weight
/// gradient), same format. Returns {hadamard, quantize, quantize, transpose}
/// for the rotated quantize `q`, or an empty group. One kernel then reads E
/// for both (hadamard_quantize_plain).
Group leftPlainPair(QuantizeOp q) {
  auto h = q.getX().getDefiningOp<HadamardOp>();
  if (!h || !h->hasOneUse() || h.getSide() != HadamardSide::left ||
      q.getGranularity() != Granularity::tensor)
    return {};
  Type format = cast<RankedTensorType>(q.getData().getType()).getElementType();
  for (Operation *user : h.getX().getUsers()) {
    auto plain = dyn_cast<QuantizeOp>(user);
    if (!plain || plain->getBlock() != q->getBlock() ||
        plain.getGranularity() != Granularity::tensor || !plain.getData().hasOneUse() ||
        cast<RankedTensorType>(plain.getData().getType()).getElementType() != format)
      continue;
    if (auto t = dyn_cast<TransposeOp>(*plain.getData().getUsers().begin()))
      return {h, q, plain, t};
  }
  return {};
}

/// The right hadamard (BF16) that defines `v` when every reader of its result
/// is in `g` (same block), else null. The group's kernel then rotates the rows
/// itself (hadamardKernel's swigluGrad, rmsNormBackwardKernel's rotateDy:
/// both take every shape the plain right rotation takes).
HadamardOp rightRotationReadOnlyBy(Value v, const Group &g) {
  auto h = v.getDefiningOp<HadamardOp>();
  if (!h || h.getSide() != HadamardSide::right || h->getBlock() != g.front()->getBlock())
    return {};
  if (!cast<RankedTensorType>(h.getType()).getElementType().isBF16())
    return {};
  for (Operation *user : h->getUsers())
    if (!llvm::is_contained(g, user))
      return {};
  return h;
}

/// Moves the ops of `g` (one block) up to its earliest, keeping their order,
/// so that the group's kernel comes before every reader of its results. Legal
/// when the operands from outside the group dominate the earliest op.
void gatherAtFirst(Group g) {
  llvm::sort(g, [](Operation *a, Operation *b) { return a->isBeforeInBlock(b); });
  for (size_t i = 1; i < g.size(); ++i)
    g[i]->moveAfter(g[i - 1]);
}

/// Outlines `g` if legal; returns whether it did.
bool tryOutline(const Group &g, StringRef kind, llvm::SmallPtrSetImpl<Operation *> &done) {
  for (Operation *op : g)
    if (done.contains(op))
      return false;
  if (!groupIsOutlinable(g))
    return false;
  for (Operation *op : g)
    done.insert(op);
  outline(g, kind);
  return true;
}

void fuseFunction(func::FuncOp func) {
  Block &block = func.getBody().front();
  llvm::SmallPtrSet<Operation *, 32> done;
  SmallVector<std::pair<Group, std::string>> groups;

  // HALO-2's pairs of E quantizers come first: their ops then skip the
  // single-quantizer groups below. Gathered at the first of them (the left
  // rotation), the plain quantize comes before the rotated codes' GEMM;
  // their only outside operand, E, dominates it.
  for (Operation &op : block)
    if (auto q = dyn_cast<QuantizeOp>(op))
      if (Group g = leftPlainPair(q); !g.empty())
        groups.push_back({g, "hadamard_quantize_plain"});
  for (auto &[g, kind] : groups)
    gatherAtFirst(g);

  // Collect the patterns first (outlining erases ops), anchored on their
  // last op.
  Group optimizer;
  for (Operation &op : block) {
    if (auto q = dyn_cast<QuantizeOp>(op)) {
      Group g;
      auto h = q.getX().getDefiningOp<HadamardOp>();
      bool rotated = h && h->hasOneUse();
      if (rotated)
        g.push_back(h);
      g.push_back(q);
      // K-major codes (halo-legalize-gemm-layouts' transpose) written by the
      // quantize kernel: instead of the [rows, cols] codes when nobody else
      // reads those, else next to them where the byte tiles apply. The
      // transpose reads only the codes, so it can run right after the
      // quantize, before their other readers.
      auto users = q.getData().getUsers();
      auto t = llvm::find_if(users, [](Operation *u) { return isa<TransposeOp>(u); });
      if (t != users.end()) {
        if (q.getData().hasOneUse()) {
          g.push_back(*t);
        } else if (bothLayoutsFit(q, rotated ? h : HadamardOp())) {
          (*t)->moveAfter(q);
          g.push_back(*t);
        }
      }
      if (g.size() > 1)
        groups.push_back({g, rotated ? "hadamard_quantize" : "quantize"});
    }
    if (auto n = dyn_cast<RmsNormOp>(op))
      if (auto a = n.getX().getDefiningOp<AddOp>())
        groups.push_back({{a, n}, "add_rms_norm"});
    // The residual stream's gradient: rms_norm_grad's dx plus the gradient
    // around the block, summed in the backward kernel's pass (its dres).
    // At HALO-1/2 its dy, the summed q/k/v or gate/up input gradient, is
    // un-rotated on the right first; a rotation read by nothing else runs in
    // the same kernel, row by row.
    if (auto a = dyn_cast<AddOp>(op))
      for (Value side : {a.getLhs(), a.getRhs()})
        if (auto g = side.getDefiningOp<RmsNormGradOp>();
            g && side == g.getDx() && side.hasOneUse()) {
          Group grp = {g, a};
          if (HadamardOp h = rightRotationReadOnlyBy(g.getDy(), grp)) {
            grp.insert(grp.begin(), h);
            groups.push_back({grp, "hadamard_rms_norm_grad"});
          } else {
            groups.push_back({grp, "rms_norm_grad"});
          }
          break;
        }
    if (auto m = dyn_cast<MulOp>(op)) {
      if (auto s = m.getLhs().getDefiningOp<SiluOp>())
        groups.push_back({{s, m}, "swiglu"});
    }
    if (auto sg = dyn_cast<SiluGradOp>(op)) {
      // silu_grad(g, dy * u) with the sibling dy * silu(g) that feeds up_proj.
      auto dSilu = sg.getDy().getDefiningOp<MulOp>();
      if (dSilu) {
        Group g = {dSilu, sg};
        for (Operation *user : dSilu.getLhs().getUsers())
          if (auto sib = dyn_cast<MulOp>(user); sib && sib != dSilu && sib->getBlock() == &block &&
                                                sib.getLhs() == dSilu.getLhs())
            if (auto s = sib.getRhs().getDefiningOp<SiluOp>(); s && s.getX() == sg.getX()) {
              // Recompute silu(g) inside the kernel instead of keeping the
              // forward's copy alive: the SwiGLU kernels then read g and u only.
              OpBuilder b(sib);
              Operation *again = b.clone(*s);
              sib->setOperand(1, again->getResult(0));
              g.push_back(again);
              g.push_back(sib);
              break;
            }
        // HALO-1/2: dy is down_proj's input gradient un-rotated on the right
        // (x H^T over FFN). When only this group reads it, the kernel rotates
        // each row itself and dy never reaches memory.
        if (HadamardOp h = rightRotationReadOnlyBy(dSilu.getLhs(), g)) {
          g.insert(g.begin(), h);
          groups.push_back({g, "hadamard_swiglu_grad"});
        } else {
          groups.push_back({g, "swiglu_grad"});
        }
      }
    }
    if (auto ceg = dyn_cast<CrossEntropyGradOp>(op))
      for (Operation *user : ceg.getLogits().getUsers())
        if (auto ce = dyn_cast<CrossEntropyOp>(user); ce && ce.getTargets() == ceg.getTargets())
          groups.push_back({{ce, ceg}, "cross_entropy"});
    // A weight gradient's right un-rotation that only AdamW reads (the norm
    // reads the rotated gradient, halo-factor-rotations) runs inside AdamW's
    // step; the function may still return the un-rotated gradient.
    if (auto adam = dyn_cast<AdamWOp>(op))
      if (auto h = adam.getGrad().getDefiningOp<HadamardOp>();
          h && h.getSide() == HadamardSide::right && h->getBlock() == &block &&
          llvm::all_of(h->getUsers(), [&](Operation *u) {
            return u == adam || isa<func::ReturnOp>(u);
          }))
        optimizer.push_back(h);
    if (isa<GlobalNormOp, ClipCoefOp, LrScheduleOp, AdamWOp>(op))
      optimizer.push_back(&op);
    // The BF16 compute copy of an updated master: AdamW writes it.
    if (auto c = dyn_cast<CastOp>(op))
      if (c.getX().getDefiningOp<AdamWOp>())
        optimizer.push_back(&op);
  }
  if (!optimizer.empty())
    groups.push_back({optimizer, "optimizer"});
  for (auto &[g, kind] : groups)
    tryOutline(g, kind, done);

  // Every other memory-bound op is a kernel of its own.
  SmallVector<Operation *> singles;
  for (Operation &op : block)
    if (!staysOutside(&op) && !done.contains(&op))
      singles.push_back(&op);
  for (Operation *op : singles)
    tryOutline({op}, op->getName().stripDialect(), done);
}

struct FusePass : halo::impl::HaloFuseBase<FusePass> {
  void runOnOperation() override {
    for (auto func : getOperation().getOps<func::FuncOp>())
      fuseFunction(func);
  }
};

} // namespace
