//===- PlanMemory.cpp - halo-plan-memory ----------------------------------===//
//
// Liveness-based arena planning. With value semantics every op result is a
// fresh buffer; two results may share bytes when their lifetimes (definition
// to last use, in program order) do not intersect. The greedy largest-first,
// lowest-fitting-offset placement is the classic heuristic (as in TFLite's
// and XLA's simple planners); its arena is what the runtime allocates once.
//
//===----------------------------------------------------------------------===//
#include "passes/Passes.h"

#include "llvm/ADT/STLExtras.h"

#include <algorithm>

namespace halo {
#define GEN_PASS_DEF_HALOPLANMEMORY
#include "passes/Passes.h.inc"
} // namespace halo

using namespace mlir;
using namespace halo;

namespace {

int64_t elementBytes(Type t) {
  if (t.isBF16())
    return 2;
  if (isa<Float8E4M3FNType>(t) || t.isSignlessInteger(8))
    return 1;
  return 4; // f32, i32
}

/// AdamW writes the updated weights and moments over its inputs, and the
/// cast of an updated weight (its BF16 compute copy) over the old copy: all
/// persistent state, not arena buffers; after halo-fuse they sit in a kernel.
bool isStateUpdate(Value v) {
  Operation *def = v.getDefiningOp();
  if (auto c = dyn_cast_or_null<CastOp>(def))
    def = c.getX().getDefiningOp();
  return isa_and_nonnull<AdamWOp>(def);
}

bool isInPlaceUpdate(Value v) {
  if (isStateUpdate(v))
    return true;
  auto kernel = dyn_cast_or_null<exec::KernelOp>(v.getDefiningOp());
  if (!kernel)
    return false;
  return isStateUpdate(kernel.getBody().front().getTerminator()->getOperand(
      cast<OpResult>(v).getResultNumber()));
}

/// A GEMM's accumulator, which its result overwrites in place.
Value accumulatorOf(Operation *op) {
  if (auto mm = dyn_cast<MatmulOp>(op))
    return mm.getAcc();
  if (auto mm = dyn_cast<QMatmulOp>(op))
    return mm.getAcc();
  return {};
}

struct Buffer {
  int64_t bytes, first, last; // lifetime [first, last] in op indices
  int64_t offset = -1;
};

LogicalResult planFunction(func::FuncOp func, int64_t alignment) {
  Block &body = func.getBody().front();
  DenseMap<Operation *, int64_t> index;
  int64_t n = 0;
  for (Operation &op : body)
    index[&op] = n++;

  std::vector<Buffer> buffers;
  DenseMap<Value, size_t> bufferOf; // also the accumulating GEMMs' results
  for (Operation &op : body.without_terminator()) {
    for (Value r : op.getResults()) {
      if (isInPlaceUpdate(r))
        continue;
      auto type = dyn_cast<RankedTensorType>(r.getType());
      if (!type || !type.hasStaticShape())
        return op.emitError("halo-plan-memory: results must be statically shaped tensors");
      int64_t bytes = std::max<int64_t>(type.getNumElements() * elementBytes(type.getElementType()), 1);
      int64_t last = index[&op];
      for (Operation *user : r.getUsers())
        last = std::max(last, index[user]);
      if (Value acc = accumulatorOf(&op)) {
        auto it = bufferOf.find(acc);
        if (it == bufferOf.end())
          return op.emitError("halo-plan-memory: the accumulator must be an intermediate "
                              "result (the GEMM overwrites it), not an argument or state");
        for (Operation *user : acc.getUsers())
          if (index[user] > index[&op])
            return op.emitError("halo-plan-memory: the accumulator is read after the GEMM "
                                "that overwrites it");
        Buffer &shared = buffers[it->second];
        shared.last = std::max(shared.last, last);
        bufferOf[r] = it->second;
        continue;
      }
      bufferOf[r] = buffers.size();
      buffers.push_back({static_cast<int64_t>(llvm::alignTo(bytes, alignment)), index[&op], last});
    }
  }

  // Largest first; ties by definition order for a deterministic plan.
  std::vector<Buffer *> order;
  for (Buffer &b : buffers)
    order.push_back(&b);
  std::stable_sort(order.begin(), order.end(),
                   [](Buffer *a, Buffer *b) { return a->bytes > b->bytes; });
  std::vector<Buffer *> placed;
  int64_t arena = 0;
  for (Buffer *b : order) {
    // Placed buffers whose lifetime intersects b's, by offset.
    std::vector<Buffer *> live;
    for (Buffer *p : placed)
      if (p->first <= b->last && b->first <= p->last)
        live.push_back(p);
    llvm::sort(live, [](Buffer *x, Buffer *y) { return x->offset < y->offset; });
    int64_t offset = 0;
    for (Buffer *p : live) {
      if (offset + b->bytes <= p->offset)
        break;
      offset = std::max(offset, p->offset + p->bytes);
    }
    b->offset = offset;
    arena = std::max(arena, offset + b->bytes);
    placed.push_back(b);
  }

  Builder builder(func.getContext());
  DenseMap<Value, int64_t> offsets;
  for (auto [value, b] : bufferOf)
    offsets[value] = buffers[b].offset;
  for (Operation &op : body.without_terminator()) {
    // -1 marks a result updated in place (no arena bytes).
    SmallVector<int64_t> list;
    bool any = false;
    for (Value r : op.getResults()) {
      auto it = offsets.find(r);
      list.push_back(it == offsets.end() ? -1 : it->second);
      any |= it != offsets.end();
    }
    if (any)
      op.setAttr("halo.offsets", builder.getDenseI64ArrayAttr(list));
  }
  func->setAttr("halo.arena_bytes", builder.getI64IntegerAttr(arena));
  return success();
}

struct PlanMemoryPass : halo::impl::HaloPlanMemoryBase<PlanMemoryPass> {
  using HaloPlanMemoryBase::HaloPlanMemoryBase;

  void runOnOperation() override {
    if (alignment <= 0 || !llvm::isPowerOf2_64(alignment)) {
      getOperation().emitError("halo-plan-memory: alignment must be a power of two, got ")
          << static_cast<int64_t>(alignment);
      return signalPassFailure();
    }
    for (auto func : getOperation().getOps<func::FuncOp>())
      if (failed(planFunction(func, alignment)))
        return signalPassFailure();
  }
};

} // namespace
