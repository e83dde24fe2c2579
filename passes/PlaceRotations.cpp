//===- PlaceRotations.cpp - halo-place-rotations --------------------------===//
//
// Rewrites each linear layer's GEMMs per the HALO table. The table names a
// side per operand in the operand's stored layout; which of H / H^T goes on
// which operand is derived here from the GEMM's transpose flags:
//  - a reduction-dimension rotation must appear on both operands, as op(A) R
//    and L op(B) with R L = I; A always gets H, B gets H or H^T to match;
//  - a free-dimension rotation rotates the output's rows (A) or columns (B)
//    and is undone there with the inverse rotation.
//
//===----------------------------------------------------------------------===//
#include "passes/Passes.h"

#include "frontend/config/ModelConfig.h"
#include "runtime/numerics/Hadamard.h"

namespace halo {
#define GEN_PASS_DEF_HALOPLACEROTATIONS
#include "passes/Passes.h.inc"
} // namespace halo

using namespace mlir;
using namespace halo;
namespace fe = halo::frontend;

namespace {

struct Placement {
  fe::Precision precision;
  fe::MatmulTable table;
};

FailureOr<fe::OperandScheme> parseScheme(ModuleOp module, DictionaryAttr dict, StringRef where) {
  auto side = dict ? dict.getAs<StringAttr>("hadamard") : StringAttr();
  auto quant = dict ? dict.getAs<StringAttr>("quant") : StringAttr();
  fe::OperandScheme s;
  if (!side || !quant)
    return module.emitError("halo-place-rotations: halo.placement.")
           << where << " needs string entries 'hadamard' and 'quant'";
  if (side.getValue() == "left")
    s.hadamard = fe::HadamardSide::Left;
  else if (side.getValue() == "right")
    s.hadamard = fe::HadamardSide::Right;
  else if (side.getValue() != "none")
    return module.emitError("halo-place-rotations: halo.placement.")
           << where << ".hadamard: expected none, left or right, got '" << side.getValue() << "'";
  if (quant.getValue() == "tensor")
    s.quant = fe::QuantGranularity::Tensor;
  else if (quant.getValue() == "row")
    s.quant = fe::QuantGranularity::Row;
  else if (quant.getValue() != "none")
    return module.emitError("halo-place-rotations: halo.placement.")
           << where << ".quant: expected none, tensor or row, got '" << quant.getValue() << "'";
  return s;
}

/// The table from the pass options if given, else from the module attribute.
FailureOr<Placement> readPlacement(ModuleOp module, int levelOption, StringRef precisionOption) {
  auto dict = module->getAttrOfType<DictionaryAttr>("halo.placement");
  std::optional<int> level;
  std::optional<fe::Precision> precision;
  if (dict) {
    if (auto l = dict.getAs<IntegerAttr>("level"))
      level = l.getInt();
    if (auto p = dict.getAs<StringAttr>("precision"))
      precision = fe::parsePrecision(p.getValue().str());
  }
  if (levelOption >= 0)
    level = levelOption;
  if (!precisionOption.empty()) {
    precision = fe::parsePrecision(precisionOption.str());
    if (!precision)
      return module.emitError("halo-place-rotations: unknown precision '")
             << precisionOption << "' (expected fp8, int8 or bf16)";
  }
  if (!precision)
    return module.emitError("halo-place-rotations: no precision: pass precision=fp8|int8|bf16 "
                            "or give the module a halo.placement attribute");
  Placement placement{*precision, {}};
  if (levelOption >= 0 || !precisionOption.empty() || !dict || !dict.get("fwd")) {
    if (!level || *level < 0 || *level > fe::kMaxLevel)
      return module.emitError("halo-place-rotations: no valid HALO level: pass level=0|1|2");
    placement.table = fe::presetTable(*level, *precision);
  } else {
    for (size_t slot = 0; slot < fe::kOperandSlots.size(); ++slot) {
      const fe::OperandSlot &s = fe::kOperandSlots[slot];
      std::string where = std::string(s.matmulKey) + "." + std::string(s.operandKey);
      auto matmul = dict.getAs<DictionaryAttr>(StringRef(s.matmulKey.data(), s.matmulKey.size()));
      auto operand = matmul ? matmul.getAs<DictionaryAttr>(
                                  StringRef(s.operandKey.data(), s.operandKey.size()))
                            : DictionaryAttr();
      FailureOr<fe::OperandScheme> scheme = parseScheme(module, operand, where);
      if (failed(scheme))
        return failure();
      fe::schemeAt(placement.table, slot) = *scheme;
    }
  }
  if (Status s = fe::validateMatmulTable(placement.table, placement.precision); !s.ok())
    return module.emitError("halo-place-rotations: ") << s.message();
  return placement;
}

/// One GEMM operand as placement sees it.
struct Operand {
  Value value;
  bool transposed;
  bool isA;
  StringRef name; // "x", "w" or "e", for diagnostics
  fe::OperandScheme scheme;

  HadamardSide side() const {
    return scheme.hadamard == fe::HadamardSide::Left ? HadamardSide::left : HadamardSide::right;
  }
  bool rotated() const { return scheme.hadamard != fe::HadamardSide::None; }
  /// Whether the rotation mixes the GEMM's reduction dimension: A's columns
  /// (rows when transposed), B's rows (columns when transposed).
  bool rotatesReduction() const {
    bool right = scheme.hadamard == fe::HadamardSide::Right;
    return isA ? right != transposed : right == transposed;
  }
};

class Placer {
public:
  Placer(const Placement &placement, MLIRContext *ctx) : placement(placement), b(ctx) {}

  /// Rewrites one linear-layer GEMM in place.
  LogicalResult place(Operation *gemm, Value a, Value bOperand, bool ta, bool tb,
                      StringAttr layer, MatmulRole role);

private:
  LogicalResult checkSize(Operation *gemm, const Operand &o, StringRef layer, MatmulRole role);
  Value hadamard(Location loc, Value v, HadamardSide side, bool transposed) {
    return b.create<HadamardOp>(loc, v.getType(), v, HadamardSideAttr::get(b.getContext(), side),
                                transposed ? b.getUnitAttr() : UnitAttr());
  }
  /// quantize -> (data, scale); nullptr when the operand stays unquantized.
  std::pair<Value, Value> quantize(Location loc, Value v, fe::QuantGranularity g);
  Type quantType() {
    return placement.precision == fe::Precision::INT8 ? Type(b.getIntegerType(8))
                                                      : Type(b.getType<Float8E4M3FNType>());
  }

  const Placement &placement;
  OpBuilder b;
};

LogicalResult Placer::checkSize(Operation *gemm, const Operand &o, StringRef layer,
                                MatmulRole role) {
  auto type = cast<RankedTensorType>(o.value.getType());
  int64_t n = type.getDimSize(o.scheme.hadamard == fe::HadamardSide::Right ? 1 : 0);
  if (numerics::decomposeHadamardSize(n))
    return success();
  return gemm->emitError("halo-place-rotations: layer '")
         << layer << "', " << stringifyMatmulRole(role) << " operand " << o.name
         << " " << o.value.getType() << ": no Hadamard matrix of size " << n << " for the "
         << (o.scheme.hadamard == fe::HadamardSide::Right ? "right" : "left")
         << " rotation; supported sizes are " << numerics::supportedHadamardForms()
         << " (choose another level or a model/batch shape of that form)";
}

std::pair<Value, Value> Placer::quantize(Location loc, Value v, fe::QuantGranularity g) {
  auto type = cast<RankedTensorType>(v.getType());
  Granularity gran = g == fe::QuantGranularity::Row ? Granularity::row : Granularity::tensor;
  SmallVector<int64_t> scaleShape;
  if (gran == Granularity::row)
    scaleShape.push_back(type.getDimSize(0));
  auto q = b.create<QuantizeOp>(loc, type.clone(quantType()),
                                RankedTensorType::get(scaleShape, b.getF32Type()), v,
                                GranularityAttr::get(b.getContext(), gran));
  return {q.getData(), q.getScale()};
}

LogicalResult Placer::place(Operation *gemm, Value aValue, Value bValue, bool ta, bool tb,
                            StringAttr layer, MatmulRole role) {
  const fe::MatmulTable &t = placement.table;
  fe::OperandScheme sa, sb;
  StringRef na, nb;
  switch (role) {
  case MatmulRole::fwd:
    sa = t.fwd.x, sb = t.fwd.w, na = "x", nb = "w";
    break;
  case MatmulRole::bwd_input:
    sa = t.bwdInput.e, sb = t.bwdInput.w, na = "e", nb = "w";
    break;
  case MatmulRole::bwd_weight:
    sa = t.bwdWeight.e, sb = t.bwdWeight.x, na = "e", nb = "x";
    break;
  }
  Operand a{aValue, ta, true, na, sa}, bo{bValue, tb, false, nb, sb};
  bool reductionA = a.rotated() && a.rotatesReduction();
  bool reductionB = bo.rotated() && bo.rotatesReduction();
  if (reductionA != reductionB) {
    const Operand &lone = reductionA ? a : bo;
    return gemm->emitError("halo-place-rotations: layer '")
           << layer.getValue() << "', " << stringifyMatmulRole(role) << ": the rotation of "
           << lone.name << " mixes the reduction dimension but " << (reductionA ? bo : a).name
           << " is not rotated the same way, so the rotation is stranded";
  }
  for (const Operand *o : {&a, &bo})
    if (o->rotated() && failed(checkSize(gemm, *o, layer.getValue(), role)))
      return failure();

  Location loc = gemm->getLoc();
  b.setInsertionPoint(gemm);
  Value av = a.value, bv = bo.value;
  if (a.rotated())
    av = hadamard(loc, av, a.side(), false);
  if (bo.rotated()) {
    // For a shared reduction rotation, A contributes R = H (or H^T when A is
    // transposed); B must contribute the inverse.
    bool inverse = false;
    if (reductionB) {
      bool rIsH = !ta;
      inverse = tb ? !rIsH : rIsH;
    }
    bv = hadamard(loc, bv, bo.side(), inverse);
  }

  Type resultType = gemm->getResult(0).getType();
  MLIRContext *ctx = b.getContext();
  auto roleAttr = MatmulRoleAttr::get(ctx, role);
  UnitAttr uta = ta ? b.getUnitAttr() : UnitAttr(), utb = tb ? b.getUnitAttr() : UnitAttr();
  bool qa = sa.quant != fe::QuantGranularity::None, qb = sb.quant != fe::QuantGranularity::None;
  Value result;
  if (qa && qb) {
    auto [aq, as] = quantize(loc, av, sa.quant);
    auto [bq, bs] = quantize(loc, bv, sb.quant);
    result = b.create<QMatmulOp>(loc, resultType, aq, as, bq, bs, /*acc=*/Value(), uta, utb,
                                  layer, roleAttr);
  } else {
    // The research form may quantize one operand only: simulate it.
    auto fake = [&](Value v, fe::QuantGranularity g) -> Value {
      auto [q, s] = quantize(loc, v, g);
      auto gran = GranularityAttr::get(
          ctx, g == fe::QuantGranularity::Row ? Granularity::row : Granularity::tensor);
      return b.create<DequantizeOp>(loc, v.getType(), q, s, gran);
    };
    if (qa)
      av = fake(av, sa.quant);
    if (qb)
      bv = fake(bv, sb.quant);
    result = b.create<MatmulOp>(loc, resultType, av, bv, /*acc=*/Value(), uta, utb, layer, roleAttr);
  }

  // Undo free-dimension rotations on the output: A's on its rows, B's on its
  // columns.
  if (a.rotated() && !reductionA)
    result = hadamard(loc, result, HadamardSide::left, /*transposed=*/!ta);
  if (bo.rotated() && !reductionB)
    result = hadamard(loc, result, HadamardSide::right, /*transposed=*/!tb);

  gemm->getResult(0).replaceAllUsesWith(result);
  gemm->erase();
  return success();
}

struct PlaceRotationsPass : halo::impl::HaloPlaceRotationsBase<PlaceRotationsPass> {
  using HaloPlaceRotationsBase::HaloPlaceRotationsBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    FailureOr<Placement> placement = readPlacement(module, level, precision);
    if (failed(placement))
      return signalPassFailure();
    Placer placer(*placement, &getContext());
    SmallVector<Operation *> gemms;
    module.walk([&](Operation *op) {
      if (isa<LinearOp>(op) || (isa<MatmulOp>(op) && cast<MatmulOp>(op).getRole()))
        gemms.push_back(op);
    });
    for (Operation *op : gemms) {
      LogicalResult placed = success();
      if (auto l = dyn_cast<LinearOp>(op)) {
        if (l.getLayer() != "lm_head")
          placed = placer.place(op, l.getX(), l.getWeight(), false, true, l.getLayerAttr(),
                                MatmulRole::fwd);
      } else {
        auto m = cast<MatmulOp>(op);
        if (m.getLayer() != "lm_head")
          placed = placer.place(op, m.getA(), m.getB(), m.getTransposeA(), m.getTransposeB(),
                                m.getLayerAttr(), *m.getRole());
      }
      if (failed(placed))
        return signalPassFailure();
    }
  }
};

} // namespace
